"""The deployment as processes: the exact commands the compose services run.

migrate (`votes db upgrade`), web (`votes serve`: gunicorn with gunicorn.conf.py),
worker (`votes worker`) and cron (`votes cron`) against a PostgreSQL and a Redis started
for the test. Ballots are cast over HTTP, experts score, a ranking is computed by the
worker and published, results and /metrics are read; then everything gets SIGTERM —
including the web tier while ballots are still arriving — and nothing acknowledged is
lost.
"""

import os
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import ADMIN, campaign_doc
from tests.processes import (
    PostgresServer,
    Process,
    RedisServer,
    free_port,
    http,
    migrate,
    wait_healthy,
    wait_until,
)

VOTES = str(Path(sys.executable).parent / "votes")


@pytest.fixture
def stack(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    pg = PostgresServer().init().start()
    redis_server = RedisServer(logdir).start()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "VOTES_INSTANCE": str(tmp_path / "inst"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    processes = {}
    try:
        migrate(env, [VOTES])
        for name, argv in (
            ("web", [VOTES, "serve"]),
            ("worker", [VOTES, "worker"]),
            ("cron", [VOTES, "cron"]),
        ):
            processes[name] = Process(name, argv, env, logdir).start()
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)
        yield {"base": base, "pg": pg, "processes": processes}
    finally:
        for process in processes.values():
            process.stop()
        redis_server.stop()
        pg.cleanup()


def _open_campaign(base: str) -> None:
    now = datetime.now(UTC)
    doc = campaign_doc(
        "deploy",
        voting={
            "opens_at": (now + timedelta(minutes=5)).isoformat(),
            "closes_at": (now + timedelta(days=1)).isoformat(),
        },
        review={
            "opens_at": (now - timedelta(hours=1)).isoformat(),
            "closes_at": (now + timedelta(days=1)).isoformat(),
            "min_reviews": 2,
        },
        selection={"rule": "top", "winners": 2},
    )
    assert http("POST", f"{base}/api/v1/campaigns", doc, ADMIN)[0] == 201
    entries = [{"code": f"A0{i}", "title": f"案例{i}", "area": f"居民区{i}"} for i in range(1, 5)]
    assert http("POST", f"{base}/api/v1/campaigns/deploy/entries", entries, ADMIN)[0] == 201
    patch = {"voting": {"opens_at": (now - timedelta(hours=1)).isoformat()}}
    assert http("PATCH", f"{base}/api/v1/campaigns/deploy", patch, ADMIN)[0] == 200


def _metric(text_: str, name: str, **labels) -> float:
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text_.splitlines() if line.startswith(want)
    )


def test_compose_commands_run_the_whole_system(stack):
    """Vote over HTTP, score, rank in the worker, publish, read results and metrics."""
    base = stack["base"]
    _open_campaign(base)
    kiosk = http("POST", f"{base}/api/v1/kiosks", {"name": "大厅"}, ADMIN)[2]
    auth = {"Authorization": f"Bearer {kiosk['token']}"}
    url = f"{base}/api/v1/campaigns/deploy/ballots"
    for i in range(20):
        choices = ["A01", "A02"] if i % 2 else ["A01", "A03"]
        body = {"ballot_id": str(uuid.uuid4()), "voter_id": f"1380000{i:04d}", "choices": choices}
        assert http("POST", url, body, auth, form=True)[0] == 201
    batch = {
        "ballots": [
            {"ballot_id": str(uuid.uuid4()), "voter_id": f"1390000{i:04d}", "choices": ["A04"]}
            for i in range(10)
        ]
    }
    results = http("POST", f"{url}/batch", batch, auth)[2]["results"]
    assert {r["status"] for r in results} == {"accepted"}

    for n in range(3):
        token = http(
            "POST", f"{base}/api/v1/campaigns/deploy/experts", {"name": f"专家{n}"}, ADMIN
        )[2]["token"]
        for code, points in (("A01", 30), ("A02", 35), ("A03", 20), ("A04", 10)):
            status = http(
                "PUT",
                f"{base}/api/v1/campaigns/deploy/entries/{code}/score",
                {"scores": {"impact": points, "novelty": 10}},
                {"Authorization": f"Bearer {token}"},
            )[0]
            assert status == 201

    status, _, accepted = http("POST", f"{base}/api/v1/campaigns/deploy/rankings", {}, ADMIN)
    assert status == 202
    run = wait_until(
        lambda: (lambda r: r if r["status"] in ("finished", "failed") else None)(
            http("GET", f"{base}/api/v1/rankings/{accepted['run_id']}", headers=ADMIN)[2]
        ),
        60,
        0.3,
        "the worker to finish the run",
    )
    assert run["status"] == "finished", run
    assert http("POST", f"{base}/api/v1/campaigns/deploy/publications", {}, ADMIN)[0] == 202
    published = wait_until(
        lambda: (lambda r: r[2] if r[0] == 200 else None)(
            http("GET", f"{base}/api/v1/campaigns/deploy/results")
        ),
        60,
        0.3,
        "the publication",
    )
    assert published["version"] == 1 and published["ballots_counted"] == 30
    votes = {row["code"]: row["votes"] for row in published["rows"]}
    assert votes == {"A01": 20, "A02": 10, "A03": 10, "A04": 10}
    assert [row["code"] for row in published["rows"] if row["selected"]] == ["A01", "A02"]
    status, headers, csv_text = http("GET", f"{base}/api/v1/campaigns/deploy/results.csv")
    assert status == 200 and csv_text.startswith("\ufeff") and "案例1" in csv_text

    metrics = http("GET", f"{base}/metrics")[2]
    # Aggregated across the gunicorn worker processes (multiprocess mode).
    assert _metric(metrics, "votes_ballots_total", outcome="accepted") == 30
    assert _metric(metrics, "votes_scores_total", outcome="created") == 12
    assert "votes_request_seconds_bucket" in metrics
    cron_log = stack["processes"]["cron"].output()
    assert "workers.jobs.nightly" in cron_log and "0 18 * * *" in cron_log


def test_sigterm_loses_no_acknowledged_ballot(stack):
    """SIGTERM to the web tier while kiosks post: every ballot answered 201 is stored."""
    base = stack["base"]
    _open_campaign(base)
    kiosk = http("POST", f"{base}/api/v1/kiosks", {"name": "大厅"}, ADMIN)[2]
    auth = {"Authorization": f"Bearer {kiosk['token']}"}
    acknowledged, stop = [], threading.Event()

    def post_until_stopped(offset: int):
        i = 0
        while not stop.is_set() and i < 2000:
            body = {
                "ballot_id": str(uuid.uuid4()),
                "voter_id": f"13{offset}{i:08d}",
                "choices": ["A01"],
            }
            try:
                status, _, answer = http(
                    "POST",
                    f"{base}/api/v1/campaigns/deploy/ballots",
                    body,
                    auth,
                    form=True,
                    timeout=5,
                )
            except OSError:
                status = None  # connection refused or reset: not acknowledged
            if status == 201:
                acknowledged.append(answer["ballot_id"])
            i += 1

    threads = [threading.Thread(target=post_until_stopped, args=(k,)) for k in (5, 6, 7)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acknowledged) >= 30, 30, 0.05, "ballots flowing")
    web = stack["processes"]["web"]
    web.signal(signal.SIGTERM)
    assert web.proc.wait(40) == 0  # graceful: in-flight requests finished first
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    for name in ("worker", "cron"):
        process = stack["processes"][name]
        process.signal(signal.SIGTERM)
        assert process.proc.wait(40) is not None
    engine = create_engine(stack["pg"].url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(text("SELECT id FROM ballots")).scalars())
    finally:
        engine.dispose()
    assert set(acknowledged) <= stored
    assert len(acknowledged) >= 30
