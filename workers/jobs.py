"""RQ jobs: ``compute_ranking``, ``publish`` and ``nightly`` (DESIGN.md "Jobs").

Jobs run outside Flask: each uses the app created once per process (``get_app``) and
calls one domain function inside ``app.app_context()`` (service/domain/runs.py,
service/domain/nightly.py). The service enqueues them by dotted name
(service/queues.py). They take ids, never ORM objects, and are idempotent:

- ``compute_ranking(run_id)`` does nothing for a run that is already finished or failed,
  and recomputes a run left ``queued``/``running`` by a killed worker (the result and
  the ballot tree are written in the one transaction that marks the run finished).
- ``publish(campaign_id, run_id)`` returns the existing publication of a run.

Failures: a ``RankingError`` (impossible quotas, a method the data cannot satisfy) is
permanent: the run is recorded ``failed`` with the engine's code and message and the
job fails without retry. Anything else (database down, timeout, a killed worker) is
transient: RQ retries with back-off (``service.queues``) and ``on_compute_failure``
records the run ``failed`` once no retry is left.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from rq import get_current_job

from engine import RankingError
from service import create_app
from service.domain import nightly as nightly_pass
from service.domain import publications, runs

log = logging.getLogger(__name__)

_app: Flask | None = None


def get_app() -> Flask:
    """The Flask app for jobs, created once per process."""
    global _app
    if _app is None:
        _app = create_app()
    return _app


def _no_retry() -> None:
    """Make the current RQ job's failure final (permanent errors are not retried)."""
    job = get_current_job()
    if job is not None:
        job.retries_left = 0


def compute_ranking(run_id: str) -> dict[str, Any]:
    with get_app().app_context():
        try:
            return runs.execute_run(run_id)
        except RankingError:
            _no_retry()
            raise


def on_compute_failure(job, connection, exc_type, exc_value, tb) -> None:
    """RQ failure callback (also called for jobs of a killed worker)."""
    run_id = job.args[0] if job.args else None
    message = f"{getattr(exc_type, '__name__', 'Error')}: {exc_value}"[:2000]
    try:
        with get_app().app_context():
            runs.record_job_failure(run_id, message, job.retries_left)
    except Exception:  # the database may be what failed; the retry will try again
        log.exception("could not record the failure of ranking run %s", run_id)


def publish(campaign_id: int, run_id: str | None = None, if_changed: bool = False) -> dict:
    """Publish a finished run as the next version, in one transaction."""
    with get_app().app_context():
        try:
            return runs.publish_run(campaign_id, run_id, if_changed)
        except publications.PublishError:
            _no_retry()
            raise


def nightly() -> dict[str, Any]:
    """The job that ``rq cron`` enqueues at 02:00 Asia/Shanghai (workers/cron.py)."""
    with get_app().app_context():
        return nightly_pass.scheduled_nightly()
