"""Queue names and enqueue defaults, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq import Queue, Retry
from rq.job import Job

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


def connection():
    """The app's Redis (no connection at import time)."""
    from flask import current_app

    from service.redis_conn import get_redis

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
    from flask import current_app, has_app_context

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
    return queue(queue_name, redis).enqueue(func, args=args, **defaults)
