"""Periodic jobs, loaded by the one `rq cron` process (`votes cron`).

rq's cron evaluates expressions with croniter against ``rq.utils.now()``, an aware UTC
datetime, so schedules here are in UTC. DESIGN.md wants the nightly pass at 02:00 in
Asia/Shanghai: that is 18:00 UTC the day before, all year (China has no daylight saving
time). Run exactly one cron process; a second one would only enqueue a second nightly
job, which the day's NightlyMark turns into a no-op.
"""

from rq import cron

from service.config import env_int
from service.queues import FAILURE_TTL, RANKINGS, RESULT_TTL
from workers.jobs import nightly

NIGHTLY_CRON = "0 18 * * *"  # 02:00 Asia/Shanghai (UTC+8, no DST)

cron.register(
    nightly,
    queue_name=RANKINGS,
    cron=NIGHTLY_CRON,
    job_timeout=env_int("JOB_TIMEOUT", 900),
    result_ttl=RESULT_TTL,
    failure_ttl=FAILURE_TTL,
    name="nightly",
)
