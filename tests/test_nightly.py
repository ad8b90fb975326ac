"""The nightly pass: provisional runs for open campaigns, publication for closed ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from rq import Queue
from rq.cron import CronScheduler
from sqlalchemy import select

from service.extensions import db
from service.models import Campaign, NightlyMark, Publication, RankingRun
from service.queues import RANKINGS
from service.redis_conn import get_redis
from tests.support import add_ballots, drain
from workers import jobs

SHANGHAI = ZoneInfo("Asia/Shanghai")
VOTE_ONLY = {"public_weight": 1, "expert_weight": 0}
# 18:00 UTC on the 22nd is 02:00 on the 23rd in Shanghai.
NIGHT = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)


def windows(opens: str, closes: str, review_closes: str) -> dict:
    return {
        "voting": {"opens_at": opens, "closes_at": closes},
        "review": {"opens_at": opens, "closes_at": review_closes},
    }


@pytest.fixture
def campaigns(app, clock, make_campaign, workers_app):
    """open (voting), done (closed, auto_publish), quiet (closed, no auto_publish),
    later (upcoming); entries are added before voting opens, as an office would."""
    clock.set(datetime(2026, 10, 1, tzinfo=UTC))
    make_campaign("open", ranking=VOTE_ONLY)
    past = windows(
        "2026-11-01T09:00:00+08:00", "2026-11-10T18:00:00+08:00", "2026-11-12T18:00:00+08:00"
    )
    make_campaign("done", ranking=VOTE_ONLY, results={"auto_publish": True}, **past)
    make_campaign("quiet", ranking=VOTE_ONLY, results={"auto_publish": False}, **past)
    future = windows(
        "2026-12-10T09:00:00+08:00", "2026-12-20T18:00:00+08:00", "2026-12-25T18:00:00+08:00"
    )
    make_campaign("later", ranking=VOTE_ONLY, **future)
    for slug in ("open", "done", "quiet"):
        add_ballots(app, slug, [["A01"], ["A01", "A02"], ["A03"]])
    clock.set(NIGHT)
    return clock


def runs_and_versions(app) -> dict[str, tuple[list[str], list[int]]]:
    with app.app_context():
        out = {}
        for c in db.session.scalars(select(Campaign).order_by(Campaign.slug)):
            runs = db.session.scalars(
                select(RankingRun.status).where(RankingRun.campaign_id == c.id)
            ).all()
            versions = db.session.scalars(
                select(Publication.version)
                .where(Publication.campaign_id == c.id)
                .order_by(Publication.version)
            ).all()
            out[c.slug] = (sorted(runs), list(versions))
        return out


def test_nightly_publishes_what_it_should_and_nothing_else(client, app, campaigns):
    """At 02:00 the open campaign gets a provisional run, the closed auto-publish one is
    published, and the others are left alone."""
    summary = jobs.nightly()
    assert summary["day"] == "2026-11-23" and not summary["skipped"]
    drain(app)
    assert runs_and_versions(app) == {
        "done": (["finished"], [1]),
        "later": ([], []),
        "open": (["finished"], []),
        "quiet": ([], []),
    }
    doc = client.get("/api/v1/campaigns/done/results").json
    assert doc["version"] == 1 and doc["ballots_counted"] == 3
    assert client.get("/api/v1/campaigns/open/results").status_code == 404
    with app.app_context():
        triggers = set(db.session.scalars(select(RankingRun.trigger)))
    assert triggers == {"nightly"}


def test_a_second_nightly_the_same_day_is_a_no_op(client, app, campaigns):
    """Two nightly jobs on one Shanghai day (a restarted cron, a manual run) do one pass."""
    jobs.nightly()
    campaigns.set(NIGHT + timedelta(hours=5))  # 07:00 in Shanghai, same date
    again = jobs.nightly()
    assert again == {"day": "2026-11-23", "skipped": True, "runs": [], "publish": []}
    drain(app)
    assert runs_and_versions(app)["open"] == (["finished"], [])
    with app.app_context():
        assert db.session.scalars(select(NightlyMark.day)).all() == [datetime(2026, 11, 23).date()]


def test_unchanged_closed_campaign_is_not_republished_but_changed_one_is(client, app, campaigns):
    """Night after night, identical input publishes nothing new; a change publishes v2."""
    jobs.nightly()
    drain(app)
    campaigns.set(NIGHT + timedelta(days=1))
    jobs.nightly()
    drain(app)
    assert runs_and_versions(app)["done"] == (["finished", "finished"], [1])

    add_ballots(app, "done", [["A02"]])  # e.g. a kiosk's batch arriving late
    campaigns.set(NIGHT + timedelta(days=2))
    jobs.nightly()
    drain(app)
    assert runs_and_versions(app)["done"] == (["finished"] * 3, [1, 2])
    assert client.get("/api/v1/campaigns/done/results").json["ballots_counted"] == 4


def test_votes_nightly_command_runs_the_same_pass(client, app, campaigns):
    """`votes nightly` does by hand what cron does, and says when the day is done."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["nightly"])
    assert result.exit_code == 0, result.output
    assert "2026-11-23" in result.output and "2 run(s)" in result.output
    drain(app)
    assert runs_and_versions(app)["done"] == (["finished"], [1])
    result = runner.invoke(args=["nightly"])
    assert result.exit_code == 0 and "already ran" in result.output


def test_cron_config_registers_nightly_at_two_in_shanghai(client, app, campaigns):
    """Loaded as `rq cron workers.cron` loads it, the config schedules workers.jobs.nightly
    on the rankings queue at 18:00 UTC, which is 02:00 in Asia/Shanghai."""
    conn = get_redis(app.config["REDIS_URL"])
    scheduler = CronScheduler(connection=conn)
    scheduler.load_config_from_file("workers.cron")
    [job] = scheduler.get_jobs()
    assert job.func_name == "workers.jobs.nightly" and job.name == "nightly"
    assert job.queue_name == RANKINGS and job.cron == "0 18 * * *"
    assert job.next_enqueue_time.utcoffset() == timedelta(0)
    local = job.next_enqueue_time.astimezone(SHANGHAI)
    assert (local.hour, local.minute) == (2, 0)

    # What the scheduler enqueues is the real nightly pass.
    job.enqueue(conn)
    assert Queue(RANKINGS, connection=conn).count == 1
    drain(app)
    assert runs_and_versions(app)["done"] == (["finished"], [1])


def test_nightly_success_is_visible_in_metrics(client, app, campaigns):
    """Operators can alert on a stale nightly: /metrics shows when it last succeeded."""

    def sample(text: str) -> list[str]:
        return [
            x
            for x in text.splitlines()
            if x.startswith("votes_nightly_last_success_timestamp_seconds ")
        ]

    assert sample(client.get("/metrics").get_data(as_text=True)) == []
    jobs.nightly()
    after = client.get("/metrics").get_data(as_text=True)
    line = next(
        x
        for x in after.splitlines()
        if x.startswith("votes_nightly_last_success_timestamp_seconds ")
    )
    assert abs(float(line.split()[1]) - datetime.now(UTC).timestamp()) < 60
