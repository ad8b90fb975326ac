"""Starting a ranking run: one function for the API (``POST …/rankings``) and the console.

The run is recorded ``queued`` and committed before its job is enqueued (a worker must
find it); with Redis down the run is recorded ``failed`` (``queue_unavailable``) instead
of being left queued with no job behind it, and the caller gets 503.
"""

from __future__ import annotations

from redis import RedisError

from ..errors import ApiError
from ..extensions import db
from ..models import Campaign, RankingRun
from . import rankings
from .audit import audit


def queue_unavailable() -> ApiError:
    return ApiError(
        503,
        "queue_unavailable",
        "任务队列暂时不可用 / The job queue is temporarily unavailable",
        headers={"Retry-After": "10"},
    )


def start_run(campaign: Campaign, actor: str, trigger: str = "manual") -> tuple[RankingRun, str]:
    """Create, commit and enqueue a run; returns (run, job id). Commits."""
    from workers.jobs import enqueue_compute

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
