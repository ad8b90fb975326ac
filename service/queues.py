"""Queue names, enqueue defaults and the jobs the service enqueues, in one place.

The service never imports ``workers``: jobs are enqueued by dotted name (rq imports
``workers.jobs`` in the worker), so the web process does not load the worker code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, has_app_context
from rq import Callback, Queue, Retry
from rq.job import Dependency, Job

from .redis_conn import get_redis

RANKINGS = "rankings"
DEFAULT = "default"
ALL = (RANKINGS, DEFAULT)

# Back-off for transient failures (database restart, lost connection, timeout). The
# jobs are idempotent, so a retry of a half-done attempt is always safe.
RETRY_MAX = 3
RETRY_INTERVALS = [10, 30, 60]
RESULT_TTL = 24 * 3600  # a finished job's return value: admins look the same day
FAILURE_TTL = 7 * 24 * 3600  # failed jobs stay inspectable for a week
DEFAULT_JOB_TIMEOUT = 900


def job_id_for(run_id: str) -> str:
    # Deterministic: re-enqueueing a run can never create a second job for it.
    return f"ranking-{run_id}"


# The job entry points (workers/jobs.py), by dotted name.
COMPUTE_JOB = "workers.jobs.compute_ranking"
COMPUTE_FAILURE_CALLBACK = "workers.jobs.on_compute_failure"
PUBLISH_JOB = "workers.jobs.publish"


def connection():
    """The app's Redis (no connection at import time)."""
    return get_redis(current_app.config["REDIS_URL"])


def queue(name: str = RANKINGS, redis=None) -> Queue:
    return Queue(name, connection=redis if redis is not None else connection())


def enqueue(
    func: Callable | str,
    *args: Any,
    queue_name: str = RANKINGS,
    redis=None,
    **options: Any,
) -> Job:
    """Enqueue with the service's defaults; call it after the commit, with ids only.

    ``options`` go to ``Queue.enqueue`` (``job_id``, ``depends_on``, ``on_failure``...)
    and override the defaults. Raises ``redis.RedisError`` when Redis is down.
    """
    timeout = (
        current_app.config.get("JOB_TIMEOUT", DEFAULT_JOB_TIMEOUT)
        if has_app_context()
        else DEFAULT_JOB_TIMEOUT
    )
    defaults: dict[str, Any] = {
        "job_timeout": timeout,
        "result_ttl": RESULT_TTL,
        "failure_ttl": FAILURE_TTL,
        "retry": Retry(max=RETRY_MAX, interval=RETRY_INTERVALS),
    }
    defaults.update(options)
    # rq takes a callable or a dotted name; its TypeVar does not accept their union.
    return queue(queue_name, redis).enqueue(func, args=args, **defaults)  # type: ignore[type-var]


def depth(name: str, redis) -> int:
    """Jobs waiting in queue ``name`` (the votes_queue_depth gauge)."""
    return Queue(name, connection=redis).count


def enqueue_compute(run_id: str, redis=None) -> Job:
    """Enqueue ``compute_ranking(run_id)`` with the failure recorder (after the commit)."""
    return enqueue(
        COMPUTE_JOB,
        run_id,
        job_id=job_id_for(run_id),
        on_failure=Callback(COMPUTE_FAILURE_CALLBACK),
        redis=redis,
    )


def enqueue_publish(campaign_id: int, run_id: str | None, if_changed: bool = False, **options):
    return enqueue(PUBLISH_JOB, campaign_id, run_id, if_changed, **options)


def after(job: Job) -> Dependency:
    # The nightly publish runs once the run's job is final, even failed: it then
    # publishes nothing (if_changed skips unfinished runs) instead of waiting forever.
    return Dependency(jobs=[job], allow_failure=True)


def job_is_alive(job: Job, queues: list[Queue]) -> bool:
    """Whether ``job`` is where its status says (the watchdog re-queues a run otherwise)."""
    status = job.get_status(refresh=False)
    queue = next((q for q in queues if q.name == job.origin), None)
    if queue is None:
        return True  # not ours to judge
    if status == "queued":
        return job.id in queue.get_job_ids()
    if status == "scheduled":
        return job.id in queue.scheduled_job_registry
    if status == "started":
        return job.id in queue.started_job_registry
    if status == "deferred":
        return job.id in queue.deferred_job_registry
    # finished, failed, stopped, canceled: the job is over; its failure callback records
    # the run (a failed run is not ours to retry).
    return True
