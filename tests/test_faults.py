"""Faults survived, nothing lost: Redis and PostgreSQL stopped under real processes.

The web tier runs as the real gunicorn processes (gunicorn.conf.py); the Redis and
PostgreSQL servers that get stopped are throw-away ones started by the test, never the
machine's.
"""

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import ADMIN, campaign_doc
from tests.processes import (
    PostgresServer,
    RedisServer,
    free_port,
    gunicorn,
    http,
    wait_healthy,
    wait_until,
)


def live_campaign(slug: str) -> dict:
    """A campaign whose voting window contains the real current time (for subprocesses)."""
    now = datetime.now(UTC)
    return campaign_doc(
        slug,
        voting={
            "opens_at": (now - timedelta(hours=1)).isoformat(),
            "closes_at": (now + timedelta(days=1)).isoformat(),
        },
        review={
            "opens_at": (now - timedelta(hours=1)).isoformat(),
            "closes_at": (now + timedelta(days=2)).isoformat(),
        },
    )


def ballot(voter: str, ballot_id: str | None = None) -> dict:
    return {"ballot_id": ballot_id or str(uuid.uuid4()), "voter_id": voter, "choices": ["A01"]}


@pytest.fixture
def logdir(tmp_path):
    path = tmp_path / "logs"
    path.mkdir()
    return path


def test_redis_down_voting_goes_on_and_recovers(app, client, make_campaign, logdir):
    """Redis stops: kiosks keep voting, /readyz says so, ranking gets 503 with Retry-After;
    Redis returns: everything resumes without restarting the web processes."""
    redis_server = RedisServer(logdir).start()
    make_campaign(
        "live", **{k: v for k, v in live_campaign("live").items() if k in ("voting", "review")}
    )
    kiosk = client.post("/api/v1/kiosks", json={"name": "k"}, headers=ADMIN).json
    auth = {"Authorization": f"Bearer {kiosk['token']}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = gunicorn({**os.environ, "REDIS_URL": redis_server.url}, logdir, port).start()
    try:
        wait_healthy(base)
        url = f"{base}/api/v1/campaigns/live/ballots"
        assert [
            http("POST", url, ballot(f"1380000000{i}"), auth, form=True)[0] for i in range(5)
        ] == [201] * 5

        redis_server.stop()
        assert [
            http("POST", url, ballot(f"1390000000{i}"), auth, form=True)[0] for i in range(5)
        ] == [201] * 5
        status, _, body = http("GET", f"{base}/readyz")
        assert status == 503 and body["error"]["details"]["checks"]["redis"].startswith("down")
        status, headers, body = http("POST", f"{base}/api/v1/campaigns/live/rankings", {}, ADMIN)
        assert status == 503 and body["error"]["code"] == "queue_unavailable"
        assert int(headers["Retry-After"]) > 0

        redis_server.start()  # same port, a fresh server: the web tier reconnects by itself
        wait_until(lambda: http("GET", f"{base}/readyz")[0] == 200, 30, 0.5, "readyz 200")
        status, _, body = http("POST", f"{base}/api/v1/campaigns/live/rankings", {}, ADMIN)
        assert status == 202, body
    finally:
        web.stop()
        redis_server.stop()
    with app.app_context():
        from service.extensions import db

        counted = db.session.execute(text("SELECT count(*) FROM ballots")).scalar()
    assert counted == 10
    assert "13900000001" not in web.output() and "13800000001" not in web.output()


def test_postgres_down_503_no_partial_write_and_recovery(logdir):
    """PostgreSQL stops: ballots get 503 unavailable with Retry-After and nothing half-written;
    it returns: the service recovers by itself (pool pre-ping) and the retry is accepted."""
    pg = PostgresServer().init().start()
    redis_server = RedisServer(logdir).start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": pg.url, "REDIS_URL": redis_server.url}
    import subprocess
    import sys

    from tests.processes import ROOT

    migrated = subprocess.run(
        [sys.executable, "-m", "service.cli", "db", "upgrade"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    web = gunicorn(env, logdir, port).start()
    engine = create_engine(pg.url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        wait_healthy(base)
        doc = live_campaign("pg")
        opens = doc["voting"]["opens_at"]
        doc["voting"]["opens_at"] = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        assert http("POST", f"{base}/api/v1/campaigns", doc, ADMIN)[0] == 201
        entries = [{"code": "A01", "title": "热线"}, {"code": "A02", "title": "团购"}]
        assert http("POST", f"{base}/api/v1/campaigns/pg/entries", entries, ADMIN)[0] == 201
        # Entries are set up before voting opens; then the office opens voting.
        patch = {"voting": {"opens_at": opens}}
        assert http("PATCH", f"{base}/api/v1/campaigns/pg", patch, ADMIN)[0] == 200
        url = f"{base}/api/v1/campaigns/pg/ballots"
        assert http("POST", url, ballot("13800000001"))[0] == 201

        pg.stop("immediate")
        lost = ballot("13800000002")
        status, headers, body = http("POST", url, lost)
        assert status == 503 and body["error"]["code"] == "unavailable", body
        assert int(headers["Retry-After"]) > 0
        assert http("GET", f"{base}/readyz")[0] == 503

        pg.start()
        # The same ballot retried after the outage is accepted: nothing of it was kept.
        status = wait_until(
            lambda: http("POST", url, lost)[0] in (201, 200) and 201,
            30,
            0.5,
            "a ballot accepted after PostgreSQL came back",
        )
        assert status == 201
        assert http("GET", f"{base}/readyz")[0] == 200
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM ballots")).scalar() == 2
            assert conn.execute(text("SELECT count(*) FROM ballot_choices")).scalar() == 2
    finally:
        web.stop()
        engine.dispose()
        redis_server.stop()
        pg.cleanup()
