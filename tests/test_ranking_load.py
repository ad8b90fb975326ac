"""Loading the counted ballots of a ranking run: the PostgreSQL COPY path and the portable
streamed path give the same ballots, receipts and digests; the worker's app is made once."""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import select, text, update

from engine import merkle
from service.domain import rankings
from service.domain.ballots import encode_choice_ids
from service.extensions import db
from service.models import Ballot, BallotChoice, Campaign, Entry, Exclusion
from tests.support import ENTRIES, add_ballots, exclude, is_postgres

pytestmark = pytest.mark.slow  # large elections through the ranking

postgres_only = pytest.mark.skipif(not is_postgres(), reason="the COPY path is PostgreSQL's")

# Entries created out of code order: entry ids and entry positions differ.
SHUFFLED = [ENTRIES[2], ENTRIES[0], ENTRIES[1]]
CHOICES = [["A01"], ["A03", "A01", "A02"], ["A02"], ["A03", "A01"], ["A02", "A03"], ["A03"]] * 4


def campaign_ids(app, slug: str) -> tuple[int, list[int]]:
    with app.app_context():
        campaign = db.session.scalar(select(Campaign).where(Campaign.slug == slug))
        ids = db.session.scalars(
            select(Entry.id).where(Entry.campaign_id == campaign.id).order_by(Entry.code)
        ).all()
        return campaign.id, list(ids)


def load(app, slug: str, path: str) -> rankings.Ballots:
    """The ballots of ``slug`` through one path: "stored", "copy", "stream" or
    "load_ballots"."""
    campaign_id, entry_ids = campaign_ids(app, slug)
    with app.app_context():
        rankings._snapshot()
        try:
            if path == "load_ballots":
                return rankings.load_ballots(campaign_id, entry_ids)
            if path == "stored":
                stored = rankings._copy_stored(campaign_id, entry_ids)
                assert stored is not None, "the stored-columns path gave up"
                return stored
            runs = rankings._Runs()
            if path == "copy":
                excluded = rankings._copy_rows(campaign_id, runs)
                assert excluded is not None, "the COPY path gave up"
            else:
                excluded = rankings._stream_rows(campaign_id, runs)
            return runs.ballots(entry_ids, excluded)
        finally:
            db.session.rollback()


def as_dict(ballots: rankings.Ballots, codes: list[str]) -> dict[str, list[str]]:
    indptr, indices = ballots.approvals.indptr, ballots.approvals.indices
    return {
        r.decode(): [codes[i] for i in indices[indptr[b] : indptr[b + 1]]]
        for b, r in enumerate(ballots.receipts.tolist())
    }


def assert_same(a: rankings.Ballots, b: rankings.Ballots) -> None:
    assert a.receipts.tolist() == b.receipts.tolist()
    assert np.array_equal(a.approvals.indptr, b.approvals.indptr)
    assert np.array_equal(a.approvals.indices, b.approvals.indices)
    assert a.approvals.indices.dtype == b.approvals.indices.dtype == np.int32
    assert a.excluded == b.excluded
    assert rankings._approvals_sha256(a.approvals) == rankings._approvals_sha256(b.approvals)


def leaves_of(ballots: rankings.Ballots) -> list[bytes]:
    """The leaves a run hashes into its tree: stored ones, or the receipts' own."""
    if ballots.leaves is not None:
        return ballots.leaves.tolist()
    return merkle.leaf_hashes(ballots.receipts.tolist())


@pytest.fixture
def voted(app, make_campaign):
    """Two campaigns; in c1 one ballot excluded twice and one exclusion revoked."""
    make_campaign("c1", entries=SHUFFLED)
    make_campaign("c2")
    ballots = add_ballots(app, "c1", CHOICES)
    add_ballots(app, "c2", [["A01", "A02"], ["A03"]])
    exclude(app, "c1", ballots[1][0])
    exclude(app, "c1", ballots[1][0], reason="twice")
    exclude(app, "c1", ballots[2][0], reason="revoked later")
    with app.app_context():
        db.session.execute(
            update(Exclusion).where(Exclusion.ballot_id == ballots[2][0]).values(active=False)
        )
        db.session.commit()
    return ballots


def test_loaded_ballots_are_the_counted_ones_in_canonical_order(app, voted, monkeypatch):
    """Receipts in byte order, each ballot's choices in entry id order, the excluded ballot
    dropped and counted once, whatever the fetch size."""
    monkeypatch.setattr(rankings, "FETCH_ROWS", 4)
    loaded = load(app, "c1", "load_ballots")
    codes = [e["code"] for e in sorted(ENTRIES, key=lambda e: e["code"])]
    id_order = {e["code"]: i for i, e in enumerate(SHUFFLED)}  # ids follow creation order
    want = {
        r: sorted(c, key=id_order.__getitem__)
        for i, ((_, r), c) in enumerate(zip(voted, CHOICES, strict=True))
        if i != 1
    }
    assert list(as_dict(loaded, codes)) == sorted(want)
    assert as_dict(loaded, codes) == want
    assert loaded.excluded == 1


@postgres_only
@pytest.mark.parametrize("fetch_rows", [1, 4, 10_000])
def test_copy_and_streamed_paths_load_identical_ballots(app, voted, monkeypatch, fetch_rows):
    monkeypatch.setattr(rankings, "FETCH_ROWS", fetch_rows)
    fast, portable = load(app, "c1", "copy"), load(app, "c1", "stream")
    assert_same(fast, portable)
    assert fast.approvals.n_ballots == len(CHOICES) - 1 and fast.excluded == 1
    assert_same(load(app, "c2", "copy"), load(app, "c2", "stream"))


@postgres_only
@pytest.mark.parametrize("fetch_rows", [1, 4, 10_000])
def test_stored_columns_load_the_same_ballots_as_the_join(app, voted, monkeypatch, fetch_rows):
    """One row per ballot from its stored leaf and choice ids: the same ballots, order,
    approvals digest and excluded count as the joined rows, and the leaves are the
    receipts' leaf hashes."""
    monkeypatch.setattr(rankings, "FETCH_ROWS", fetch_rows)
    stored, portable = load(app, "c1", "stored"), load(app, "c1", "stream")
    assert_same(stored, portable)
    assert stored.approvals.n_ballots == len(CHOICES) - 1 and stored.excluded == 1
    assert leaves_of(stored) == merkle.leaf_hashes(portable.receipts.tolist())
    assert_same(load(app, "c2", "stored"), load(app, "c2", "stream"))
    # and load_ballots takes this path
    assert load(app, "c1", "load_ballots").leaves is not None


def _receipt_whose_leaf_ends_in_zero() -> str:
    """A receipt code whose leaf hash ends in a zero byte (one in 256 does)."""
    for n in range(100_000):
        receipt = f"ZZZZ-ZZZZ-ZZZZ-{n:04X}"[:19]
        if merkle.leaf_hash(receipt.encode())[-1] == 0:
            return receipt
    raise AssertionError("no such receipt found")


@postgres_only
def test_a_stored_leaf_ending_in_zero_bytes_is_read_whole(app, voted):
    """NumPy's S dtype would drop a trailing zero byte of a leaf: the run's root would
    then differ from the one a voter rebuilds from their receipt."""
    receipt = _receipt_whose_leaf_ends_in_zero()
    campaign_id, entry_ids = campaign_ids(app, "c1")
    with app.app_context():
        db.session.execute(
            update(Ballot)
            .where(Ballot.id == voted[0][0])
            .values(receipt=receipt, leaf=merkle.leaf_hash(receipt.encode()))
        )
        db.session.commit()
    stored = load(app, "c1", "stored")
    assert receipt.encode() in stored.receipts.tolist()
    assert leaves_of(stored) == merkle.leaf_hashes(stored.receipts.tolist())
    assert all(len(leaf) == 32 for leaf in leaves_of(stored))


@postgres_only
@pytest.mark.raw_ballots
def test_a_ballot_without_stored_columns_makes_the_run_read_the_join(app, voted):
    """A row written by another path (leaf and choice ids NULL): the stored path gives up
    and load_ballots reads the joined rows, which count it."""
    campaign_id, entry_ids = campaign_ids(app, "c1")
    with app.app_context():
        db.session.execute(
            update(Ballot).where(Ballot.id == voted[0][0]).values(leaf=None, choice_ids=None)
        )
        db.session.commit()
        rankings._snapshot()
        assert rankings._copy_stored(campaign_id, entry_ids) is None
        db.session.rollback()
    loaded = load(app, "c1", "load_ballots")
    assert loaded.leaves is None
    assert_same(loaded, load(app, "c1", "stream"))
    assert voted[0][1].encode() in loaded.receipts.tolist()


@postgres_only
def test_receipts_of_different_lengths_fall_back_to_streaming(app, voted):
    """Both fixed-width COPY parses give up on a receipt of another length; the result is
    the streamed one."""
    campaign_id, entry_ids = campaign_ids(app, "c1")
    with app.app_context():
        at = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
        for receipt in ("R1", "短回执-ÄÖ"):
            ballot_id = str(uuid.uuid4())
            db.session.add(
                Ballot(
                    id=ballot_id,
                    campaign_id=campaign_id,
                    voter_key=secrets.token_hex(32),
                    dedup_slot="once",
                    channel="web",
                    cast_at=at,
                    accepted_at=at,
                    content_digest=hashlib.sha256(receipt.encode()).hexdigest(),
                    receipt=receipt,
                    nonce=secrets.token_hex(16),
                    leaf=merkle.leaf_hash(receipt.encode()),
                    choice_ids=encode_choice_ids([entry_ids[0]]),
                )
            )
            db.session.flush()
            db.session.add(
                BallotChoice(ballot_id=ballot_id, entry_id=entry_ids[0], campaign_id=campaign_id)
            )
        db.session.commit()
        rankings._snapshot()
        assert rankings._copy_stored(campaign_id, entry_ids) is None
        assert rankings._copy_rows(campaign_id, rankings._Runs()) is None
        db.session.rollback()
    loaded = load(app, "c1", "load_ballots")
    assert_same(loaded, load(app, "c1", "stream"))
    assert b"R1" in loaded.receipts.tolist()
    assert "短回执-ÄÖ".encode() in loaded.receipts.tolist()
    assert loaded.receipts.tolist() == sorted(loaded.receipts.tolist())


def test_a_campaign_without_ballots_loads_empty(app, make_campaign):
    make_campaign("c1")
    for path in ("load_ballots", "stream") + (("copy", "stored") if is_postgres() else ()):
        loaded = load(app, "c1", path)
        assert loaded.approvals.n_ballots == 0 and loaded.excluded == 0
        assert len(loaded.receipts) == 0 and len(loaded.approvals.indices) == 0


def test_a_ballot_split_over_runs_and_batches_is_joined_up():
    """Rows in any order: a ballot's choices spread over batches come out as one ballot,
    choices by entry id; an entry of another campaign is -1 (the engine refuses it)."""
    rng = np.random.default_rng(7)
    truth = {
        f"R{i:03d}".encode(): sorted(rng.choice([11, 12, 13, 14], 2, replace=False))
        for i in range(50)
    }
    rows = [(r, e) for r, es in truth.items() for e in es] + [(b"R999", 99)]
    order = rng.permutation(len(rows))
    runs = rankings._Runs()
    for lo in range(0, len(rows), 7):
        part = [rows[i] for i in order[lo : lo + 7]]
        runs.add(np.array([r for r, _ in part]), np.array([e for _, e in part]))
    loaded = runs.ballots([14, 11, 13, 12], excluded=0)
    assert loaded.receipts.tolist() == sorted([*truth, b"R999"])
    position = {14: 0, 11: 1, 13: 2, 12: 3}
    indptr, indices = loaded.approvals.indptr, loaded.approvals.indices
    got = {
        r: indices[indptr[b] : indptr[b + 1]].tolist()
        for b, r in enumerate(loaded.receipts.tolist())
    }
    assert got == {**{r: [position[e] for e in es] for r, es in truth.items()}, b"R999": [-1]}


# --- the worker ---------------------------------------------------------------------------


def test_votes_worker_creates_the_app_before_the_work_loop(monkeypatch):
    """The parent makes the jobs' app before any work-horse forks, so none makes it again."""
    from rq import Worker

    from workers import jobs
    from workers.worker import VotesWorker

    calls = []
    monkeypatch.setattr(jobs, "get_app", lambda: calls.append("get_app"))
    monkeypatch.setattr(Worker, "work", lambda self, **kw: calls.append(("work", kw)) or True)
    worker = VotesWorker.__new__(VotesWorker)  # no Redis needed to check the order
    assert worker.work(burst=True) is True
    assert calls == ["get_app", ("work", {"burst": True})]


def pooled_backends(app, query: str) -> set:
    """Check out every connection in the pool at once and run ``query`` on each."""
    with app.app_context():
        db.session.remove()
        engine = db.engine
        connections = [engine.connect() for _ in range(max(engine.pool.checkedin(), 1))]
        try:
            return {c.execute(text(query)).scalar_one() for c in connections}
        finally:
            for c in connections:
                c.close()


@pytest.mark.skipif(
    not hasattr(os, "fork") or not is_postgres(),
    reason="server connections to tell apart: runs in the PostgreSQL pass of .ci/run "
    "(on SQLite, holding every pooled connection at once would deadlock on BEGIN IMMEDIATE)",
)
def test_a_work_horse_leaves_the_parents_pooled_connections_alone(app, monkeypatch):
    """After the fork the horse opens its own connection; the parent's pooled ones all
    still work (on PostgreSQL: the same server processes, none of them the horse's)."""
    from workers import jobs
    from workers.worker import forget_inherited_connections

    monkeypatch.setattr(jobs, "_app", app)
    backend = "SELECT pg_backend_pid()" if is_postgres() else "SELECT 1"
    before = pooled_backends(app, backend)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the work-horse
        code = 1
        try:
            os.close(read)
            forget_inherited_connections()
            with app.app_context():
                pid = db.session.execute(text(backend)).scalar_one()
                db.session.commit()
            os.write(write, str(pid).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(child, 0)
    horse = int(os.read(read, 64) or b"-1")
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pooled_backends(app, backend) == before
    if is_postgres():
        assert horse not in before
