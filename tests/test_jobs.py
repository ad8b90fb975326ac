"""Ranking runs through the API and real RQ workers: counts, failures, retries, idempotency."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from rq import Queue
from rq.job import Job
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from service.extensions import db
from service.models import (
    Entry,
    MerkleChunk,
    RankingRun,
)
from service.queues import RANKINGS
from service.redis_conn import get_redis
from tests.support import (
    ADMIN,
    VOTES,
    add_ballots,
    closed_port,
    drain,
    error_code,
    exclude,
    get_run,
    start_run,
    work_once,
)
from workers import jobs

# --- helpers shared with test_publications and test_nightly ------------------------------


# --- tests ------------------------------------------------------------------------------


def test_ranking_run_is_queued_then_finished_with_the_counts(client, app, voted):
    """An admin starts a run (202), a worker computes it: counted ballots exclude the
    excluded one, and every entry is ranked with its votes and reviews."""
    r = client.post("/api/v1/campaigns/c1/rankings", headers=ADMIN)
    assert r.status_code == 202
    assert set(r.json) == {"run_id", "job_id", "status"} and r.json["status"] == "queued"
    assert get_run(client, r.json["run_id"])["status"] == "queued"

    drain(app)
    run = get_run(client, r.json["run_id"])
    assert run["status"] == "finished" and run["error"] is None
    assert run["campaign"] == "c1" and run["trigger"] == "manual"
    result = run["result"]
    assert result["ballots_counted"] == 4 and result["ballots_excluded"] == 1
    assert result["reviews"] == 9
    votes = {row["code"]: row["votes"] for row in result["rows"]}
    assert votes == {"A01": 3, "A02": 2, "A03": 2}
    assert [row["rank"] for row in result["rows"]] == [1, 2, 3]
    assert result["input_digest"] == run["input_digest"] and len(run["input_digest"]) == 64
    assert result["ballots_root"] == run["ballots_root"] and len(run["ballots_root"]) == 64
    assert result["lot_seed"] == int(run["input_digest"][:16], 16) % 2**63
    assert result["method"]["public_weight"] == 0.3
    for key in ("title", "category", "area", "vote_score", "expert_score", "combined"):
        assert key in result["rows"][0]


def test_unknown_run_is_404(client, app, clock):
    """Looking up a run that does not exist is 404 not_found."""
    r = client.get("/api/v1/rankings/nope", headers=ADMIN)
    assert r.status_code == 404 and error_code(r) == "not_found"
    r = client.post("/api/v1/campaigns/none/rankings", headers=ADMIN)
    assert r.status_code == 404


def test_ranking_endpoints_refuse_anonymous_and_kiosk_tokens(client, app, voted):
    """Starting, reading and publishing runs is for admins: 401 without a token, 403 kiosk."""
    run_id = start_run(client)
    token = client.post("/api/v1/kiosks", json={"name": "大厅"}, headers=ADMIN).json["token"]
    kiosk = {"Authorization": f"Bearer {token}"}
    calls = [
        ("post", "/api/v1/campaigns/c1/rankings"),
        ("get", f"/api/v1/rankings/{run_id}"),
        ("post", "/api/v1/campaigns/c1/publications"),
    ]
    for method, url in calls:
        r = getattr(client, method)(url)
        assert r.status_code == 401 and error_code(r) == "unauthorized"
        r = getattr(client, method)(url, headers=kiosk)
        assert r.status_code == 403 and error_code(r) == "forbidden"


def test_impossible_quotas_fail_the_run_with_the_engine_code_without_retry(
    client, app, make_campaign, workers_app
):
    """A method the data cannot satisfy fails the run once, recording the engine's code."""
    make_campaign(
        "c1",
        ranking={"public_weight": 1, "expert_weight": 0},
        selection={"rule": "top", "winners": 2, "categories": {"党建引领": {"min": 2}}},
    )
    add_ballots(app, "c1", VOTES)
    run_id = start_run(client)
    drain(app)
    run = get_run(client, run_id)
    assert run["status"] == "failed"
    assert run["error"]["code"] == "selection_impossible"
    assert "党建引领" in run["error"]["message"]
    assert run["result"] is None
    conn = get_redis(app.config["REDIS_URL"])
    job = Job.fetch(run["job_id"], connection=conn)
    assert job.get_status() == "failed" and not job.retries_left
    assert Queue(RANKINGS, connection=conn).failed_job_registry.count == 1


def test_transient_failure_is_retried_then_recorded_failed(client, app, voted, monkeypatch):
    """A database error is retried with back-off; after the last try the run is failed."""
    from service.domain import rankings

    calls = []

    def db_down(*args, **kwargs):
        calls.append(1)
        raise OperationalError("SELECT …", {}, Exception("server closed the connection"))

    monkeypatch.setattr(rankings, "load_ballots", db_down)
    run_id = start_run(client)
    work_once(app)
    run = get_run(client, run_id)
    assert run["status"] == "queued" and run["error"]["code"] == "retrying"
    conn = get_redis(app.config["REDIS_URL"])
    job = Job.fetch(run["job_id"], connection=conn)
    assert job.get_status() == "scheduled" and job.retries_left == 2

    drain(app)
    assert len(calls) == 4  # the first try and three retries
    run = get_run(client, run_id)
    assert run["status"] == "failed" and run["error"]["code"] == "job_failed"
    assert "OperationalError" in run["error"]["message"]


def test_a_retry_after_a_transient_failure_finishes_the_run(client, app, voted, monkeypatch):
    """One lost connection does not lose the run: the retry computes it."""
    from service.domain import rankings

    real = rankings.load_ballots
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT …", {}, Exception("connection reset"))
        return real(*args, **kwargs)

    monkeypatch.setattr(rankings, "load_ballots", flaky)
    run_id = start_run(client)
    drain(app)
    run = get_run(client, run_id)
    assert run["status"] == "finished" and run["error"] is None
    assert run["result"]["ballots_counted"] == 4


def test_run_left_running_by_a_killed_worker_is_completed_once(client, app, voted):
    """A run whose worker died mid-way is finished by the retry, with one ballot tree."""
    run_id = start_run(client)
    with app.app_context():
        run = db.session.get(RankingRun, run_id)
        run.status = "running"
        run.started_at = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
        db.session.commit()
    drain(app)
    # The job again (as RQ's abandoned-job cleanup would enqueue it): nothing changes.
    jobs.compute_ranking(run_id)
    run = get_run(client, run_id)
    assert run["status"] == "finished"
    with app.app_context():
        chunks = db.session.scalar(
            select(func.count()).select_from(MerkleChunk).where(MerkleChunk.run_id == run_id)
        )
        leaves = db.session.scalar(
            select(func.sum(MerkleChunk.size)).where(MerkleChunk.run_id == run_id)
        )
    assert chunks == 1 and leaves == 4


def test_same_data_gives_the_same_result_digest(client, app, voted):
    """Two runs over unchanged data agree on input digest, lot seed and result digest."""
    first, second = start_run(client), start_run(client)
    drain(app)
    a, b = get_run(client, first), get_run(client, second)
    assert a["status"] == b["status"] == "finished"
    assert a["input_digest"] == b["input_digest"]
    assert a["result"]["result_digest"] == b["result"]["result_digest"]
    assert a["result"] == b["result"]


def test_an_exclusion_changes_the_input_digest(client, app, voted):
    """Excluding one more ballot is a different input: another digest and root."""
    first = start_run(client)
    drain(app)
    exclude(app, "c1", voted[0][0])
    second = start_run(client)
    drain(app)
    a, b = get_run(client, first), get_run(client, second)
    assert a["input_digest"] != b["input_digest"]
    assert a["ballots_root"] != b["ballots_root"]
    assert b["result"]["ballots_counted"] == 3 and b["result"]["ballots_excluded"] == 2


def test_a_campaign_without_ballots_ranks_with_the_empty_root(
    client, app, make_campaign, workers_app
):
    """No ballots yet: the run finishes with zero votes and the RFC 6962 empty root."""
    make_campaign("c1", ranking={"public_weight": 1, "expert_weight": 0})
    run_id = start_run(client)
    drain(app)
    run = get_run(client, run_id)
    assert run["status"] == "finished"
    assert run["ballots_root"] == hashlib.sha256(b"").hexdigest()
    assert all(row["votes"] == 0 for row in run["result"]["rows"])


def test_queue_down_answers_503_and_leaves_no_queued_run(client, app, voted, monkeypatch):
    """With Redis unreachable the API says 503 queue_unavailable with Retry-After, and
    the run is recorded failed rather than left queued forever."""
    monkeypatch.setitem(app.config, "REDIS_URL", f"redis://127.0.0.1:{closed_port()}/0")
    r = client.post("/api/v1/campaigns/c1/rankings", headers=ADMIN)
    assert r.status_code == 503 and error_code(r) == "queue_unavailable"
    assert r.headers["Retry-After"]
    with app.app_context():
        runs = db.session.scalars(select(RankingRun)).all()
        assert [(run.status, run.error is not None) for run in runs] == [("failed", True)]
        assert '"queue_unavailable"' in runs[0].error


def test_ballot_loading_keeps_each_ballots_choices_whatever_the_fetch_size(
    app, make_campaign, monkeypatch
):
    """Streaming in small fetches and reordering by receipt keeps every ballot's own
    choices, drops excluded ballots and counts them."""
    from service.domain import rankings

    monkeypatch.setattr(rankings, "FETCH_ROWS", 3)
    monkeypatch.setattr(rankings, "REORDER_BLOCK", 2)
    make_campaign("c1")
    choices = [["A01"], ["A01", "A02", "A03"], ["A02"], ["A03", "A01"], ["A02", "A03"]] * 3
    ballots = add_ballots(app, "c1", choices)
    exclude(app, "c1", ballots[1][0])
    exclude(app, "c1", ballots[1][0], reason="twice")  # two exclusions, one ballot
    with app.app_context():
        entries = db.session.scalars(select(Entry).order_by(Entry.code)).all()
        loaded = rankings.load_ballots(entries[0].campaign_id, [e.id for e in entries])
    receipts = [r.decode() for r in loaded.receipts.tolist()]
    assert receipts == sorted(r for i, (_, r) in enumerate(ballots) if i != 1)
    assert loaded.excluded == 1
    indptr, indices = loaded.approvals.indptr, loaded.approvals.indices
    got = {
        receipts[b]: sorted(entries[i].code for i in indices[indptr[b] : indptr[b + 1]])
        for b in range(len(receipts))
    }
    want = {
        r: sorted(c) for i, ((_, r), c) in enumerate(zip(ballots, choices, strict=True)) if i != 1
    }
    assert got == want


def test_reaper_requeues_a_lost_run_once_and_it_computes_once(client, app, voted):
    """A run whose job vanished from Redis is queued again by the reaper; two passes (two
    workers) queue it once, an alive job is left alone, and the run computes once."""
    from workers import reaper

    run_id = start_run(client)
    conn = get_redis(app.config["REDIS_URL"])
    queue = Queue(RANKINGS, connection=conn)
    with app.app_context():
        job_id = db.session.get(RankingRun, run_id).job_id
        # An alive job (waiting in its queue) is not touched.
        assert reaper.reap(conn, [RANKINGS], interval=30, grace=0) == []
    assert queue.get_job_ids() == [job_id]
    conn.flushdb()  # Redis restarted without its data: the job is gone

    with app.app_context():
        assert reaper.reap(conn, [RANKINGS], interval=30, grace=0) == [run_id]
        # A second worker in the same interval: the lock makes it a no-op.
        assert reaper.reap(conn, [RANKINGS], interval=30, grace=0) == []
        conn.delete(reaper.LOCK_KEY)  # the next interval: the job is alive again
        assert reaper.reap(conn, [RANKINGS], interval=30, grace=0) == []
    assert queue.get_job_ids() == [job_id]
    run = get_run(client, run_id)
    assert run["status"] == "queued" and run["error"]["code"] == "requeued"

    drain(app)
    jobs.compute_ranking(run_id)  # and once more, as a duplicate job would: nothing changes
    run = get_run(client, run_id)
    assert run["status"] == "finished" and run["error"] is None
    with app.app_context():
        leaves = db.session.scalar(
            select(func.sum(MerkleChunk.size)).where(MerkleChunk.run_id == run_id)
        )
    assert leaves == 4


def test_reaper_requeues_a_run_without_a_job_id(client, app, voted):
    """A run with no job id (the column allows it) has no job to find: it is lost, and
    the reaper queues it again instead of failing on it (rq cannot fetch a None id)."""
    from workers import reaper

    run_id = start_run(client)
    conn = get_redis(app.config["REDIS_URL"])
    conn.flushdb()
    with app.app_context():
        db.session.get(RankingRun, run_id).job_id = None
        db.session.commit()
        assert reaper.reap(conn, [RANKINGS], interval=30, grace=0) == [run_id]
    run = get_run(client, run_id)
    assert run["status"] == "queued" and run["error"]["code"] == "requeued"


def test_reaper_leaves_fresh_runs_and_finished_runs_alone(client, app, voted):
    """Within the grace period (the API commits the run, then enqueues) and once a run is
    finished, the reaper queues nothing."""
    from workers import reaper

    run_id = start_run(client)
    conn = get_redis(app.config["REDIS_URL"])
    conn.flushdb()
    with app.app_context():
        # The test clock stands still: the run is 0 s old, younger than a 30 s grace.
        assert reaper.reap(conn, [RANKINGS], interval=30, grace=30) == []
    assert get_run(client, run_id)["status"] == "queued"
    with app.app_context():
        conn.delete(reaper.LOCK_KEY)
        assert reaper.reap(conn, [RANKINGS], interval=30, grace=0) == [run_id]
    drain(app)
    conn.flushdb()
    with app.app_context():
        assert reaper.reap(conn, [RANKINGS], interval=30, grace=0) == []
    assert get_run(client, run_id)["status"] == "finished"
