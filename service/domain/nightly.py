"""The nightly pass (DESIGN.md "Jobs"): provisional runs, and auto-publishing closed
campaigns. The ``nightly`` job (workers/jobs.py, scheduled by workers/cron.py) and
``votes nightly`` run it."""

from __future__ import annotations

import time
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from redis import RedisError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..clock import now
from ..extensions import db
from ..models import Campaign, NightlyMark, RankingRun
from ..observability import NIGHTLY_SUCCESS_KEY
from ..queues import after, enqueue_compute, enqueue_publish
from ..redis_conn import get_redis
from .campaigns import campaign_status
from .rankings import create_run, record_failure

NIGHTLY_TZ = ZoneInfo("Asia/Shanghai")


def nightly_day(at=None) -> date:
    return (at or now()).astimezone(NIGHTLY_TZ).date()


def run_nightly() -> dict[str, Any]:
    """The nightly pass, inside an app context (the job and ``votes nightly``).

    Marks the Asia/Shanghai day (the primary key makes a second pass that day a no-op),
    creates a provisional run for each campaign in voting or review, and for each closed
    campaign with ``results.auto_publish`` a run followed by a publish that skips input
    already published (same input digest). Everything is enqueued after the commit.
    """
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

    runs, publishing = [], []
    for run_id, campaign_id, then_publish in planned:
        try:
            job = enqueue_compute(run_id)
            if then_publish:
                enqueue_publish(campaign_id, run_id, True, depends_on=after(job))
                publishing.append(run_id)
            runs.append(run_id)
        except RedisError as exc:
            run = db.session.get(RankingRun, run_id)
            assert run is not None  # created above in this session
            record_failure(run, "queue_unavailable", f"enqueue failed: {exc}")
            db.session.commit()
    return {"day": day.isoformat(), "skipped": False, "runs": runs, "publish": publishing}


def scheduled_nightly() -> dict[str, Any]:
    """The scheduled pass (the ``nightly`` job): ``run_nightly``, then the time of its
    success for the votes_nightly_last_success_timestamp_seconds gauge (alert when
    stale)."""
    try:
        outcome = run_nightly()
    finally:
        db.session.remove()
    get_redis(current_app.config["REDIS_URL"]).set(NIGHTLY_SUCCESS_KEY, time.time())
    return outcome
