"""What happens to a ranking run: started (one function for the API and the console),
computed, its failure recorded, published, and queued again when its job was lost.

The worker's job entry points (workers/jobs.py) call these inside the app context of
their process and only add what is rq's business (a permanent error is not retried).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from redis import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine import RankingError

from ..clock import now
from ..errors import ApiError
from ..extensions import db
from ..models import Campaign, RankingRun
from ..queues import enqueue_compute, job_is_alive
from . import publications, rankings
from .audit import audit

log = logging.getLogger(__name__)


def execute_run(run_id: str) -> dict[str, Any]:
    """Compute run ``run_id`` (the ``compute_ranking`` job).

    Does nothing for a run that is already finished or failed. A ``RankingError`` is
    recorded on the run and raised again (permanent); any other failure rolls back
    (removing the session) and propagates, for rq to retry.
    """
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
        assert run is not None  # compute() above loaded it
        rankings.record_failure(run, exc.code, exc.message, exc.details)
        db.session.commit()
        raise
    finally:  # any other failure: removing the session rolls back, and RQ retries
        db.session.remove()
    return {"run_id": run_id, "status": "finished"}


def record_job_failure(run_id: str | None, message: str, retries_left: int | None) -> None:
    """The compute job failed: with retries left the run goes back to ``queued`` noting
    the error; after the last try it is ``failed``. A run already failed (a
    RankingError) keeps its error."""
    run = db.session.get(RankingRun, run_id)
    if run is None or run.status in ("finished", "failed"):
        return
    if retries_left:
        run.status = "queued"
        run.error = rankings.canonical_json(
            {
                "code": "retrying",
                "message": message,
                "details": {"retries_left": retries_left},
            }
        )
    else:
        rankings.record_failure(run, "job_failed", message)
    db.session.commit()
    db.session.remove()


def publish_run(campaign_id: int, run_id: str | None = None, if_changed: bool = False) -> dict:
    """Publish a finished run as the next version, in one transaction (the ``publish``
    job). Returns the existing publication of a run already published; raises
    ``publications.PublishError`` (permanent) when the run cannot be published."""
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


def requeue_lost_runs(connection, queues, grace: int) -> list[str]:
    """Queue again every run ``queued`` or ``running`` (created more than ``grace``
    seconds ago) whose job is missing or in none of the places its status says.
    Returns the ids of the runs queued again."""
    requeued = []
    try:
        runs = db.session.scalars(
            select(RankingRun).where(
                RankingRun.status.in_(("queued", "running")),
                RankingRun.created_at <= now() - timedelta(seconds=grace),
            )
        ).all()
        for run in runs:
            try:  # a run without a job id has no job to find: it is lost too
                job = Job.fetch(run.job_id, connection=connection) if run.job_id else None
            except NoSuchJobError:
                job = None
            if job is not None and job_is_alive(job, queues):
                continue
            enqueue_compute(run.id, redis=connection)
            run.status = "queued"
            run.error = rankings.canonical_json(
                {
                    "code": "requeued",
                    "message": "任务丢失（Redis 重启或进程终止），已重新排队 / "
                    "the job was lost (Redis restart or a dead worker) and is queued again",
                    "details": {},
                }
            )
            db.session.commit()
            requeued.append(run.id)
            log.warning("reaper: ranking run %s had lost its job; queued again", run.id)
    finally:
        db.session.remove()
    return requeued


def queue_unavailable() -> ApiError:
    return ApiError(
        503,
        "queue_unavailable",
        "任务队列暂时不可用 / The job queue is temporarily unavailable",
        headers={"Retry-After": "10"},
    )


def start_run(campaign: Campaign, actor: str, trigger: str = "manual") -> tuple[RankingRun, str]:
    """Create, commit and enqueue a run; returns (run, job id). Commits.

    The run is recorded ``queued`` and committed before its job is enqueued (a worker must
    find it); with Redis down the run is recorded ``failed`` (``queue_unavailable``)
    instead of being left queued with no job behind it, and the caller gets 503."""
    run = rankings.create_run(campaign, trigger)
    audit("ranking.start", actor, campaign.id, run_id=run.id)
    db.session.commit()
    try:
        job = enqueue_compute(run.id)
    except RedisError as exc:
        rankings.record_failure(run, "queue_unavailable", f"could not enqueue: {exc}")
        db.session.commit()
        raise queue_unavailable() from exc
    return run, job.id
