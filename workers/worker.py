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

from rq import Worker

log = logging.getLogger(__name__)


class VotesWorker(Worker):
    def work(self, *args, **kwargs) -> bool:
        from workers.jobs import get_app

        get_app()  # before the scheduler process and any work-horse fork
        return super().work(*args, **kwargs)

    def main_work_horse(self, job, queue) -> None:
        forget_inherited_connections()
        super().main_work_horse(job, queue)


def forget_inherited_connections() -> None:
    """In a forked child: dereference, without closing, the pooled connections of the
    jobs' app (they belong to the parent). Never raises: the job opens its own."""
    try:
        from service.extensions import db
        from workers.jobs import get_app

        with get_app().app_context():
            for engine in db.engines.values():
                engine.dispose(close=False)
    except Exception:  # a horse must reach perform_job whatever happens here
        log.exception("could not reset the database pools inherited by the work-horse")
