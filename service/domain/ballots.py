"""Casting ballots: the one function every channel uses (API, batch, HTML form, demo).

Exactly-once is settled by the database, not by checks in Python: the ballot id is the
primary key (idempotent retries) and (campaign, voter_key, dedup_slot) is unique (one
ballot per voter per campaign or per campaign-local day). Each ballot is written in a
savepoint, so a refused ballot never leaves a partial write and a batch can go on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import struct
import typing
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring_ascii as _json_str  # json.dumps's str
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import (
    ARRAY,
    Integer,
    Table,
    any_,
    bindparam,
    case,
    cast,
    func,
    insert,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from engine import merkle

from .. import hotcache
from ..clock import now
from ..errors import ApiError
from ..extensions import db
from ..infra import ballot_stage
from ..models import Ballot, BallotChoice, Campaign, Entry, Exclusion, Kiosk
from ..observability import BALLOTS
from . import verification as verify
from .access import check_channel
from .campaigns import lock_rules
from .publications import receipt_status
from .roll import check_voter, preloaded
from .voters import InvalidVoterId, voter_key
from .web_flags import add_flag, mark_web_ballot

log = logging.getLogger(__name__)

# A kiosk clock may run a little fast; beyond this a cast_at "from the future" is refused.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class BallotRecord:
    """What the caller needs of a stored ballot (no ORM object on the hot path)."""

    id: str
    receipt: str
    accepted_at: datetime
    channel: str
    flagged: str | None = None


@dataclass
class CastResult:
    ballot: BallotRecord
    choices: list[str]
    replayed: bool

    def body(self) -> dict:
        return {
            "ballot_id": self.ballot.id,
            "receipt": self.ballot.receipt,
            "accepted_at": self.ballot.accepted_at.astimezone(UTC),
            "choices": self.choices,
            "channel": self.ballot.channel,
        }


def entry_ids(campaign: Campaign, codes: list[str] | None = None) -> dict[str, int]:
    """Code -> id for the campaign's entries (only the given codes, when given)."""
    query = select(Entry.code, Entry.id).where(Entry.campaign_id == campaign.id)
    if codes is not None:
        query = query.where(Entry.code.in_(set(codes)))
    return dict(db.session.execute(query).all())


def _check_choices(campaign: Campaign, choices: list[str], codes: dict[str, int]) -> list[str]:
    voting = campaign.rules.voting
    if len(set(choices)) != len(choices):
        dupes = sorted({c for c in choices if choices.count(c) > 1})
        raise ApiError(
            422,
            "duplicate_choice",
            "同一对象不能重复选择 / An entry was chosen twice",
            {"codes": dupes},
        )
    low, high = voting.min_choices, voting.max_choices
    if len(choices) < low:
        raise ApiError(
            422, "too_few_choices", f"至少选择 {low} 项 / Choose at least {low}", {"min": low}
        )
    if len(choices) > high:
        raise ApiError(
            422, "too_many_choices", f"最多选择 {high} 项 / Choose at most {high}", {"max": high}
        )
    unknown = [c for c in choices if c not in codes]
    if unknown:
        raise ApiError(
            422, "unknown_entry", "所选对象不在本次评选中 / Unknown entry", {"codes": unknown}
        )
    return sorted(choices)


def _effective_time(
    campaign: Campaign,
    channel: str,
    cast_at: datetime | None,
    arrived: datetime,
    kiosk_since: datetime | None = None,
) -> datetime:
    """When the ballot counts as cast; refuses ballots outside the window, and ballots
    dated before their kiosk was registered (``kiosk_since``)."""
    voting = campaign.rules.voting
    if campaign.draft:  # no voting in a draft, whatever its dates say
        raise ApiError(
            403,
            "voting_not_open",
            "活动尚未发布 / The campaign has not been published",
            {"draft": True},
        )
    opens, closes = voting.opens_at, voting.closes_at
    effective = arrived
    if channel == "kiosk" and cast_at is not None:
        if cast_at > arrived + CLOCK_SKEW:
            raise ApiError(
                422,
                "validation_error",
                "投票时间不能晚于当前时间 / cast_at is in the future",
                {"fields": {"cast_at": ["in the future"]}},
            )
        if kiosk_since is not None and cast_at < kiosk_since:
            raise ApiError(
                422,
                "cast_at_before_kiosk",
                "投票时间早于该终端的登记时间 / cast_at is before this kiosk was registered",
                {"kiosk_registered_at": kiosk_since.astimezone(UTC).isoformat()},
            )
        effective = cast_at
        grace = timedelta(hours=float(voting.kiosk_grace_hours))
        if closes is not None and arrived >= closes + grace:
            raise ApiError(
                403,
                "voting_closed",
                "投票已结束 / Voting has closed",
                {"closes_at": closes.isoformat()},
            )
    if opens is None or effective < opens:
        raise ApiError(
            403,
            "voting_not_open",
            "投票尚未开始 / Voting has not opened",
            {"opens_at": opens.isoformat() if opens else None},
        )
    if closes is not None and effective >= closes:
        raise ApiError(
            403,
            "voting_closed",
            "投票已结束 / Voting has closed",
            {"closes_at": closes.isoformat()},
        )
    return effective


def _digest(campaign_id: int, key: str, choices: list[str], cast_at: datetime | None) -> str:
    """SHA-256 of ``json.dumps({"campaign", "voter", "choices", "cast_at"},
    sort_keys=True)``: the stored content digest that a replay is compared with, so its
    bytes never change. The usual arguments are written out directly (the same text,
    several times faster; tests/test_batch_settle.py compares both)."""
    if type(campaign_id) is int and type(key) is str and all(type(c) is str for c in choices):
        when = _json_str(cast_at.isoformat()) if cast_at else "null"
        chosen = ", ".join(map(_json_str, choices))
        voter = _json_str(key)
        text = f'{{"campaign": {campaign_id}, "cast_at": {when}, "choices": [{chosen}], "voter": {voter}}}'
        return hashlib.sha256(text.encode()).hexdigest()
    doc = {
        "campaign": campaign_id,
        "voter": key,
        "choices": choices,
        "cast_at": cast_at.isoformat() if cast_at else None,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def make_receipt(ballot_id: str, campaign_slug: str, choices: list[str], nonce: str) -> str:
    """H(canonical ballot ‖ server nonce), 80 bits in base32, as XXXX-XXXX-XXXX-XXXX.

    The nonce is random and stays on the server, so the code reveals neither the voter
    nor the choices, yet it commits to the ballot's content. The canonical form is
    ``json.dumps({"ballot_id", "campaign", "choices"}, sort_keys=True,
    separators=(",", ":"))``, written out directly for the usual arguments.
    """
    if (
        type(ballot_id) is str
        and type(campaign_slug) is str
        and all(type(c) is str for c in choices)
    ):
        ident, slug = _json_str(ballot_id), _json_str(campaign_slug)
        chosen = ",".join(map(_json_str, choices))
        canonical = f'{{"ballot_id":{ident},"campaign":{slug},"choices":[{chosen}]}}'
    else:
        canonical = json.dumps(
            {"ballot_id": ballot_id, "campaign": campaign_slug, "choices": choices},
            sort_keys=True,
            separators=(",", ":"),
        )
    digest = hashlib.sha256(canonical.encode() + bytes.fromhex(nonce)).digest()
    return _receipt_code(digest[:10])


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648 base32, as base64.b32encode
_B32_SHIFTS = tuple(range(75, -1, -5))


def _receipt_code(head: bytes) -> str:
    """``base64.b32encode(head)`` of 10 bytes (16 characters, no padding) as
    XXXX-XXXX-XXXX-XXXX; b32encode is pure Python in 3.11 and costs more than the hash."""
    n = int.from_bytes(head, "big")
    code = "".join([_B32[(n >> shift) & 31] for shift in _B32_SHIFTS])
    return f"{code[:4]}-{code[4:8]}-{code[8:12]}-{code[12:]}"


def normalise_receipt(value: str) -> str:
    raw = "".join(ch for ch in value.upper() if ch.isalnum())
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def _replay(existing: Ballot, campaign: Campaign, digest: str | None) -> CastResult:
    if existing.campaign_id != campaign.id or existing.content_digest != digest:
        raise ApiError(
            422,
            "ballot_id_reused",
            "该选票编号已用于另一张选票 / This ballot_id was used for another ballot",
            {"ballot_id": existing.id},
        )
    codes = sorted(
        db.session.scalars(
            select(Entry.code)
            .join(BallotChoice, BallotChoice.entry_id == Entry.id)
            .where(BallotChoice.ballot_id == existing.id)
        )
    )
    record = BallotRecord(
        existing.id, existing.receipt, existing.accepted_at, existing.channel, existing.flagged
    )
    return CastResult(record, codes, replayed=True)


def cast_ballot(campaign: Campaign, **kwargs) -> CastResult:
    """Validate and record one ballot in a savepoint of the caller's transaction.

    Returns the stored ballot (new, or the original on an identical retry); raises
    ApiError with the contract's codes otherwise. The caller commits before answering.
    Keyword arguments: ballot_id, voter_id, choices, channel, kiosk_id, cast_at, codes,
    verification ({"id", "code"}: the SMS code, for campaigns with ``verify: sms``).
    """
    try:
        result = _cast_ballot(campaign, **kwargs)
    except ApiError as exc:
        BALLOTS.labels(exc.code).inc()
        raise
    BALLOTS.labels("replayed" if result.replayed else "accepted").inc()
    return result


@dataclass
class _Prepared:
    row: dict
    chosen: list[str]
    digest: str
    slot: str


def _prepare(
    campaign: Campaign,
    *,
    ballot_id: str,
    voter_id: object,
    choices: list[str],
    channel: str,
    kiosk_id: int | None,
    cast_at: datetime | None,
    codes: dict[str, int],
    arrived: datetime,
    kiosk_since: datetime | None = None,
) -> tuple[str | None, _Prepared | ApiError]:
    """Check one ballot against the campaign's rules, without touching the database
    (except the roll lookup of an ``eligibility: roll`` campaign).

    Returns (content digest or None, the row to insert or the refusal).
    """
    voting = campaign.rules.voting
    try:
        check_channel(campaign, channel)
    except ApiError as exc:
        return None, exc
    try:
        key = voter_key(current_app.config["VOTER_PEPPER"], voting.voter_id, voter_id)
    except InvalidVoterId as exc:
        return None, ApiError(422, "invalid_voter_id", str(exc), {"kind": voting.voter_id})
    if channel != "kiosk":
        cast_at = None  # web ballots use server time
    digest = _digest(campaign.id, key, sorted(set(choices)), cast_at)
    try:
        chosen = _check_choices(campaign, choices, codes)
        effective = _effective_time(campaign, channel, cast_at, arrived, kiosk_since)
        check_voter(campaign, key, chosen)
    except ApiError as exc:
        return digest, exc
    slot = "once"
    if voting.limit == "daily":
        slot = effective.astimezone(ZoneInfo(campaign.timezone)).date().isoformat()
    nonce = secrets.token_hex(16)
    receipt = make_receipt(ballot_id, campaign.slug, chosen, nonce)
    row = {
        "id": ballot_id,
        "campaign_id": campaign.id,
        "voter_key": key,
        "dedup_slot": slot,
        "channel": channel,
        "kiosk_id": kiosk_id,
        "cast_at": effective,
        "accepted_at": arrived,
        "content_digest": digest,
        "receipt": receipt,
        "nonce": nonce,
        # For the ranking run: the Merkle leaf and the choices, without a join.
        "leaf": merkle.leaf_hash(receipt.encode("utf-8")),
        "choice_ids": encode_choice_ids([codes[c] for c in chosen]),
        "flagged": None,
    }
    if arrived - effective > timedelta(seconds=current_app.config["LATE_UPLOAD_SECONDS"]):
        add_flag(row, "late_upload")
    return digest, _Prepared(row, chosen, digest, slot)


def encode_choice_ids(ids: list[int]) -> bytes:
    """``ballots.choice_ids``: the entry ids ascending, as big-endian int32."""
    return struct.pack(f">{len(ids)}i", *sorted(ids))


def _kiosk_since(kiosk_id: int | None, cast_at: datetime | None) -> datetime | None:
    """When the kiosk was registered; looked up only for a ballot that carries cast_at."""
    if kiosk_id is None or cast_at is None:
        return None
    return db.session.scalar(select(Kiosk.created_at).where(Kiosk.id == kiosk_id))


def _choice_rows(campaign: Campaign, prepared: _Prepared, codes: dict[str, int]) -> list[dict]:
    return [
        {"ballot_id": prepared.row["id"], "entry_id": codes[c], "campaign_id": campaign.id}
        for c in prepared.chosen
    ]


def _already_voted(campaign: Campaign, slot: str) -> ApiError:
    message = (
        "您今天已投过票 / This voter has already voted today"
        if slot != "once"
        else "您已投过票 / This voter has already voted"
    )
    return ApiError(409, "already_voted", message, {"limit": campaign.rules.voting.limit})


def _cast_ballot(
    campaign: Campaign,
    *,
    ballot_id: str | uuid.UUID,
    voter_id: object,
    choices: list[str],
    channel: str,
    kiosk_id: int | None = None,
    cast_at: datetime | None = None,
    codes: dict[str, int] | None = None,
    isolated: bool = True,
    autocommit: bool = False,
    verification: dict | None = None,
) -> CastResult:
    arrived = now()
    ballot_id = str(uuid.UUID(str(ballot_id)))
    if codes is None:
        codes = entry_ids(campaign, choices if isinstance(choices, list) else [])
    digest, prepared = _prepare(
        campaign,
        ballot_id=ballot_id,
        voter_id=voter_id,
        choices=choices,
        channel=channel,
        kiosk_id=kiosk_id,
        cast_at=cast_at,
        codes=codes,
        arrived=arrived,
        kiosk_since=_kiosk_since(kiosk_id, cast_at) if channel == "kiosk" else None,
    )
    if isinstance(prepared, ApiError):
        if digest is not None:
            # A retry of a ballot accepted earlier (say, just before closing) replays it;
            # looked up only here, so the common path costs no extra query.
            existing = db.session.get(Ballot, ballot_id)
            if existing is not None:
                return _replay(existing, campaign, digest)
        raise prepared
    try:  # the SMS code is marked used in this ballot's transaction (verify: sms)
        verify.consume(campaign, channel, prepared.row["voter_key"], verification)
    except ApiError:
        if (existing := db.session.get(Ballot, ballot_id)) is not None:
            return _replay(existing, campaign, digest)  # a retry of a verified ballot
        raise
    if kiosk_id is None and channel == "web":
        mark_web_ballot(prepared.row, arrived)  # address hashes, web_burst / subnet_burst
    # Core inserts: the ballot path is the hot path, and the unit of work adds nothing here.
    if (
        autocommit
        and kiosk_id is not None
        and campaign.rules_locked_at is not None
        and not verify.required(campaign, channel)
        and db.session.get_bind().dialect.name == "postgresql"
    ):
        # One round trip: the ballot and its choices in one autocommit statement, durable
        # when it returns; a conflict inserts nothing and is settled below as a race is.
        statement, params, _ = _insert_counting_burst(
            prepared.row, kiosk_id, arrived, [codes[c] for c in prepared.chosen]
        )
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            stored = conn.execute(statement, params).first()
        if stored is None:
            return _settle_conflict(campaign, ballot_id, digest, prepared.slot)
        prepared.row["flagged"] = stored[0]
        row = prepared.row
        record = BallotRecord(ballot_id, row["receipt"], arrived, row["channel"], row["flagged"])
        return CastResult(record, prepared.chosen, replayed=False)
    try:
        with db.session.begin_nested() if isolated else nullcontext():
            if campaign.rules_locked_at is None:
                lock_rules(campaign)
                db.session.flush()
            choice_rows = _choice_rows(campaign, prepared, codes)
            if kiosk_id is not None:  # the burst count and the insert in one statement
                statement, params, with_choices = _insert_counting_burst(
                    prepared.row, kiosk_id, arrived, [c["entry_id"] for c in choice_rows]
                )
                stored = db.session.execute(statement, params).first()
                if stored is None:  # ON CONFLICT DO NOTHING: as an IntegrityError
                    raise _Conflict
                prepared.row["flagged"] = stored[0]
            else:
                db.session.execute(insert(_BALLOTS), prepared.row)
                with_choices = False
            if not with_choices:
                db.session.execute(insert(_CHOICES), choice_rows)
    except (IntegrityError, _Conflict):
        # The constraints settled a race: the same ballot_id, or the same voter and slot.
        if not isolated:
            db.session.rollback()
        return _settle_conflict(campaign, ballot_id, digest, prepared.slot)
    row = prepared.row
    record = BallotRecord(ballot_id, row["receipt"], arrived, row["channel"], row["flagged"])
    return CastResult(record, prepared.chosen, replayed=False)


class _Conflict(Exception):
    """The kiosk insert met a unique constraint (ON CONFLICT DO NOTHING inserted nothing)."""


def _settle_conflict(campaign: Campaign, ballot_id: str, digest: str | None, slot: str):
    """After a refused insert: the same ballot_id is a replay (or ballot_id_reused), else
    the voter has voted in this slot."""
    db.session.expire_all()
    existing = db.session.get(Ballot, ballot_id)
    if existing is not None:
        return _replay(existing, campaign, digest)
    raise _already_voted(campaign, slot) from None


def cast_batch(
    campaign: Campaign, items: list[dict | ApiError], kiosk_id: int
) -> list[CastResult | ApiError]:
    with preloaded(campaign, items):  # a roll campaign: the batch's roll rows at once
        return _cast_batch(campaign, items, kiosk_id)


def _cast_batch(
    campaign: Campaign, items: list[dict | ApiError], kiosk_id: int
) -> list[CastResult | ApiError]:
    """A kiosk's offline batch, set-based: one lookup, one multi-row insert per table.

    Same outcome as casting the ballots one by one in order (replays, refusals, one
    ballot per voter, burst flags), but a few statements for the whole batch. Only
    ballots that hit a uniqueness conflict take the one-by-one path (in a savepoint).
    ``items`` are loaded ballots (dicts) or the validation error of an item.
    """
    arrived = now()
    if verify.required(campaign, "kiosk"):  # verify_kiosk: no code can be checked offline
        items = [item if isinstance(item, ApiError) else verify.offline_refusal() for item in items]
    codes = getattr(campaign, "codes", None)  # a locked campaign's cached codes
    if codes is None:
        codes = entry_ids(campaign)
    kiosk_since = _kiosk_registered(kiosk_id)
    outcome: list[CastResult | ApiError | None] = [None] * len(items)
    prepared: dict[int, tuple[str | None, _Prepared | ApiError]] = {}
    loaded: dict[int, dict] = {}  # the items that are ballots, not errors
    ready: dict[int, _Prepared] = {}  # the ballots prepared without a refusal
    for n, item in enumerate(items):
        if isinstance(item, ApiError):
            outcome[n] = item
            continue
        item["ballot_id"] = str(uuid.UUID(str(item["ballot_id"])))
        loaded[n] = item
        prepared[n] = _prepare(
            campaign,
            ballot_id=item["ballot_id"],
            voter_id=item["voter_id"],
            choices=item["choices"],
            channel="kiosk",
            kiosk_id=kiosk_id,
            cast_at=item.get("cast_at"),
            codes=codes,
            arrived=arrived,
            kiosk_since=kiosk_since,
        )
    ids = {loaded[n]["ballot_id"] for n in prepared}
    existing = _stored(ids)
    new: list[int] = []
    seen: dict[str, int] = {}
    for n, (digest, prep) in prepared.items():
        ballot_id = loaded[n]["ballot_id"]
        if ballot_id in existing and digest is not None:
            outcome[n] = _replay_or_error(existing[ballot_id], campaign, digest)
        elif isinstance(prep, ApiError):
            outcome[n] = prep
        elif ballot_id in seen:
            ready[n] = prep
            new.append(n)  # resolved after the insert, against its twin
        else:
            ready[n] = prep
            seen[ballot_id] = n
            new.append(n)
    first = [n for n in new if seen.get(loaded[n]["ballot_id"]) == n]
    if first:
        recent = _recent_count(kiosk_id, arrived)
        limit = current_app.config["BURST_MAX_BALLOTS"]
        for k, n in enumerate(first):
            if recent + k + 1 > limit:
                add_flag(ready[n].row, "burst")
        if campaign.rules_locked_at is None:
            lock_rules(campaign)
            db.session.flush()
        rows = [ready[n].row for n in first]
        if _stages(db.session):  # PostgreSQL: COPY into a staging table, one settle
            chosen_ids = [[codes[c] for c in ready[n].chosen] for n in first]
            inserted = ballot_stage.stage_and_insert(db.session, rows, chosen_ids)
        else:
            inserted = _insert_new(db.session, rows)
            choice_rows = [
                c
                for n in first
                if loaded[n]["ballot_id"] in inserted
                for c in _choice_rows(campaign, ready[n], codes)
            ]
            if choice_rows:
                db.session.execute(insert(BallotChoice), choice_rows)
    else:
        inserted = set()
    for n in new:
        prep = ready[n]
        if seen[loaded[n]["ballot_id"]] == n and loaded[n]["ballot_id"] in inserted:
            row = prep.row
            record = BallotRecord(row["id"], row["receipt"], arrived, "kiosk", row["flagged"])
            outcome[n] = CastResult(record, prep.chosen, replayed=False)
            continue
        # A conflict (same voter, same id twice, a concurrent upload): the one-by-one
        # path settles it exactly as for a single ballot.
        try:
            outcome[n] = _cast_ballot(
                campaign,
                ballot_id=loaded[n]["ballot_id"],
                voter_id=loaded[n]["voter_id"],
                choices=loaded[n]["choices"],
                channel="kiosk",
                kiosk_id=kiosk_id,
                cast_at=loaded[n].get("cast_at"),
                codes=codes,
            )
        except ApiError as exc:
            outcome[n] = exc
    results: list[CastResult | ApiError] = []
    for result in outcome:
        assert result is not None  # every item has its outcome by now
        if isinstance(result, ApiError):
            BALLOTS.labels(result.code).inc()
        else:
            BALLOTS.labels("replayed" if result.replayed else "accepted").inc()
        results.append(result)
    return results


def _stored(ids: set[str]) -> dict[str, typing.Any]:
    """The stored ballots among ``ids`` (what _replay reads of them), by id. On
    PostgreSQL one array parameter instead of a placeholder per id."""
    if not ids:
        return {}
    c = _BALLOTS.c
    columns = (c.id, c.campaign_id, c.content_digest, c.receipt, c.accepted_at, c.channel)
    if db.session.get_bind().dialect.name == "postgresql":
        match = c.id == any_(bindparam("ids", list(ids), type_=ARRAY(c.id.type)))
    else:
        match = c.id.in_(ids)
    rows = db.session.execute(select(*columns, c.flagged).where(match))
    return {row.id: row for row in rows}


def _replay_or_error(existing: Ballot, campaign: Campaign, digest: str) -> CastResult | ApiError:
    try:
        return _replay(existing, campaign, digest)
    except ApiError as exc:
        return exc


def _stages(session) -> bool:
    """Whether a batch goes through the staging table (service/infra/ballot_stage.py):
    PostgreSQL through psycopg."""
    dialect = session.get_bind().dialect
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def _kiosk_registered(kiosk_id: int) -> datetime | None:
    """When the kiosk was registered (it never changes), from the per-process cache."""
    key = ("kiosk_registered", kiosk_id)
    found = hotcache.cache().lookup(key)
    if found is None:
        found = db.session.scalar(select(Kiosk.created_at).where(Kiosk.id == kiosk_id))
        if found is not None:
            hotcache.cache().put(key, found)
    return found


def _insert_new(session, rows: list[dict]) -> set[str]:
    """Multi-row insert that skips conflicting rows; returns the ids it inserted."""
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = typing.cast(Table, Ballot.__table__)
    statement = dialect_insert(table).on_conflict_do_nothing().returning(table.c.id)
    return set(session.execute(statement, rows).scalars()) if rows else set()


def _recent_count(kiosk_id: int, at: datetime) -> int:
    """Ballots of this kiosk in the burst window, counted up to the threshold only (so
    the check costs the same however busy the kiosk)."""
    cfg = current_app.config
    window = timedelta(seconds=cfg["BURST_WINDOW_SECONDS"])
    recent_rows = (
        select(Ballot.id)
        .where(
            Ballot.kiosk_id == kiosk_id,
            Ballot.accepted_at > at - window,
            Ballot.accepted_at <= at,
        )
        .limit(cfg["BURST_MAX_BALLOTS"])
        .subquery()
    )
    return db.session.execute(select(func.count()).select_from(recent_rows)).scalar_one()


_BALLOTS = typing.cast(Table, Ballot.__table__)
_CHOICES = typing.cast(Table, BallotChoice.__table__)


def _insert_counting_burst(row: dict, kiosk_id: int, at: datetime, entry_ids: list[int]):
    """INSERT ... SELECT of a kiosk ballot's row, flagged ``burst`` when it takes its
    kiosk over BURST_MAX_BALLOTS in the window (the count sees the ballots before this
    one, up to the threshold only, as _recent_count). One round trip instead of a count
    and an insert; RETURNING gives the stored flags. On PostgreSQL the choice rows go in
    the same statement (a data-modifying CTE). Returns (statement, parameters, whether
    the choices are inserted too): the statement is built once per dialect and column
    set, only the values change."""
    cfg = current_app.config
    limit = cfg["BURST_MAX_BALLOTS"]
    flag = row["flagged"]
    names = tuple(name for name in row if name != "flagged")
    dialect = db.session.get_bind().dialect.name
    with_choices = dialect == "postgresql" and bool(entry_ids)
    statement = _BURST_INSERTS.get((dialect, names, with_choices))
    if statement is None:
        statement = _burst_insert(dialect, names, with_choices)
        _BURST_INSERTS[(dialect, names, with_choices)] = statement
    params = {f"p_{name}": row[name] for name in names}
    params.update(
        p_kiosk=kiosk_id,
        p_since=at - timedelta(seconds=cfg["BURST_WINDOW_SECONDS"]),
        p_until=at,
        p_limit=limit,
        p_flag=flag,
        p_flag_burst=f"{flag},burst" if flag else "burst",
        p_entry_ids=entry_ids,
    )
    return statement, params, with_choices


_BURST_INSERTS: dict[tuple, object] = {}


def _burst_insert(dialect: str, names: tuple[str, ...], with_choices: bool):
    c = _BALLOTS.c

    def param(name: str, type_):
        value = bindparam(f"p_{name}", type_=type_)
        # PostgreSQL types the parameters of a SELECT list from the values alone (a NULL
        # is text): cast them to the column's type. SQLite needs no cast (and a CAST to
        # DATETIME there would turn a timestamp into a number).
        return cast(value, type_) if dialect == "postgresql" else value

    recent = (
        select(c.id)
        .where(
            c.kiosk_id == bindparam("p_kiosk", type_=c.kiosk_id.type),
            c.accepted_at > bindparam("p_since", type_=c.accepted_at.type),
            c.accepted_at <= bindparam("p_until", type_=c.accepted_at.type),
        )
        .limit(bindparam("p_limit", type_=Integer))
        .subquery()
    )
    count = select(func.count()).select_from(recent).scalar_subquery()
    over = count + 1 > bindparam("p_limit", type_=Integer)
    flagged = case((over, param("flag_burst", c.flagged.type)), else_=param("flag", c.flagged.type))
    values = [param(name, c[name].type) for name in names]
    chosen_values = select(*values, flagged)
    ballot: typing.Any
    if dialect == "postgresql":  # a duplicate inserts nothing (and logs no error)
        ballot = (
            postgresql.insert(_BALLOTS)
            .from_select([*names, "flagged"], chosen_values)
            .on_conflict_do_nothing()
        )
    else:
        ballot = insert(_BALLOTS).from_select([*names, "flagged"], chosen_values)
    if not with_choices:
        return ballot.returning(c.flagged)
    # WITH new AS (INSERT INTO ballots … RETURNING id, campaign_id, flagged),
    #      chosen AS (INSERT INTO ballot_choices SELECT new.id, unnest(:ids), … FROM new)
    # SELECT flagged FROM new: nothing of it is written when any part fails.
    new = ballot.returning(c.id, c.campaign_id, c.flagged).cte("new_ballot")
    entry = (
        func.unnest(bindparam("p_entry_ids", type_=ARRAY(Integer)))
        .table_valued("entry_id")
        .render_derived(name="entry")
    )
    chosen = (
        insert(_CHOICES)
        .from_select(
            ["ballot_id", "entry_id", "campaign_id"],
            select(new.c.id, entry.c.entry_id, new.c.campaign_id).select_from(
                new.join(entry, true())
            ),
        )
        .returning(_CHOICES.c.ballot_id)
        .cte("chosen")
    )
    return select(new.c.flagged).add_cte(chosen)


def receipt_lookup(receipt: str) -> dict:
    """What a voter may learn from a receipt code: the campaign and the ballot's status.

    ``counted`` (with an inclusion proof) once a publication includes it; ``excluded``
    with the reason while an exclusion is active; otherwise ``recorded``.
    """
    code = normalise_receipt(receipt)
    ballot = db.session.scalar(select(Ballot).where(Ballot.receipt == code))
    if ballot is None:
        raise ApiError(404, "not_found", "回执码不存在 / Unknown receipt")
    status = receipt_status(ballot)
    if status["status"] == "recorded":
        # Excluded since the last publication (or before the first): say so now.
        reason = db.session.scalar(
            select(Exclusion.reason).where(
                Exclusion.ballot_id == ballot.id, Exclusion.active.is_(True)
            )
        )
        if reason is not None:
            status = {**status, "status": "excluded", "reason": reason}
    return status
