"""Batch uploads settled set-based (issue 18): on PostgreSQL the ballots go through a
staging table (service/infra/ballot_stage.py); the answers and the stored rows are the
same as the row-by-row insert's, and exactly-once holds (replays, duplicates, two
concurrent uploads, a connection lost mid-batch). Items are loaded by
``schemas.ballot.load_ballot``, which must answer as BallotInSchema does."""

from __future__ import annotations

import base64
import hashlib
import json
import string
import uuid
from datetime import timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from sqlalchemy import delete, event, func, select

from schemas.ballot import BallotInSchema, BatchOutSchema, load_ballot
from service.domain import ballots as domain
from service.extensions import db
from service.models import Ballot, BallotChoice
from tests.support import (
    OPEN,
    ballot,
    bid,
    concurrently,
    count_ballots,
    is_postgres,
    kiosk_credentials,
)

BATCH = "/api/v1/campaigns/c1/ballots/batch"


@pytest.fixture
def voting(make_campaign, clock):
    make_campaign()
    clock.set(OPEN)
    return clock


@pytest.fixture
def kiosk(client):
    return kiosk_credentials(client, "居委会大厅")


def upload(client, kiosk, items):
    r = client.post(BATCH, json={"ballots": items}, headers=kiosk["headers"])
    assert r.status_code == 200, r.json
    return r.json["results"]


def statuses(results):
    return [(x["status"], x.get("error", {}).get("code")) for x in results]


def choice_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(BallotChoice))


def phone(n: int) -> str:
    return f"1370000{n:04d}"


def test_replays_in_a_later_batch(client, voting, kiosk, app):
    """A later batch that repeats ballots replays them (original receipts); a repeated
    ballot id with other choices is ballot_id_reused; new ballots go in beside them."""
    first = [ballot(["A01", "A02"], voter=phone(i)) for i in range(30)]
    answers = upload(client, kiosk, first)
    assert {x["status"] for x in answers} == {"accepted"}
    later = [
        *first[:10],
        {**first[10], "choices": ["A03"]},
        ballot(["A03"], voter=phone(100)),
        ballot(["A03"], voter=phone(0)),  # a voter of the first batch, a new ballot id
    ]
    again = upload(client, kiosk, later)
    assert statuses(again) == [("replayed", None)] * 10 + [
        ("rejected", "ballot_id_reused"),
        ("accepted", None),
        ("rejected", "already_voted"),
    ]
    assert [x["receipt"] for x in again[:10]] == [x["receipt"] for x in answers[:10]]
    assert [x["accepted_at"] for x in again[:10]] == [x["accepted_at"] for x in answers[:10]]
    assert count_ballots(app) == 31 and choice_count(app) == 61


def test_duplicates_inside_one_batch(client, voting, kiosk, app):
    """In one batch: the same ballot twice replays the first; the same voter under another
    id is already_voted; the same id with other choices is ballot_id_reused."""
    a = ballot(["A01"], voter=phone(1))
    b = ballot(["A02"], voter=phone(2))
    items = [
        a,
        dict(a),
        ballot(["A03"], voter=phone(1)),
        b,
        {**b, "choices": ["A01", "A03"]},
        ballot(["A01", "A02", "A03"], voter=phone(3)),
    ]
    results = upload(client, kiosk, items)
    assert statuses(results) == [
        ("accepted", None),
        ("replayed", None),
        ("rejected", "already_voted"),
        ("accepted", None),
        ("rejected", "ballot_id_reused"),
        ("accepted", None),
    ]
    assert results[1]["receipt"] == results[0]["receipt"]
    assert count_ballots(app) == 3 and choice_count(app) == 5


def test_same_batch_uploaded_twice_at_once(app, voting, kiosk):
    """Two threads upload one batch at the same moment: each ballot is accepted by one
    and replayed by the other, and stored once with its choices."""
    items = [ballot(["A01", "A03"], voter=phone(i)) for i in range(200)]

    def send(_):
        r = app.test_client().post(BATCH, json={"ballots": items}, headers=kiosk["headers"])
        assert r.status_code == 200, r.json
        return r.json["results"]

    runs = concurrently(2, send)
    for position in range(len(items)):
        assert sorted(run[position]["status"] for run in runs) == ["accepted", "replayed"]
        assert runs[0][position]["receipt"] == runs[1][position]["receipt"]
    assert count_ballots(app) == 200 and choice_count(app) == 400


def _mixed_items() -> tuple[list[dict], list]:
    """Ballots stored before the batch, and a batch mixing every kind of answer."""
    before = [ballot(["A01"], voter=phone(900 + i)) for i in range(3)]
    late = (OPEN + timedelta(minutes=20)).isoformat()  # after the kiosk was registered
    twin = ballot(["A02", "A03"], voter=phone(10))
    items = [
        ballot(["A01"], voter=phone(1)),
        before[0],  # replay of a stored ballot
        {**before[1], "choices": ["A02"]},  # ballot_id_reused
        ballot(["A02"], voter=phone(902)),  # already_voted (stored)
        twin,
        dict(twin),  # replay inside the batch
        ballot(["A03"], voter=phone(10)),  # already_voted (inside the batch)
        ballot(["A99"], voter=phone(11)),  # unknown_entry
        ballot(["A01", "A01"], voter=phone(12)),  # duplicate_choice
        ballot([], voter=phone(13)),  # too_few_choices
        ballot(["A01", "A02", "A03", "A04"], voter=phone(14)),  # too_many_choices / unknown
        ballot(["A01"], voter="123"),  # invalid_voter_id
        {"nonsense": True},  # validation_error
        "not an object",
        {**ballot(voter=phone(15)), "ballot_id": "not-a-uuid"},
        {**ballot(voter=phone(16)), "cast_at": (OPEN + timedelta(hours=3)).isoformat()},  # future
        {**ballot(voter=phone(17)), "cast_at": late},  # late_upload flag
        {**ballot(voter=phone(18)), "cast_at": "2026-11-22T10:00:00"},  # naive
        {**ballot(["A02"], voter=phone(19)), "ballot_id": bid().upper()},
        *[ballot(["A03", "A01"], voter=phone(20 + i)) for i in range(12)],  # bursts
    ]
    return before, items


def _run_mixed(client, kiosk, app, before, items):
    receipts: dict[str, object] = {
        x["receipt"]: f"stored {n}" for n, x in enumerate(upload(client, kiosk, before))
    }
    results = upload(client, kiosk, items)
    receipts.update({x["receipt"]: n for n, x in enumerate(results) if x["status"] == "accepted"})
    shown = []
    for x in results:
        x = dict(x)
        if "receipt" in x:  # which ballot it is, not the random code
            x["receipt"] = receipts[x["receipt"]]
            x.pop("accepted_at")
        shown.append(x)
    with app.app_context():
        stored = sorted(
            (b.voter_key, b.dedup_slot, b.flagged, b.cast_at, b.channel, b.kiosk_id)
            for b in db.session.scalars(select(Ballot))
        )
        chosen = db.session.scalar(select(func.count()).select_from(BallotChoice))
    return shown, stored, chosen


def _wipe(app):
    with app.app_context():
        db.session.execute(delete(BallotChoice))
        db.session.execute(delete(Ballot))
        db.session.commit()


def test_mixed_batch_answers_as_the_row_by_row_insert(client, voting, kiosk, app, monkeypatch):
    """The same mixed batch (replays, reuses, duplicates, refusals, invalid items, flags)
    gets the same answers and stores the same rows through the staging table as through
    the multi-row insert it replaced (on SQLite both are the multi-row insert)."""
    app.config["BURST_MAX_BALLOTS"] = 8
    voting.set(OPEN + timedelta(hours=1))  # the kiosk was registered an hour ago
    try:
        before, items = _mixed_items()
        staged = _run_mixed(client, kiosk, app, before, items)
        _wipe(app)
        monkeypatch.setattr(domain, "_stages", lambda session: False)
        plain = _run_mixed(client, kiosk, app, before, items)
    finally:
        app.config["BURST_MAX_BALLOTS"] = 30
    assert staged == plain
    # The view writes the items itself: they must be what BatchOutSchema dumps them to.
    results = upload(client, kiosk, items)
    assert BatchOutSchema().dump({"results": results}) == {"results": results}
    codes = [(x["status"], x.get("error", {}).get("code")) for x in staged[0]]
    assert codes[:8] == [
        ("accepted", None),
        ("replayed", None),
        ("rejected", "ballot_id_reused"),
        ("rejected", "already_voted"),
        ("accepted", None),
        ("replayed", None),
        ("rejected", "already_voted"),
        ("rejected", "unknown_entry"),
    ]
    assert any(row[2] and "burst" in row[2] for row in staged[1])
    assert any(row[2] and "late_upload" in row[2] for row in staged[1])


@pytest.mark.skipif(not is_postgres(), reason="a lost connection: PostgreSQL only")
@pytest.mark.parametrize("where", ["copy", "settle"])
def test_lost_connection_mid_batch_is_503_and_writes_nothing(client, voting, kiosk, app, where):
    """PostgreSQL drops the request's connection while the batch is copied into the
    staging table, or while it is settled: 503 unavailable with Retry-After, not one
    ballot or choice written; the kiosk's retry of the same batch then counts it once."""
    items = [ballot(["A01", "A02"], voter=phone(i)) for i in range(50)]
    upload(client, kiosk, [ballot(["A03"], voter=phone(999))])  # the rules lock; warm
    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg", "postgresql")
    killed = []

    def kill(conn) -> None:
        pid = conn.connection.driver_connection.info.backend_pid
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        killed.append(pid)

    def before(conn, cursor, statement, *args):
        if where == "settle" and statement.startswith("WITH new AS (INSERT INTO ballots"):
            kill(conn)

    def after(conn, cursor, statement, *args):
        if where == "copy" and statement.startswith("CREATE TEMPORARY TABLE IF NOT EXISTS ballot_"):
            kill(conn)  # the next thing on this connection is the COPY

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        r = client.post(BATCH, json={"ballots": items}, headers=kiosk["headers"])
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    assert killed, "the batch did not reach the staging table"
    assert r.status_code == 503 and r.json["error"]["code"] == "unavailable", r.json
    assert r.headers["Retry-After"]
    assert count_ballots(app) == 1 and choice_count(app) == 1
    results = upload(client, kiosk, items)
    assert {x["status"] for x in results} == {"accepted"}
    assert count_ballots(app) == 51 and choice_count(app) == 101


# --- load_ballot answers as BallotInSchema ---------------------------------------------

_SCHEMA = BallotInSchema()

_uuids = st.uuids().flatmap(
    lambda u: st.sampled_from(
        [str(u), str(u).upper(), u.hex, "{" + str(u) + "}", "urn:uuid:" + str(u)]
    )
)
_texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=string.digits + "+- ", max_size=20),
    st.text(alphabet="\x00\x07\t\n\x1f\x7fA", max_size=5),
    st.text(min_size=95, max_size=110),
)
_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_codes = st.one_of(
    st.sampled_from(["A01", "A02", "A03"]),
    st.text(max_size=40),
    st.text(alphabet="\x00\x0bA", max_size=3),
    _junk,
)
_times = st.one_of(
    st.none(),
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.datetimes().map(lambda t: t.isoformat()),  # naive
    st.sampled_from(["2026-11-22T10:00:00+08:00", "2026-11-22T10:00:00Z", "", "yesterday"]),
    _junk,
)
_fields = {
    "ballot_id": st.one_of(_uuids, st.text(max_size=40), _junk),
    "voter_id": st.one_of(_texts, _junk),
    "choices": st.one_of(
        st.lists(_codes, max_size=6),
        st.lists(st.just("A01"), min_size=499, max_size=502),
        _junk,
        st.text(max_size=5),
    ),
    "cast_at": _times,
    "verification": st.one_of(
        st.none(), st.fixed_dictionaries({"id": st.text(max_size=3), "code": st.text(max_size=3)})
    ),
    "extra": _junk,
}
_items = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "ballot_id": _fields["ballot_id"],
            "voter_id": _fields["voter_id"],
            "choices": _fields["choices"],
            "cast_at": _fields["cast_at"],
            "verification": _fields["verification"],
            "extra": _fields["extra"],
        },
    ),
    st.fixed_dictionaries(  # the usual, valid item: the fast path
        {
            "ballot_id": _uuids,
            "voter_id": st.text(alphabet=string.digits, min_size=1, max_size=20),
            "choices": st.lists(st.sampled_from(["A01", "A02", "A03"]), max_size=4),
        },
        optional={"cast_at": _times},
    ),
    _junk,
    st.text(max_size=5),
)


def _answer(load, data):
    try:
        return "loaded", load(data)
    except ValidationError as exc:
        return "refused", exc.messages


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_items)
def test_load_ballot_answers_as_the_schema(data):
    """Valid and invalid items alike: the same loaded ballot, or the same messages."""
    assert _answer(load_ballot, data) == _answer(_SCHEMA.load, data)


def test_load_ballot_examples():
    u = uuid.uuid4()
    item = {"ballot_id": str(u).upper(), "voter_id": "13912345678", "choices": ["A01"]}
    assert load_ballot(item) == {
        "ballot_id": u,
        "voter_id": "13912345678",
        "choices": ["A01"],
        "cast_at": None,
        "verification": None,
    }
    with pytest.raises(ValidationError) as exc:
        load_ballot({**item, "voter_id": "1\x00"})
    assert exc.value.messages == {
        "voter_id": ["不允许控制字符 / control characters are not allowed"]
    }


# --- the digest and the receipt, written out, are json.dumps's bytes -------------------


def _reference_digest(campaign_id, key, choices, cast_at):
    doc = {
        "campaign": campaign_id,
        "voter": key,
        "choices": choices,
        "cast_at": cast_at.isoformat() if cast_at else None,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _reference_receipt(ballot_id, slug, choices, nonce):
    canonical = json.dumps(
        {"ballot_id": ballot_id, "campaign": slug, "choices": choices},
        sort_keys=True,
        separators=(",", ":"),
    )
    digest = hashlib.sha256(canonical.encode() + bytes.fromhex(nonce)).digest()
    code = base64.b32encode(digest[:10]).decode()
    return "-".join(code[i : i + 4] for i in range(0, 16, 4))


@settings(max_examples=1000, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**31),
    st.text(),
    st.lists(st.text()),
    st.one_of(st.none(), st.datetimes(timezones=st.timezones())),
    st.text(),
    st.binary(min_size=16, max_size=16).map(bytes.hex),
)
def test_digest_and_receipt_bytes_are_unchanged(campaign_id, text, choices, cast_at, slug, nonce):
    """Stored digests are compared on every replay and receipts commit to the ballot:
    the written-out forms must give json.dumps's bytes, for any text."""
    assert domain._digest(campaign_id, text, choices, cast_at) == _reference_digest(
        campaign_id, text, choices, cast_at
    )
    assert domain.make_receipt(text, slug, choices, nonce) == _reference_receipt(
        text, slug, choices, nonce
    )
