"""RQ jobs: ``compute_ranking``, ``publish`` and ``nightly`` (DESIGN.md "Jobs").

Jobs run outside Flask: each creates the app once per process (``get_app``) and works
inside ``app.app_context()``. They take ids, never ORM objects, and are idempotent:

- ``compute_ranking(run_id)`` does nothing for a run that is already finished or failed,
  and recomputes a run left ``queued``/``running`` by a killed worker (the result and
  the ballot tree are written in the one transaction that marks the run finished).
- ``publish(campaign_id, run_id)`` returns the existing publication of a run.

Failures: a ``RankingError`` (impossible quotas, a method the data cannot satisfy) is
permanent: the run is recorded ``failed`` with the engine's code and message and the
job fails without retry. Anything else (database down, timeout, a killed worker) is
transient: RQ retries with back-off (``workers.queues``) and ``on_compute_failure``
records the run ``failed`` once no retry is left.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from rq import Callback, get_current_job
from rq.job import Dependency

from workers.queues import enqueue

log = logging.getLogger(__name__)

NIGHTLY_TZ = ZoneInfo("Asia/Shanghai")
_app: Flask | None = None


def get_app() -> Flask:
    """The Flask app for jobs, created once per process."""
    global _app
    if _app is None:
        from service import create_app

        _app = create_app()
    return _app


def _no_retry() -> None:
    """Make the current RQ job's failure final (permanent errors are not retried)."""
    job = get_current_job()
    if job is not None:
        job.retries_left = 0


# --- compute ----------------------------------------------------------------------------


def enqueue_compute(run_id: str, redis=None):
    """Enqueue ``compute_ranking(run_id)`` with the failure recorder (after the commit)."""
    from service.domain.rankings import job_id_for

    return enqueue(
        compute_ranking,
        run_id,
        job_id=job_id_for(run_id),
        on_failure=Callback(on_compute_failure),
        redis=redis,
    )


def compute_ranking(run_id: str) -> dict[str, Any]:
    from service.clock import now
    from service.domain import rankings
    from service.extensions import db
    from service.models import RankingRun
    from workers.ranking import RankingError

    with get_app().app_context():
        run = db.session.get(RankingRun, run_id)
        if run is None:
            log.warning("ranking run %s does not exist; nothing to do", run_id)
            return {"run_id": run_id, "status": "missing"}
        if run.status in ("finished", "failed"):
            return {"run_id": run_id, "status": run.status}
        run.status = "running"
        run.started_at = now()
        db.session.commit()
        try:
            rankings.compute(run)
            db.session.commit()
        except RankingError as exc:
            db.session.rollback()
            run = db.session.get(RankingRun, run_id)
            rankings.record_failure(run, exc.code, exc.message, exc.details)
            db.session.commit()
            _no_retry()
            raise
        finally:  # any other failure: removing the session rolls back, and RQ retries
            db.session.remove()
        return {"run_id": run_id, "status": "finished"}


def on_compute_failure(job, connection, exc_type, exc_value, tb) -> None:
    """RQ failure callback (also called for jobs of a killed worker).

    With retries left the run goes back to ``queued`` noting the error; after the last
    try it is ``failed``. A run already failed (a RankingError) keeps its error.
    """
    from service.domain import rankings
    from service.extensions import db
    from service.models import RankingRun

    run_id = job.args[0] if job.args else None
    try:
        with get_app().app_context():
            run = db.session.get(RankingRun, run_id)
            if run is None or run.status in ("finished", "failed"):
                return
            message = f"{getattr(exc_type, '__name__', 'Error')}: {exc_value}"[:2000]
            if job.retries_left:
                run.status = "queued"
                run.error = rankings.canonical_json(
                    {
                        "code": "retrying",
                        "message": message,
                        "details": {"retries_left": job.retries_left},
                    }
                )
            else:
                rankings.record_failure(run, "job_failed", message)
            db.session.commit()
            db.session.remove()
    except Exception:  # the database may be what failed; the retry will try again
        log.exception("could not record the failure of ranking run %s", run_id)


# --- publish ----------------------------------------------------------------------------


def enqueue_publish(campaign_id: int, run_id: str | None, if_changed: bool = False, **options):
    return enqueue(publish, campaign_id, run_id, if_changed, **options)


def _after(job) -> Dependency:
    # The nightly publish runs once the run's job is final, even failed: it then
    # publishes nothing (if_changed skips unfinished runs) instead of waiting forever.
    return Dependency(jobs=[job], allow_failure=True)


def publish(campaign_id: int, run_id: str | None = None, if_changed: bool = False) -> dict:
    """Publish a finished run as the next version, in one transaction."""
    from sqlalchemy.exc import IntegrityError

    from service.domain import publications
    from service.extensions import db

    with get_app().app_context():
        try:
            try:
                publication = publications.publish_run(
                    campaign_id, run_id, actor="job", if_changed=if_changed
                )
                db.session.commit()
            except IntegrityError:
                # A concurrent publisher took the version, or already published this run.
                db.session.rollback()
                existing = run_id and publications.publication_for_run(run_id)
                if not existing:
                    raise
                publication = existing
            except publications.PublishError:
                db.session.rollback()
                _no_retry()
                raise
            except Exception:
                db.session.rollback()
                raise
            if publication is None:
                return {"campaign_id": campaign_id, "run_id": run_id, "published": False}
            return {
                "campaign_id": campaign_id,
                "run_id": publication.run_id,
                "version": publication.version,
                "digest": publication.digest,
                "published": True,
            }
        finally:
            db.session.remove()


# --- nightly ----------------------------------------------------------------------------


def nightly_day(at=None) -> date:
    from service.clock import now

    return (at or now()).astimezone(NIGHTLY_TZ).date()


def run_nightly() -> dict[str, Any]:
    """The nightly pass, inside an app context (the job and ``votes nightly``).

    Marks the Asia/Shanghai day (the primary key makes a second pass that day a no-op),
    creates a provisional run for each campaign in voting or review, and for each closed
    campaign with ``results.auto_publish`` a run followed by a publish that skips input
    already published (same input digest). Everything is enqueued after the commit.
    """
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from service.clock import now
    from service.domain.campaigns import campaign_status
    from service.domain.rankings import create_run, record_failure
    from service.extensions import db
    from service.models import Campaign, NightlyMark

    at = now()
    day = nightly_day(at)
    db.session.add(NightlyMark(day=day, started_at=at))
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return {"day": day.isoformat(), "skipped": True, "runs": [], "publish": []}

    planned: list[tuple[str, int, bool]] = []
    for campaign in db.session.scalars(select(Campaign).order_by(Campaign.id)):
        status = campaign_status(campaign, at)
        if status in ("voting", "review"):
            planned.append((create_run(campaign, "nightly").id, campaign.id, False))
        elif status == "closed" and campaign.rules.results.auto_publish:
            planned.append((create_run(campaign, "nightly").id, campaign.id, True))
    db.session.commit()

    from redis import RedisError

    runs, publishing = [], []
    for run_id, campaign_id, then_publish in planned:
        try:
            job = enqueue_compute(run_id)
            if then_publish:
                enqueue_publish(campaign_id, run_id, True, depends_on=_after(job))
                publishing.append(run_id)
            runs.append(run_id)
        except RedisError as exc:
            from service.models import RankingRun

            record_failure(
                db.session.get(RankingRun, run_id), "queue_unavailable", f"enqueue failed: {exc}"
            )
            db.session.commit()
    return {"day": day.isoformat(), "skipped": False, "runs": runs, "publish": publishing}


def nightly() -> dict[str, Any]:
    """The job that ``rq cron`` enqueues at 02:00 Asia/Shanghai (workers/cron.py)."""
    import time

    from service.extensions import db
    from service.observability import NIGHTLY_SUCCESS_KEY
    from service.redis_conn import get_redis

    app = get_app()
    with app.app_context():
        try:
            outcome = run_nightly()
        finally:
            db.session.remove()
    # For the votes_nightly_last_success_timestamp_seconds gauge (alert when stale).
    get_redis(app.config["REDIS_URL"]).set(NIGHTLY_SUCCESS_KEY, time.time())
    return outcome
