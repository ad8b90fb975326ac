"""The rq worker class that ``votes worker`` runs (``--worker-class``).

rq's ``Worker`` forks a fresh work-horse for every job. The jobs get their Flask app
from ``workers.jobs.get_app()``, created once per process: with the stock worker the
parent never creates it, so every horse built the whole app again (about 1.8 s of CPU
per ranking run). ``VotesWorker`` creates it in the parent before the work loop, so
every horse inherits it ready-made through the fork.

A horse must not use database connections it inherited: the parent's pool may hold
some (``create_app`` configures SQLite through one; a failure callback run by the
parent uses the app). First thing after the fork, the horse drops its copy of every
engine's pool without closing those connections, which stay the parent's (SQLAlchemy,
"Using Connection Pools with Multiprocessing or os.fork()"); the horse's own queries
then open new connections.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError
from rq import Worker

from service.extensions import db
from workers import jobs, reaper

log = logging.getLogger(__name__)


class VotesWorker(Worker):
    # After a Redis outage, try again at least every 10 s (rq's default grows to 60 s).
    max_connection_wait_time = 10.0
    _last_reaped: float | None = None

    def work(self, *args, **kwargs) -> bool:
        jobs.get_app()  # before the scheduler process and any work-horse fork
        return super().work(*args, **kwargs)

    # --- the watchdog (workers/reaper.py) ---------------------------------------------
    # rq's idle loop blocks on the queue for up to dequeue_timeout, then checks
    # should_run_maintenance_tasks: a shorter wait and a second reason to run maintenance
    # give a pass every REAPER_INTERVAL_SECONDS (while idle; a busy worker's runs are not
    # lost, and other workers reap).

    def _reaper_interval(self) -> int:
        return jobs.get_app().config["REAPER_INTERVAL_SECONDS"]

    @property
    def dequeue_timeout(self) -> int:
        return max(1, min(super().dequeue_timeout, self._reaper_interval()))

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return super().should_run_maintenance_tasks or self._reap_due()

    def _reap_due(self) -> bool:
        last = self._last_reaped
        return last is None or time.monotonic() - last >= self._reaper_interval()

    def run_maintenance_tasks(self) -> None:
        # The base class's property getter (rq's stubs type it as a plain method).
        if Worker.should_run_maintenance_tasks.fget(self):  # type: ignore[attr-defined]
            # rq calls this from its work loop too, where a Redis error is not handled
            # and stops the worker: a blip at that moment ended `votes worker`. Tried
            # again on the next loop (rq's dequeue then waits for Redis with back-off).
            try:
                super().run_maintenance_tasks()
            except RedisError as exc:
                log.warning("rq maintenance could not reach Redis: %s", exc)
        if self._reap_due():
            self.reap()

    def reap(self) -> None:
        """One watchdog pass. Never raises: rq also calls maintenance outside its
        Redis-outage handling, where an exception would stop the worker."""
        self._last_reaped = time.monotonic()
        app = jobs.get_app()
        try:
            # A scheduler killed by a Redis blip is started again now, not in ten minutes.
            process = self.scheduler and self.scheduler._process
            if self.scheduler and (not process or not process.is_alive()):
                self.scheduler.acquire_locks(auto_start=True)
            with app.app_context():
                reaper.reap(
                    self.connection,
                    self.queue_names(),
                    app.config["REAPER_INTERVAL_SECONDS"],
                    app.config["REAPER_GRACE_SECONDS"],
                )
        except RedisError as exc:  # rq's loop waits for Redis; the next pass tries again
            log.warning("the reaper pass could not reach Redis: %s", exc)
        except Exception:  # the database may be down: the next pass tries again
            log.exception("the reaper pass failed")

    # rq's work loop stops the worker on any Redis error outside its dequeue wait; these
    # two calls sit just outside it, so a blip at the wrong moment ended `votes worker`.
    # Both are bookkeeping: skipped, the dequeue then waits for Redis with back-off.

    def set_state(self, state, pipeline=None) -> None:
        try:
            super().set_state(state, pipeline=pipeline)
        except RedisError as exc:
            log.warning("could not record the worker state in Redis: %s", exc)

    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)
        except RedisError as exc:
            log.warning("could not check for `rq suspend` in Redis: %s", exc)

    def main_work_horse(self, job, queue) -> None:
        forget_inherited_connections()
        super().main_work_horse(job, queue)


def forget_inherited_connections() -> None:
    """In a forked child: dereference, without closing, the pooled connections of the
    jobs' app (they belong to the parent). Never raises: the job opens its own."""
    try:
        with jobs.get_app().app_context():
            for engine in db.engines.values():
                engine.dispose(close=False)
    except Exception:  # a horse must reach perform_job whatever happens here
        log.exception("could not reset the database pools inherited by the work-horse")
