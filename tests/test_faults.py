"""Faults survived, nothing lost: Redis and PostgreSQL stopped under real processes.

The web tier runs as the real gunicorn processes (gunicorn.conf.py); the Redis and
PostgreSQL servers that get stopped are throw-away ones started by the test, never the
machine's.
"""

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from tests.processes import (
    PostgresServer,
    RedisServer,
    free_port,
    gunicorn,
    http,
    migrate,
    wait_healthy,
    wait_until,
)
from tests.support import ADMIN, campaign_doc

pytestmark = pytest.mark.slow  # real processes stopped and killed


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

    migrate(env)
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


def _bulk_ballots(app, slug: str, n: int) -> None:
    """Insert n counted ballots directly (set-based), fast enough for a test."""
    import hashlib

    from sqlalchemy import insert, select

    from engine import merkle
    from service.domain.ballots import encode_choice_ids
    from service.extensions import db
    from service.models import Ballot, BallotChoice, Campaign, Entry

    with app.app_context():
        campaign = db.session.scalar(select(Campaign).where(Campaign.slug == slug))
        entries = list(db.session.scalars(select(Entry.id).where(Entry.campaign_id == campaign.id)))
        at = datetime.fromisoformat(campaign.voting["opens_at"]) + timedelta(minutes=1)
        campaign.rules_locked_at = at
        for start in range(0, n, 10000):
            ballots, choices = [], []
            for i in range(start, min(n, start + 10000)):
                bid = str(uuid.UUID(int=i + 1, version=4))
                h = hashlib.sha256(str(i).encode()).hexdigest()
                receipt = f"{h[:4]}-{h[4:8]}-{h[8:12]}-{h[12:16]}".upper()
                entry_id = entries[i % len(entries)]
                ballots.append(
                    {
                        "id": bid,
                        "campaign_id": campaign.id,
                        "voter_key": h,
                        "dedup_slot": "once",
                        "channel": "web",
                        "cast_at": at,
                        "accepted_at": at,
                        "content_digest": h,
                        "nonce": h[:32],
                        "receipt": receipt,
                        "leaf": merkle.leaf_hash(receipt.encode()),
                        "choice_ids": encode_choice_ids([entry_id]),
                    }
                )
                choices.append(
                    {
                        "ballot_id": bid,
                        "entry_id": entry_id,
                        "campaign_id": campaign.id,
                    }
                )
            db.session.execute(insert(Ballot), ballots)
            db.session.execute(insert(BallotChoice), choices)
        db.session.commit()


def test_worker_killed_mid_run_completes_on_retry_once(
    app, client, make_campaign, logdir, short_retries
):
    """SIGKILL to the worker while it computes: the run completes on retry, one publication."""
    import sys

    from rq import Queue
    from rq.registry import StartedJobRegistry
    from rq.scheduler import RQScheduler
    from sqlalchemy import func, select

    from service.extensions import db
    from service.models import Publication, RankingRun
    from service.redis_conn import get_redis
    from tests.processes import Process

    make_campaign(
        "big",
        voting={"opens_at": "2026-11-21T09:00:00+08:00"},
        ranking={"public_weight": 1, "expert_weight": 0},
        review={"criteria": []},
    )
    _bulk_ballots(app, "big", 120_000)
    env = {**os.environ, "REDIS_URL": app.config["REDIS_URL"]}
    votes = [sys.executable, "-m", "service.cli", "worker"]
    run_id = client.post("/api/v1/campaigns/big/rankings", headers=ADMIN).json["run_id"]

    # A plain engine of its own: on SQLite the app's sessions take the write lock up
    # front (BEGIN IMMEDIATE), and a poll must not wait behind the computation.
    observer = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])

    def status():
        with observer.connect() as conn:
            return conn.execute(
                text("SELECT status FROM ranking_runs WHERE id = :id"), {"id": run_id}
            ).scalar()

    first = Process("worker-1", votes, env, logdir).start()
    try:
        wait_until(lambda: status() == "running", 60, 0.005, "the run to start")
        first.kill_tree()  # worker, work-horse and scheduler, mid-computation
    finally:
        first.stop()
    assert status() == "running"  # killed before it could finish

    # rq notices a dead worker when its heartbeat expires (about 90 s); move the clock
    # forward instead of sleeping: the registry's cleanup then hands the job to Retry,
    # which schedules it after its back-off (1 s here: short_retries). The dead worker's
    # scheduler lock outlives it by a minute, so the test plays the scheduler's part once
    # the back-off is over.
    queue = Queue("rankings", connection=get_redis(app.config["REDIS_URL"]))
    StartedJobRegistry(queue=queue).cleanup(timestamp=time.time() + 3600)
    scheduler = RQScheduler([queue], connection=queue.connection)
    scheduler.prepare_registries([queue.name])
    wait_until(
        lambda: scheduler.enqueue_scheduled_jobs() or queue.count,
        30,
        0.1,
        "the retry to become due",
    )

    second = Process("worker-2", votes, env, logdir).start()
    try:
        wait_until(lambda: status() == "finished", 90, 0.2, "the retried run to finish")
    finally:
        second.stop()
    r = client.post("/api/v1/campaigns/big/publications", json={"run_id": run_id}, headers=ADMIN)
    assert r.status_code == 202
    from rq import SimpleWorker

    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    client.post("/api/v1/campaigns/big/publications", json={"run_id": run_id}, headers=ADMIN)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Publication)) == 1
        assert db.session.scalar(select(func.count()).select_from(RankingRun)) == 1
    results = client.get("/api/v1/campaigns/big/results").json
    assert results["ballots_counted"] == 120_000 and results["version"] == 1
    observer.dispose()


def test_redis_restart_while_a_retry_is_pending_requeues_the_run(
    app, client, make_campaign, logdir, monkeypatch
):
    """A run's first try fails (a lost database connection) and its retry is scheduled;
    then Redis restarts and the job is gone. A real `votes worker` re-queues the run
    (workers/reaper.py) and finishes it, within a minute of Redis being back (short
    intervals here: REAPER_INTERVAL_SECONDS=1)."""
    import sys

    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from sqlalchemy.exc import OperationalError

    from service.domain import rankings
    from service.redis_conn import get_redis
    from tests.processes import Process
    from tests.support import VOTES, add_ballots, get_run, work_once
    from workers import jobs

    redis_server = RedisServer(logdir).start()
    monkeypatch.setitem(app.config, "REDIS_URL", redis_server.url)
    monkeypatch.setattr(jobs, "_app", app)
    make_campaign("c1")
    add_ballots(app, "c1", VOTES)
    real = rankings.load_ballots

    def db_down(*args, **kwargs):
        raise OperationalError("SELECT …", {}, Exception("server closed the connection"))

    monkeypatch.setattr(rankings, "load_ballots", db_down)
    run_id = client.post("/api/v1/campaigns/c1/rankings", headers=ADMIN).json["run_id"]
    work_once(app)  # the first try fails: a retry is scheduled
    monkeypatch.setattr(rankings, "load_ballots", real)
    run = get_run(client, run_id)
    assert run["status"] == "queued" and run["error"]["code"] == "retrying"
    conn = get_redis(redis_server.url)
    assert Job.fetch(run["job_id"], connection=conn).get_status() == "scheduled"

    redis_server.stop()
    redis_server.start()  # a fresh server on the same port: the scheduled retry is gone
    back = time.monotonic()
    with pytest.raises(NoSuchJobError):
        Job.fetch(run["job_id"], connection=get_redis(redis_server.url))

    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "REAPER_INTERVAL_SECONDS": "1",
        "REAPER_GRACE_SECONDS": "0",
    }
    worker = Process("worker", [sys.executable, "-m", "service.cli", "worker"], env, logdir)
    worker.start()
    try:
        wait_until(
            lambda: get_run(client, run_id)["status"] == "finished",
            55,
            0.2,
            "the lost run to be re-queued and finished",
        )
        elapsed = time.monotonic() - back
    finally:
        worker.stop()
        redis_server.stop()
    assert elapsed < 60
    run = get_run(client, run_id)
    assert run["error"] is None and run["result"]["ballots_counted"] == len(VOTES)
    assert "had lost its job; queued again" in worker.output()
    print(f"run finished {elapsed:.1f} s after Redis came back")


def test_redis_blip_while_a_retry_is_pending_the_retry_still_runs(
    app, client, make_campaign, logdir, monkeypatch, retry_intervals
):
    """A worker (with its rq scheduler) is running and a retry is scheduled; Redis goes
    away for a few seconds and comes back with its data. The blip can kill rq's scheduler
    process, which rq restarts only every ten minutes; the worker's watchdog restarts it
    (or queues the overdue retry itself), so the run finishes within a minute."""
    import sys

    from rq import Queue
    from rq.job import Job
    from sqlalchemy.exc import OperationalError

    from service.domain import rankings
    from service.redis_conn import get_redis
    from tests.processes import Process
    from tests.support import VOTES, add_ballots, get_run, work_once
    from workers import jobs

    redis_server = RedisServer(logdir).start()
    monkeypatch.setitem(app.config, "REDIS_URL", redis_server.url)
    monkeypatch.setattr(jobs, "_app", app)
    make_campaign("c1")
    add_ballots(app, "c1", VOTES)
    real = rankings.load_ballots

    def db_down(*args, **kwargs):
        raise OperationalError("SELECT …", {}, Exception("server closed the connection"))

    monkeypatch.setattr(rankings, "load_ballots", db_down)
    # A back-off longer than any start-up and outage, so the retry is surely still pending
    # through the blip; once Redis is back the test makes it due (time passes).
    retry_intervals([600, 600, 600])
    run_id = client.post("/api/v1/campaigns/c1/rankings", headers=ADMIN).json["run_id"]
    work_once(app)  # the first try fails: a retry is scheduled
    monkeypatch.setattr(rankings, "load_ballots", real)
    job_id = get_run(client, run_id)["job_id"]

    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "REAPER_INTERVAL_SECONDS": "2",
        "REAPER_GRACE_SECONDS": "5",
    }
    worker = Process("worker", [sys.executable, "-m", "service.cli", "worker"], env, logdir)
    worker.start()
    try:
        conn = get_redis(redis_server.url)
        wait_until(
            lambda: conn.exists("rq:scheduler-lock:rankings") and "Listening on" in worker.output(),
            60,
            0.2,
            "the worker and its scheduler",
        )
        conn.save()  # the blip keeps the data (dump.rdb)
        redis_server.stop()
        # The outage lasts until rq's scheduler has polled Redis and died of it (it polls
        # every second), so the watchdog's restart is what this test exercises.
        wait_until(
            lambda: (
                "Scheduler [PID" in worker.output() and "raised an exception" in worker.output()
            ),
            30,
            0.1,
            "the scheduler to fail on the outage",
        )
        redis_server.start()
        back = time.monotonic()
        job = Job.fetch(job_id, connection=get_redis(redis_server.url))
        assert job.get_status() == "scheduled"
        Queue("rankings", connection=job.connection).scheduled_job_registry.schedule(
            job, datetime.now(UTC)
        )
        wait_until(
            lambda: get_run(client, run_id)["status"] == "finished",
            55,
            0.2,
            "the retried run to finish",
        )
        elapsed = time.monotonic() - back
    finally:
        worker.stop()
        redis_server.stop()
    assert elapsed < 60
    print(f"run finished {elapsed:.1f} s after Redis came back")
