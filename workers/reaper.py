"""The watchdog that re-queues ranking runs whose RQ job was lost.

A Redis restart loses every job (Redis holds only the queue; the database holds the
runs), and a Redis blip can kill rq's scheduler process, which the worker only restarts
every ten minutes: a retry then waits that long. Meanwhile the run shows ``queued`` or
``running``. ``VotesWorker`` calls ``reap`` every ``REAPER_INTERVAL_SECONDS`` (default
30) from its main loop, so it keeps running whatever happened to the scheduler. Each pass,
under a Redis lock so that one worker of many does it:

1. abandoned jobs of dead workers (``StartedJobRegistry`` entries whose heartbeat
   expired) go to rq's own failure handling: a retry, or the failure callback;
2. retries due for more than ``REAPER_GRACE_SECONDS`` that no scheduler moved are queued;
3. a run ``queued`` or ``running`` (created more than the grace ago) whose job is missing,
   or is in none of the places its status says, is queued again under its job id
   (``service.domain.runs.requeue_lost_runs``).

Re-queuing is safe: ``compute_ranking`` does nothing for a finished run, and the lock
and the fixed job id keep one run from being queued twice by two workers.
"""

from __future__ import annotations

import logging
import time

from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

from service.domain.runs import requeue_lost_runs

log = logging.getLogger(__name__)

LOCK_KEY = "votes:reaper:lock"


def reap(connection, queue_names, interval: int, grace: int) -> list[str]:
    """One pass; returns the ids of the runs queued again. Call inside an app context."""
    if not connection.set(LOCK_KEY, "1", nx=True, ex=max(1, interval - 1)):
        return []  # another worker did this pass
    queues = [Queue(name, connection=connection) for name in queue_names]
    for queue in queues:
        queue.started_job_registry.cleanup()
        _promote_overdue(queue, grace)
    return requeue_lost_runs(connection, queues, grace)


def _promote_overdue(queue: Queue, grace: int) -> None:
    registry = queue.scheduled_job_registry
    for job_id in registry.get_jobs_to_schedule(int(time.time()) - grace):
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            registry.remove(job_id)
            continue
        registry.remove(job)
        queue.enqueue_job(job, at_front=job.should_enqueue_at_front())
        log.warning("reaper: queued retry %s, overdue (no scheduler moved it)", job_id)
