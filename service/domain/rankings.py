"""Ranking runs: freeze the input, run the pure engine, record the result and ballot tree.

A run reads, in one database snapshot where the backend offers one (PostgreSQL:
REPEATABLE READ), the counted ballots (accepted minus those with an active exclusion),
the live expert scores, the entries, the rubric and the campaign's method. Ballots are
read as ``(receipt, entry_id)`` rows into NumPy arrays, never one Python object per
ballot: on PostgreSQL by one binary COPY parsed as fixed-width records, elsewhere by one
streamed statement (``load_ballots``).

Determinism: ballots are put in the canonical order of their receipts' UTF-8 bytes, and
each ballot's choices in entry id order, before anything is computed, so the database's
row order never matters; the lot seed
is ``int(input_digest[:16], 16) % 2**63``, so the same data gives the same draw and the
same ``result_digest``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select

from engine import Approvals, Criterion, Entry, Method, Review, merkle, rank

from ..clock import now
from ..errors import ApiError
from ..extensions import db
from ..infra import ballot_copy, tree_hash
from ..models import (
    Ballot,
    BallotChoice,
    Campaign,
    Exclusion,
    MerkleChunk,
    Publication,
    RankingRun,
    Score,
)
from ..models import Criterion as CriterionRow
from ..models import Entry as EntryRow
from ..queues import job_id_for
from .feasibility import infeasible
from .roll import turnout

STATUSES = ("queued", "running", "finished", "failed")
FETCH_ROWS = 10_000  # rows per fetch or parsed COPY batch: bounds memory whatever the count
REORDER_BLOCK = 1 << 16  # choices per block when mapping entry ids to positions
CHUNK_INSERT = 200  # Merkle chunks per INSERT
KEEP_UNPUBLISHED = 3  # finished, unpublished runs per campaign that keep their ballot tree


def canonical_json(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(doc: dict[str, Any]) -> str:
    """DESIGN.md "Digest": SHA-256 hex of the canonical JSON without the ``digest`` field."""
    body = {k: v for k, v in doc.items() if k != "digest"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def lot_seed_for(input_digest: str) -> int:
    """The published lot seed: the first 64 bits of the input digest, kept below 2**63."""
    return int(input_digest[:16], 16) % 2**63


# --- runs -------------------------------------------------------------------------------


def create_run(campaign: Campaign, trigger: str = "manual") -> RankingRun:
    """A queued run (caller commits, then enqueues ``compute_ranking(run.id)``)."""
    run_id = str(uuid.uuid4())
    run = RankingRun(
        id=run_id,
        campaign_id=campaign.id,
        status="queued",
        trigger=trigger,
        job_id=job_id_for(run_id),
        created_at=now(),
    )
    db.session.add(run)
    db.session.flush()
    return run


def get_run(run_id: str) -> RankingRun:
    run = db.session.get(RankingRun, run_id)
    if run is None:
        raise ApiError(404, "not_found", f"计算任务不存在 / No ranking run '{run_id}'")
    return run


def record_failure(
    run: RankingRun, code: str, message: str, details: dict[str, Any] | None = None
) -> None:
    run.status = "failed"
    run.error = canonical_json({"code": code, "message": message, "details": details or {}})
    run.finished_at = now()


def parse_error(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"code": "error", "message": text, "details": {}}
    return value if isinstance(value, dict) else {"code": "error", "message": text, "details": {}}


def run_view(run: RankingRun) -> dict[str, Any]:
    campaign = db.session.get(Campaign, run.campaign_id)
    return {
        "id": run.id,
        "campaign": campaign.slug if campaign else None,
        "status": run.status,
        "trigger": run.trigger,
        "job_id": run.job_id,
        "input_digest": run.input_digest,
        "ballots_root": run.ballots_root,
        "error": parse_error(run.error),
        "result": run.result,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }


def latest_finished_run(campaign_id: int) -> RankingRun | None:
    return db.session.scalar(
        select(RankingRun)
        .where(RankingRun.campaign_id == campaign_id, RankingRun.status == "finished")
        .order_by(RankingRun.finished_at.desc(), RankingRun.created_at.desc())
        .limit(1)
    )


def has_ballot_tree(run: RankingRun) -> bool:
    """Whether the run still holds its receipts (needed to publish: proofs need them)."""
    counted = (run.result or {}).get("ballots_counted", 0)
    stored = db.session.execute(
        select(func.coalesce(func.sum(MerkleChunk.size), 0)).where(MerkleChunk.run_id == run.id)
    ).scalar_one()
    return int(stored) == int(counted)


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


# --- input ------------------------------------------------------------------------------


@dataclasses.dataclass
class Ballots:
    approvals: Approvals  # in canonical (receipt byte) order
    receipts: np.ndarray  # dtype S: UTF-8 receipts of counted ballots, sorted
    excluded: int
    # dtype V32: the stored Merkle leaf hashes in the same order (ballots.leaf), when
    # the ballots were read from their stored columns; None: hash the receipts.
    leaves: np.ndarray | None = None


def _snapshot() -> None:
    """Start the read transaction: one snapshot for every read of the run (PostgreSQL).

    SQLite (development) has no such level through pysqlite; there the single ballot
    statement is still self-consistent.
    """
    if db.engine.dialect.name == "postgresql":
        db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def load_ballots(campaign_id: int, entry_ids: list[int]) -> Ballots:
    """Counted ballots as CSR approvals over entry positions, and their receipts.

    On PostgreSQL with psycopg, one binary ``COPY … TO STDOUT`` on the session's own
    connection (same REPEATABLE READ snapshot) reads one row per counted ballot from
    ``ballots`` alone: its receipt, its stored Merkle leaf and its stored entry ids
    (written at ingest, ``_copy_stored``), and a second small statement in that
    snapshot counts the excluded ballots. Where that does not apply (a row written
    without the stored columns, receipts of mixed widths) the rows are one ``(receipt,
    entry id)`` pair per choice, joined from ``ballot_choices``: by binary COPY
    (``_copy_rows``) or, elsewhere (SQLite), one streamed statement fetched
    ``FETCH_ROWS`` at a time. No ORDER BY (the server's most expensive step; NumPy sorts
    faster): every path puts the ballots in canonical order, by receipt bytes, each
    ballot's choices by entry id. A million ballots of three choices stay under ~200 MB.
    """
    stored = _copy_stored(campaign_id, entry_ids)
    if stored is not None:
        return stored
    runs = _Runs()
    excluded = _copy_rows(campaign_id, runs)
    if excluded is None:  # not PostgreSQL + psycopg, or receipts of mixed widths
        runs = _Runs()
        excluded = _stream_rows(campaign_id, runs)
    return runs.ballots(entry_ids, excluded)


def _excluded_ids(campaign_id: int):
    return select(Exclusion.ballot_id).where(
        Exclusion.campaign_id == campaign_id, Exclusion.active.is_(True)
    )


def _choice_of_ballot():
    # A choice is written with its ballot's campaign id (the same insert). Saying so lets
    # PostgreSQL read only this campaign's choices (ix_ballot_choices_campaign_entry)
    # instead of every campaign's: the counted rows are the same.
    return (BallotChoice.ballot_id == Ballot.id) & (BallotChoice.campaign_id == Ballot.campaign_id)


def _has_choice():
    return select(BallotChoice.ballot_id).where(_choice_of_ballot()).exists()


def _raw_connection():
    """The psycopg connection under the session (same transaction, so same snapshot),
    or None where the COPY paths do not apply."""
    conn = db.session.connection()
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        return None
    raw = conn.connection.driver_connection
    assert raw is not None  # a live connection of the session
    return raw if raw.info.encoding == "utf-8" else None


def _excluded_count(campaign_id: int) -> int:
    excluded = _excluded_ids(campaign_id).where(Exclusion.ballot_id == Ballot.id).exists()
    return db.session.execute(
        select(func.count())
        .select_from(Ballot)
        .where(Ballot.campaign_id == campaign_id, excluded, _has_choice())
    ).scalar_one()


def _copy_stored(campaign_id: int, entry_ids: list[int]) -> Ballots | None:
    """PostgreSQL: the counted ballots from their stored columns, one row each, no join.

    None when this does not apply: another database or driver, or a counted ballot
    whose ``leaf`` or ``choice_ids`` is NULL or malformed (the parse gives up; the
    caller reads the joined rows instead, which give the same ballots).
    """
    raw = _raw_connection()
    if raw is None:
        return None
    excluded = _excluded_ids(campaign_id).where(Exclusion.ballot_id == Ballot.id).exists()
    rows = select(Ballot.receipt, Ballot.leaf, Ballot.choice_ids).where(
        Ballot.campaign_id == campaign_id, ~excluded
    )
    dialect = db.session.connection().dialect
    query = rows.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    stored = _Stored()
    with ballot_copy.copy_out(raw, f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as blocks:
        if not ballot_copy.parse_stored(blocks, stored.add, FETCH_ROWS):
            return None
    return stored.ballots(entry_ids, _excluded_count(campaign_id))


def _copy_rows(campaign_id: int, runs: _Runs) -> int | None:
    """PostgreSQL: the counted rows by binary COPY into ``runs``; the excluded count.

    None when the fast path does not apply (another database or driver, a client
    encoding other than UTF-8, receipts of different lengths): the caller then streams.
    """
    raw = _raw_connection()
    if raw is None:
        return None
    excluded = _excluded_ids(campaign_id).where(Exclusion.ballot_id == Ballot.id).exists()
    rows = (
        select(Ballot.receipt, BallotChoice.entry_id)
        .join(BallotChoice, _choice_of_ballot())
        .where(Ballot.campaign_id == campaign_id, ~excluded)
    )
    dialect = db.session.connection().dialect
    query = rows.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    with ballot_copy.copy_out(raw, f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as blocks:
        if not ballot_copy.parse_copy(blocks, runs.add, FETCH_ROWS):
            return None
    return _excluded_count(campaign_id)


def _stream_rows(campaign_id: int, runs: _Runs) -> int:
    """Any database: one streamed statement (server-side cursor where there is one),
    ``receipt, entry_id, excluded`` per choice; returns the number of excluded ballots.

    One statement, so self-consistent even without a snapshot (SQLite through pysqlite).
    """
    excluded = _excluded_ids(campaign_id).distinct().subquery()
    stmt = (
        select(Ballot.receipt, BallotChoice.entry_id, excluded.c.ballot_id.is_not(None))
        .join(BallotChoice, _choice_of_ballot())
        .outerjoin(excluded, excluded.c.ballot_id == Ballot.id)
        .where(Ballot.campaign_id == campaign_id)
    )
    excluded_receipts: set[bytes] = set()
    # Core execution on the session's connection: same transaction (snapshot), without
    # the ORM's per-row overhead.
    result = db.session.connection().execute(stmt.execution_options(yield_per=FETCH_ROWS))
    for part in result.partitions():
        receipts_col, entries_col, excl_col = zip(*part, strict=True)
        n = len(part)
        receipts = np.array([r.encode("utf-8") for r in receipts_col], dtype=np.bytes_)
        entries = np.fromiter(entries_col, dtype=np.int64, count=n)
        excl = np.fromiter(excl_col, dtype=bool, count=n)
        if excl.any():
            excluded_receipts.update(receipts[excl].tolist())
            receipts, entries = receipts[~excl], entries[~excl]
        runs.add(receipts, entries)
    return len(excluded_receipts)


class _Runs:
    """Counted rows, one per choice, arriving in any order and in batches.

    Consecutive rows of one receipt (the usual case: a ballot's choices sit together)
    are kept as one run: the receipt once, the number of rows, and each row's entry id.
    A ballot split over several runs is joined up again by ``ballots``.
    """

    def __init__(self) -> None:
        self.receipts: list[np.ndarray] = []  # per run: receipt bytes
        self.lengths: list[np.ndarray] = []  # per run: number of rows
        self.entries: list[np.ndarray] = []  # per row: entry id

    def add(self, receipts: np.ndarray, entries: np.ndarray) -> None:
        n = len(receipts)
        if not n:
            return
        first = np.empty(n, dtype=bool)
        first[0] = True
        np.not_equal(receipts[1:], receipts[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        self.receipts.append(receipts[starts])
        self.lengths.append(np.diff(starts, append=n))
        self.entries.append(np.asarray(entries, dtype=np.int64))

    def ballots(self, entry_ids: list[int], excluded: int) -> Ballots:
        """Canonical order: ballots by receipt bytes, a ballot's choices by entry id."""
        if not self.receipts:
            empty = Approvals(indptr=np.zeros(1, dtype=np.int64), indices=np.zeros(0, np.int32))
            return Ballots(empty, np.zeros(0, dtype="S1"), excluded)
        receipts = np.concatenate(self.receipts)
        lengths = np.concatenate(self.lengths)
        entries = np.concatenate(self.entries)
        self.receipts, self.lengths, self.entries = [], [], []

        order = argsort_bytes(receipts)
        receipts = receipts[order]
        first = np.empty(len(receipts), dtype=bool)
        first[0] = True
        np.not_equal(receipts[1:], receipts[:-1], out=first[1:])
        ballot_of_run = np.empty(len(order), dtype=np.int64)
        ballot_of_run[order] = np.cumsum(first) - 1
        receipts = receipts[first]
        del order, first
        n_ballots = len(receipts)

        # One sort of (ballot, entry id) keys puts every choice in place.
        key = np.repeat(ballot_of_run, lengths)
        del ballot_of_run, lengths
        if len(entries) and entries.min() >= 0 and entries.max() < 1 << 32:
            key <<= 32
            key |= entries
            del entries
            key.sort()
            counts = np.bincount(key >> 32, minlength=n_ballots)
            key &= (1 << 32) - 1
            entries = key
        else:  # entry ids outside 0..2**32 (never from the database's serial ids)
            by = np.lexsort((entries, key))
            counts = np.bincount(key, minlength=n_ballots)
            entries = entries[by]
            del by
        del key
        indptr = np.zeros(n_ballots + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        to_position = _position_map(entry_ids)
        indices = np.empty(len(entries), dtype=np.int32)
        for lo in range(0, len(entries), REORDER_BLOCK):
            indices[lo : lo + REORDER_BLOCK] = to_position(entries[lo : lo + REORDER_BLOCK])
        return Ballots(Approvals(indptr=indptr, indices=indices), receipts, excluded)


class _Stored:
    """Counted ballots read from their stored columns: one receipt, leaf and choice
    count per ballot, the choices' entry ids (ascending per ballot) in row order."""

    def __init__(self) -> None:
        self.receipts: list[np.ndarray] = []
        self.leaves: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.entries: list[np.ndarray] = []

    def add(
        self, receipts: np.ndarray, leaves: np.ndarray, counts: np.ndarray, entries: np.ndarray
    ) -> None:
        self.receipts.append(receipts)
        self.leaves.append(leaves)
        self.counts.append(counts)
        self.entries.append(entries)

    def ballots(self, entry_ids: list[int], excluded: int) -> Ballots | None:
        """Canonical order: ballots by receipt bytes (choices are stored in entry id
        order). None if a receipt repeats (never, by the unique constraint)."""
        if not self.receipts:
            empty = Approvals(indptr=np.zeros(1, dtype=np.int64), indices=np.zeros(0, np.int32))
            return Ballots(empty, np.zeros(0, dtype="S1"), excluded, np.zeros(0, dtype="V32"))
        # Each list of batches is let go as soon as it is joined up, and the joined array
        # before it is reordered: at 1M ballots that keeps ~80 MB off the run's peak.
        receipts = np.concatenate(self.receipts)
        self.receipts = []
        counts = np.concatenate(self.counts)
        self.counts = []
        order = argsort_bytes(receipts)
        receipts = receipts[order]
        if len(receipts) > 1 and (receipts[1:] == receipts[:-1]).any():
            return None
        leaves = np.concatenate(self.leaves)
        self.leaves = []
        leaves = leaves[order]
        entries = np.concatenate(self.entries)
        self.entries = []
        starts = np.zeros(len(counts), dtype=np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        counts = counts[order]
        indptr = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        # Row k of the sorted ballots: its choices were at starts[order[k]]...
        gather = np.repeat(starts[order] - indptr[:-1], counts)
        gather += np.arange(len(gather), dtype=np.int64)
        del starts, order
        to_position = _position_map(entry_ids)
        indices = np.empty(len(gather), dtype=np.int32)
        for lo in range(0, len(gather), REORDER_BLOCK):
            indices[lo : lo + REORDER_BLOCK] = to_position(entries[gather[lo : lo + REORDER_BLOCK]])
        return Ballots(Approvals(indptr=indptr, indices=indices), receipts, excluded, leaves)


def argsort_bytes(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values, kind="stable")`` for an ``S`` array (byte order), faster.

    NumPy compares ``S`` items as strings; its sort of fixed-width unsigned integers is
    several times quicker. So the items are sorted by their first 8 bytes read as a
    big-endian integer (the same order), and only runs of equal prefixes (a handful
    among a million random receipts) are sorted again by their whole bytes.
    """
    n, width = len(values), values.dtype.itemsize
    if n < 2 or width <= 8:
        return np.argsort(values, kind="stable")
    head = np.ascontiguousarray(values).view(np.uint8).reshape(n, width)[:, :8]
    prefix = np.ascontiguousarray(head).view(">u8").reshape(n)
    order = np.argsort(prefix, kind="stable")
    ranked = prefix[order]
    tied = np.flatnonzero(ranked[1:] == ranked[:-1])
    if len(tied) > n // 16:  # values sharing long prefixes: the plain sort is better
        return np.argsort(values, kind="stable")
    if len(tied):
        # runs of equal prefixes: [start, stop) in sorted position
        begins = tied[np.r_[True, tied[1:] != tied[:-1] + 1]]
        ends = tied[np.r_[tied[1:] != tied[:-1] + 1, True]] + 2
        for lo, hi in zip(begins.tolist(), ends.tolist(), strict=True):
            run = order[lo:hi]
            order[lo:hi] = run[np.argsort(values[run], kind="stable")]
    return order


def _position_map(entry_ids: list[int]):
    """Entry id -> position (entries in code order), as a vectorised function.

    An id not in the list maps to -1, which the engine refuses (``invalid_approvals``)
    rather than silently dropping a vote.
    """
    ids = np.asarray(entry_ids, dtype=np.int64)
    by_id = np.argsort(ids)
    sorted_ids = ids[by_id]

    def to_position(values: np.ndarray) -> np.ndarray:
        out = np.full(len(values), -1, dtype=np.int32)
        if len(ids):
            slot = np.minimum(np.searchsorted(sorted_ids, values), len(ids) - 1)
            hit = sorted_ids[slot] == values
            out[hit] = by_id[slot[hit]]
        return out

    return to_position


def load_method(campaign: Campaign) -> Method:
    return campaign.rules.method()


def load_reviews(campaign_id: int, positions: dict[int, int]) -> list[Review]:
    rows = db.session.execute(
        select(Score.expert_id, Score.entry_id, Score.scores)
        .where(Score.campaign_id == campaign_id)
        .order_by(Score.expert_id, Score.entry_id)
    )
    return [
        Review(expert=str(expert_id), entry=positions[entry_id], scores=dict(scores))
        for expert_id, entry_id, scores in rows
        if entry_id in positions
    ]


# --- the computation --------------------------------------------------------------------


def _approvals_sha256(approvals: Approvals) -> str:
    """SHA-256 of indptr then indices as little-endian int64, hashed a slice at a time."""
    h = hashlib.sha256()
    for array in (approvals.indptr, approvals.indices):
        for i in range(0, len(array), 1 << 20):
            h.update(np.asarray(array[i : i + (1 << 20)], dtype="<i8").tobytes())
    return h.hexdigest()


def _chunk_text(block: np.ndarray) -> str:
    """The newline-separated receipts of a chunk (``MerkleChunk.receipts``).

    ``block`` is an ``S`` array; when every receipt fills its width (a receipt code
    always does, and holds no NUL byte) the text is built as one byte matrix instead of
    a Python bytes object per receipt; otherwise receipt by receipt.
    """
    width = block.dtype.itemsize
    grid = np.empty((len(block), width + 1), dtype=np.uint8)
    grid[:, :width] = block.view(np.uint8).reshape(len(block), width)
    if not grid[:, width - 1].all():  # a shorter receipt, padded with NUL bytes
        return b"\n".join(block.tolist()).decode("utf-8")
    grid[:, width] = ord("\n")
    return grid.tobytes()[:-1].decode("utf-8")


def _store_tree(run_id: str, receipts: np.ndarray, leaves: np.ndarray | None = None) -> str:
    """Insert the run's Merkle chunks; return the ballots root (hex). ``leaves``: the
    receipts' leaf hashes in the same order when stored at ingest, else computed here."""
    db.session.execute(delete(MerkleChunk).where(MerkleChunk.run_id == run_id))
    if leaves is None:
        leaves = np.frombuffer(b"".join(merkle.leaf_hashes(receipts.tolist())), dtype="V32")
    chunk_roots = tree_hash.chunk_roots(leaves, merkle.CHUNK)
    pending: list[dict[str, Any]] = []
    for index, start in enumerate(range(0, len(receipts), merkle.CHUNK)):
        block = receipts[start : start + merkle.CHUNK]
        pending.append(
            {
                "run_id": run_id,
                "chunk_index": index,
                "first_receipt": block[0].decode("utf-8"),
                "size": len(block),
                "receipts": _chunk_text(block),
                "root": chunk_roots[index].hex(),
            }
        )
        if len(pending) >= CHUNK_INSERT:
            db.session.execute(insert(MerkleChunk), pending)
            pending = []
    if pending:
        db.session.execute(insert(MerkleChunk), pending)
    return merkle.root(chunk_roots).hex()


def compute(run: RankingRun) -> dict[str, Any]:
    """Freeze the input and compute ``run``'s result; the caller commits.

    Raises ``RankingError`` (permanent) when the method cannot be honoured; any other
    exception is a transient failure for the job to retry.
    """
    _snapshot()
    campaign = db.session.get(Campaign, run.campaign_id)
    assert campaign is not None  # the run's foreign key
    entry_rows = list(
        db.session.scalars(
            select(EntryRow).where(EntryRow.campaign_id == campaign.id).order_by(EntryRow.code)
        )
    )
    criteria_rows = list(
        db.session.scalars(
            select(CriterionRow)
            .where(CriterionRow.campaign_id == campaign.id)
            .order_by(CriterionRow.position, CriterionRow.key)
        )
    )
    method = load_method(campaign)
    entries = [
        Entry(code=e.code, title=e.title, category=e.category, area=e.area, cost=e.cost)
        for e in entry_rows
    ]
    criteria = [
        Criterion(key=c.key, max_points=c.max_points, weight=c.weight, label=c.label)
        for c in criteria_rows
    ]
    positions = {e.id: i for i, e in enumerate(entry_rows)}
    reviews = load_reviews(campaign.id, positions)
    ballots = load_ballots(campaign.id, [e.id for e in entry_rows])

    ballots_root = _store_tree(run.id, ballots.receipts, ballots.leaves)
    roll_turnout = turnout(campaign)  # roll campaigns only; same snapshot
    frozen = {
        "campaign": campaign.slug,
        "title": campaign.title,
        "method": dataclasses.asdict(method),
        "entries": [dataclasses.asdict(e) for e in entries],
        "criteria": [dataclasses.asdict(c) for c in criteria],
        "reviews": [[r.expert, entries[r.entry].code, r.scores] for r in reviews],
        "ballots_counted": ballots.approvals.n_ballots,
        "ballots_excluded": ballots.excluded,
        "ballots_root": ballots_root,
        "approvals_sha256": _approvals_sha256(ballots.approvals),
    }
    if roll_turnout is not None:
        frozen["turnout"] = roll_turnout
    input_digest = hashlib.sha256(canonical_json(frozen).encode("utf-8")).hexdigest()
    lot_seed = lot_seed_for(input_digest)

    ranked = rank(entries, ballots.approvals, reviews, criteria, method, lot_seed=lot_seed)
    gaps = review_gaps_note(campaign)  # same snapshot: experts, assignments, scores
    if gaps is not None:
        ranked["notes"].append(gaps)
    content = {
        "campaign": campaign.slug,
        "title": campaign.title,
        "method": ranked["method"],
        "calibration": ranked["calibration"],
        "ballots_counted": ranked["counts"]["ballots_counted"],
        "ballots_excluded": ballots.excluded,
        "reviews": ranked["counts"]["reviews"],
        "entries": ranked["counts"]["entries"],
        "ballots_root": ballots_root,
        "input_digest": input_digest,
        "lot_seed": ranked["lot_seed"],
        "notes": ranked["notes"],
        "rows": ranked["rows"],
    }
    if roll_turnout is not None:
        content["turnout"] = roll_turnout
    content["result_digest"] = hashlib.sha256(canonical_json(content).encode()).hexdigest()

    run.input_digest = input_digest
    run.ballots_root = ballots_root
    run.result = content
    run.status = "finished"
    run.error = None
    run.finished_at = now()
    _prune_trees(campaign.id, run.id)
    return content


def review_gaps_note(campaign: Campaign) -> dict[str, Any] | None:
    """A ``reviews_infeasible`` note naming the entries that cannot reach
    ``min_reviews`` with the experts as they stand (``domain/feasibility.py``)."""
    found = infeasible(campaign)
    if not found:
        return None
    return {
        "code": "reviews_infeasible",
        "message": (
            f"{len(found)} entries cannot reach min_reviews with the current experts: "
            + ", ".join(f"{i['code']} ({i['reason']})" for i in found)
        ),
        "details": {
            "entries": [
                {k: i[k] for k in ("code", "reason", "reviewers_possible", "min_reviews")}
                for i in found
            ]
        },
    }


def _prune_trees(campaign_id: int, current_run_id: str) -> None:
    """Drop the receipts of superseded provisional runs: published runs, the current run
    and the latest few finished runs keep theirs."""
    recent = [
        row
        for row in db.session.scalars(
            select(RankingRun.id)
            .where(RankingRun.campaign_id == campaign_id, RankingRun.status == "finished")
            .order_by(RankingRun.finished_at.desc())
            .limit(KEEP_UNPUBLISHED)
        )
    ]
    published = select(Publication.run_id).where(Publication.campaign_id == campaign_id)
    runs = select(RankingRun.id).where(RankingRun.campaign_id == campaign_id)
    db.session.execute(
        delete(MerkleChunk).where(
            MerkleChunk.run_id.in_(runs),
            MerkleChunk.run_id.not_in(published),
            MerkleChunk.run_id.not_in([current_run_id, *recent]),
        )
    )
