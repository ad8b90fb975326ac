"""The electoral roll (选民名册): who may vote in a campaign with ``eligibility: roll``.

An identifier on the roll is stored only as its keyed hash, the same ``voter_key`` a
ballot carries (HMAC of the normalised identifier), with its area and grid; the uploaded
file itself is never stored. A ballot of a roll campaign costs one indexed lookup (the
primary key); a campaign with ``eligibility: open`` costs none.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from flask import current_app, g
from sqlalchemy import CursorResult, and_, delete, exists, func, insert, select
from sqlalchemy.exc import IntegrityError

from schemas.common import _CONTROL
from schemas.rules import CampaignRules

from ..clock import now
from ..errors import ApiError, validation_error
from ..extensions import db
from ..models import Ballot, Campaign, Entry, Exclusion, RollVoter
from .audit import audit
from .voters import InvalidVoterId, voter_key

COLUMNS = ("voter_id", "area", "grid")
MAX_TEXT = 100
_CHUNK = 500  # identifiers per IN (...) list


# --- reading the file ------------------------------------------------------------------


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped) first, then GB18030, the superset of GBK that Chinese
    spreadsheet programs save; anything else is refused."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ApiError(
        422,
        "invalid_csv",
        "文件编码须为 UTF-8、GBK 或 GB18030 / the file must be UTF-8, GBK or GB18030",
        {"lines": []},
    )


def parse_csv(text: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-blank data line; header errors are 422."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise validation_error({"_file": ["空文件 / empty file"]}, "invalid_csv") from None
    except csv.Error as exc:
        raise _csv_error([{"line": 1, "errors": {"_row": [str(exc)]}}]) from None
    unknown = [h for h in header if h not in COLUMNS]
    if "voter_id" not in header or unknown or len(set(header)) != len(header):
        raise ApiError(
            422,
            "invalid_csv",
            "表头须含 voter_id，可选 area、grid / header must be voter_id with optional area, grid",
            {"lines": [{"line": 1, "errors": {"header": [",".join(header)]}}]},
        )
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[dict] = []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                errors.append(
                    {
                        "line": reader.line_num,
                        "errors": {
                            "_row": [
                                f"需要 {len(header)} 列，实际 {len(row)} 列 / expected "
                                f"{len(header)} columns, got {len(row)}"
                            ]
                        },
                    }
                )
                continue
            rows.append((reader.line_num, dict(zip(header, row, strict=True))))
    except csv.Error as exc:
        errors.append({"line": reader.line_num, "errors": {"_row": [str(exc)]}})
    if errors:
        raise _csv_error(errors)
    return rows


def _csv_error(lines: list[dict]) -> ApiError:
    return ApiError(
        422,
        "invalid_csv",
        "文件有错误，名册未作任何更改 / the file has errors; the roll was not changed",
        {"lines": lines},
    )


# --- changing the roll -------------------------------------------------------------------


def _kind(campaign: Campaign) -> str:
    return campaign.rules.voting.voter_id


def _key(campaign: Campaign, raw: object) -> str:
    return voter_key(current_app.config["VOTER_PEPPER"], _kind(campaign), raw)


def _optional_text(value: object, name: str, errors: dict) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors[name] = ["须为文本 / must be text"]
        return None
    value = " ".join(value.split())
    if _CONTROL.search(value):
        errors[name] = ["不允许控制字符 / control characters are not allowed"]
        return None
    if len(value) > MAX_TEXT:
        errors[name] = [f"最多 {MAX_TEXT} 个字符 / at most {MAX_TEXT} characters"]
    return value or None


def _existing(campaign: Campaign, keys: list[str]) -> dict[str, tuple[str | None, str | None]]:
    found: dict[str, tuple[str | None, str | None]] = {}
    for i in range(0, len(keys), _CHUNK):
        part = keys[i : i + _CHUNK]
        for key, area, grid in db.session.execute(
            select(RollVoter.voter_key, RollVoter.area, RollVoter.grid).where(
                RollVoter.campaign_id == campaign.id, RollVoter.voter_key.in_(part)
            )
        ):
            found[key] = (area, grid)
    return found


def roll_size(campaign: Campaign) -> int:
    return db.session.execute(
        select(func.count()).select_from(RollVoter).where(RollVoter.campaign_id == campaign.id)
    ).scalar_one()


def add_voters(
    campaign: Campaign, rows: list[tuple[int, dict[str, Any]]], actor: str, *, source: str
) -> dict[str, int]:
    """Add the voters of ``rows`` ((line or item number, {voter_id, area, grid})), all or
    nothing. A voter already on the roll with the same area and grid is left as it is
    (counted in ``unchanged``, so an upload can be resent); with another area or grid it
    is an error, as is an identifier twice in one upload (both lines are named).

    ``source`` is ``csv`` (errors: 422 invalid_csv with ``details.lines``) or ``json``
    (errors: 422 validation_error with ``details.fields.voters``, by item index).
    """
    if not rows:
        if source == "csv":
            raise validation_error({"_file": ["没有数据行 / no data lines"]}, "invalid_csv")
        raise validation_error({"voters": ["至少一位选民 / at least one voter"]})
    errors: dict[int, dict] = {}
    keyed: dict[str, tuple[int, str | None, str | None]] = {}
    for number, raw in rows:
        problems: dict[str, list[str]] = {}
        area = _optional_text(raw.get("area"), "area", problems)
        grid = _optional_text(raw.get("grid"), "grid", problems)
        try:
            key = _key(campaign, raw.get("voter_id"))
        except InvalidVoterId as exc:
            problems["voter_id"] = [str(exc)]
            key = None
        if key is not None and key in keyed:
            first = keyed[key][0]
            label = "行" if source == "csv" else "项"
            problems["voter_id"] = [
                f"与第 {first} {label}重复 / duplicate of {'line' if source == 'csv' else 'item'} "
                f"{first}"
            ]
            errors.setdefault(first, {}).setdefault("voter_id", []).append(
                f"与第 {number} {label}重复 / duplicated by "
                f"{'line' if source == 'csv' else 'item'} {number}"
            )
        elif key is not None and not problems:
            keyed[key] = (number, area, grid)
        if problems:
            errors.setdefault(number, {}).update(problems)
    existing = _existing(campaign, list(keyed))
    unchanged = 0
    for key, (number, area, grid) in keyed.items():
        if key in existing:
            if existing[key] != (area, grid):
                errors.setdefault(number, {})["voter_id"] = [
                    "已在名册中，但区域或网格不同 / already on the roll with another area or grid"
                ]
            else:
                unchanged += 1
    if errors:
        ordered = sorted(errors.items())
        if source == "csv":
            raise _csv_error([{"line": n, "errors": e} for n, e in ordered])
        raise validation_error({"voters": {str(n): e for n, e in ordered}})
    added_at = now()
    new: list[dict[str, Any]] = [
        {"campaign_id": campaign.id, "voter_key": k, "area": a, "grid": g, "added_at": added_at}
        for k, (_n, a, g) in keyed.items()
        if k not in existing
    ]
    try:
        with db.session.begin_nested():
            for i in range(0, len(new), _CHUNK):
                db.session.execute(insert(RollVoter), new[i : i + _CHUNK])
    except IntegrityError:
        raise ApiError(
            409,
            "roll_conflict",
            "另一次上传同时添加了相同的选民，请重新上传 / another upload added some of "
            "the same voters at the same time; send the file again",
        ) from None
    total = roll_size(campaign)
    per_area: dict[str, int] = defaultdict(int)
    for row in new:
        per_area[row["area"] or ""] += 1
    audit(
        "roll.add",
        actor,
        campaign.id,
        added=len(new),
        unchanged=unchanged,
        total=total,
        per_area=dict(sorted(per_area.items())),
        during_voting=_voting_opened(campaign),
    )
    return {"added": len(new), "unchanged": unchanged, "total": total}


def _voting_opened(campaign: Campaign) -> bool:
    opens = campaign.rules.voting.opens_at
    return opens is not None and now() >= opens


def roll_locked(campaign: Campaign) -> bool:
    """Removals are allowed only before voting opens and before any ballot exists."""
    return _voting_opened(campaign) or bool(
        db.session.scalar(select(exists().where(Ballot.campaign_id == campaign.id)))
    )


def _refuse_if_locked(campaign: Campaign) -> None:
    if roll_locked(campaign):
        raise ApiError(
            409,
            "roll_locked",
            "投票已开始，名册只能增加不能删除 / once voting has opened the roll can only grow",
        )


def remove_voters(campaign: Campaign, voter_ids: list[object], actor: str) -> dict[str, int]:
    """Remove the listed identifiers (before voting opens); unknown ones are counted."""
    _refuse_if_locked(campaign)
    keys, errors = [], {}
    for n, raw in enumerate(voter_ids):
        try:
            keys.append(_key(campaign, raw))
        except InvalidVoterId as exc:
            errors[str(n)] = [str(exc)]
    if errors:
        raise validation_error({"voter_ids": errors})
    keys = list(dict.fromkeys(keys))
    removed = 0
    for i in range(0, len(keys), _CHUNK):
        removed += cast(
            CursorResult,
            db.session.execute(
                delete(RollVoter).where(
                    RollVoter.campaign_id == campaign.id,
                    RollVoter.voter_key.in_(keys[i : i + _CHUNK]),
                )
            ),
        ).rowcount
    total = roll_size(campaign)
    audit("roll.remove", actor, campaign.id, removed=removed, total=total)
    return {"removed": removed, "not_on_roll": len(keys) - removed, "total": total}


def clear_roll(campaign: Campaign, actor: str) -> dict[str, int]:
    _refuse_if_locked(campaign)
    removed = cast(
        CursorResult,
        db.session.execute(delete(RollVoter).where(RollVoter.campaign_id == campaign.id)),
    ).rowcount
    audit("roll.clear", actor, campaign.id, removed=removed)
    return {"removed": removed, "not_on_roll": 0, "total": 0}


def check_kind_change(campaign: Campaign, old: dict, new: dict) -> None:
    """The roll holds hashes of one identifier kind: changing the kind would silently
    empty it, so it is refused while the roll has voters."""
    before, after = CampaignRules.load(voting=old).voting, CampaignRules.load(voting=new).voting
    if before.voter_id != after.voter_id and roll_size(campaign):
        raise ApiError(
            409,
            "roll_not_empty",
            "名册非空时不能更改标识类型 / clear the roll before changing voting.voter_id",
            {"fields": ["voting.voter_id"]},
        )


def summary(campaign: Campaign) -> dict[str, Any]:
    """Counts per area (and grid), never identifiers."""
    rows = db.session.execute(
        select(RollVoter.area, RollVoter.grid, func.count())
        .where(RollVoter.campaign_id == campaign.id)
        .group_by(RollVoter.area, RollVoter.grid)
    ).all()
    areas: dict[str | None, dict] = {}
    for area, grid, count in rows:
        item = areas.setdefault(area, {"area": area, "voters": 0, "grids": []})
        item["voters"] += count
        if grid is not None:
            item["grids"].append({"grid": grid, "voters": count})
    voting = campaign.rules.voting
    total = sum(a["voters"] for a in areas.values())
    return {
        "eligibility": voting.eligibility,
        "area_scope": voting.area_scope,
        "total": total,
        "locked": roll_locked(campaign),
        "areas": [
            {**a, "grids": sorted(a["grids"], key=lambda g: g["grid"])}
            for a in sorted(areas.values(), key=_area_order)
        ],
    }


def _area_order(item: dict) -> tuple[bool, str]:
    return (item["area"] is None, item["area"] or "")


# --- casting -------------------------------------------------------------------------------


def check_voter(campaign: Campaign, key: str, chosen: list[str]) -> None:
    """Raise 403 ``not_on_roll`` / 422 ``outside_area`` for a roll campaign; nothing to do
    (and no query) for an open one. One indexed lookup: the voter's roll row, joined with
    the chosen entries' areas when ``area_scope`` is on (none inside ``preloaded``).

    Area scope: an entry is within a voter's reach when the voter's roll row and the entry
    both have a grid and the grids are equal; otherwise when the areas are equal. An entry
    without an area is open to every voter on the roll.
    """
    voting = campaign.rules.voting
    if not voting.on_roll:
        return
    batch = g.get("roll_preloaded")
    if batch is not None and batch[0] == campaign.id and key in batch[1]:
        _, rows, entries = batch
        if rows[key] is None:
            raise _not_on_roll()
        if voting.area_scope:
            _check_area(rows[key], [(code, *entries[code]) for code in chosen])
        return
    on_roll = and_(RollVoter.campaign_id == campaign.id, RollVoter.voter_key == key)
    if not voting.area_scope:
        if db.session.scalar(select(exists().where(on_roll))):
            return
        raise _not_on_roll()
    rows = db.session.execute(
        select(RollVoter.area, RollVoter.grid, Entry.code, Entry.area, Entry.grid)
        .select_from(RollVoter)
        .join(Entry, and_(Entry.campaign_id == RollVoter.campaign_id, Entry.code.in_(chosen)))
        .where(on_roll)
    ).all()
    if not rows:  # the choices were checked already: no row means no roll row
        raise _not_on_roll()
    _check_area((rows[0][0], rows[0][1]), [tuple(r[2:]) for r in rows])


def _check_area(voter: tuple, entries: list[tuple]) -> None:
    """``voter`` is (area, grid) on the roll; ``entries`` are (code, area, grid)."""
    voter_area, voter_grid = voter
    outside = sorted(
        code
        for code, area, grid in entries
        if area is not None
        and not (grid == voter_grid if (grid and voter_grid) else area == voter_area)
    )
    if outside:
        raise ApiError(
            422,
            "outside_area",
            "只能选择本人所在居民区或网格的项目 / you may choose only entries of your own area",
            {"codes": outside},
        )


@contextmanager
def preloaded(campaign: Campaign, items: Iterable[object]) -> Iterator[None]:
    """For a kiosk batch: the roll rows of all its voters in one query per 500, so each
    ballot's check is a dictionary lookup instead of a query. Only the identifiers of
    this batch, only while the batch is being cast."""
    voting = campaign.rules.voting
    if not voting.on_roll:
        yield
        return
    keys = set()
    for item in items:
        try:
            keys.add(_key(campaign, item.get("voter_id") if isinstance(item, dict) else None))
        except InvalidVoterId:
            continue
    rows: dict[str, tuple | None] = dict.fromkeys(keys)
    rows.update(_existing(campaign, list(keys)))
    entries = {}
    if voting.area_scope:
        entries = {
            code: (area, grid)
            for code, area, grid in db.session.execute(
                select(Entry.code, Entry.area, Entry.grid).where(Entry.campaign_id == campaign.id)
            )
        }
    previous = g.get("roll_preloaded")
    g.roll_preloaded = (campaign.id, rows, entries)
    try:
        yield
    finally:
        g.roll_preloaded = previous


def _not_on_roll() -> ApiError:
    return ApiError(
        403,
        "not_on_roll",
        "不在本次评选的选民名册中 / not on this campaign's electoral roll",
    )


# --- turnout -------------------------------------------------------------------------------


def _rate(voters: int, size: int) -> float | None:
    return round(voters / size, 4) if size else None


def turnout(campaign: Campaign) -> dict[str, Any] | None:
    """Voters on the roll who cast a counted ballot, overall and per area; None when the
    campaign does not vote by roll. ``rate`` = voters / roll size (with ``limit: daily``
    ``ballots`` can exceed the voters)."""
    if not campaign.rules.voting.on_roll:
        return None
    sizes = dict(
        db.session.execute(
            select(RollVoter.area, func.count())
            .where(RollVoter.campaign_id == campaign.id)
            .group_by(RollVoter.area)
        ).all()
    )
    excluded = (
        select(Exclusion.ballot_id)
        .where(Exclusion.ballot_id == Ballot.id, Exclusion.active.is_(True))
        .exists()
    )
    voted = {
        area: (voters, ballots)
        for area, voters, ballots in db.session.execute(
            select(RollVoter.area, func.count(Ballot.voter_key.distinct()), func.count(Ballot.id))
            .select_from(RollVoter)
            .join(
                Ballot,
                and_(
                    Ballot.campaign_id == RollVoter.campaign_id,
                    Ballot.voter_key == RollVoter.voter_key,
                ),
            )
            .where(RollVoter.campaign_id == campaign.id, ~excluded)
            .group_by(RollVoter.area)
        )
    }
    per_area: list[dict[str, Any]] = []
    for area in sorted(sizes, key=lambda a: (a is None, a or "")):
        voters, ballots = voted.get(area, (0, 0))
        per_area.append(
            {
                "area": area,
                "roll_size": sizes[area],
                "voters": voters,
                "ballots": ballots,
                "rate": _rate(voters, sizes[area]),
            }
        )
    size = sum(sizes.values())
    voters = sum(a["voters"] for a in per_area)
    return {
        "roll_size": size,
        "voters": voters,
        "ballots": sum(a["ballots"] for a in per_area),
        "rate": _rate(voters, size),
        "per_area": per_area,
    }
