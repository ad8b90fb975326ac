"""pabulib interchange: `votes pb import FILE.pb` and `votes pb export SLUG`.

Offices exchange participatory-budgeting data with the research tools in the pabulib
format (https://pabulib.org/format). An import creates a campaign with its projects and
casts every approval ballot through `cast_ballot` (the voter id becomes a member code,
hashed like any other); an export writes a valid `.pb` file of the campaign's counted
ballots and, once published, which projects were selected.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import ValidationError
from sqlalchemy import select

from engine import pabulib
from engine.types import RankingError
from schemas.campaign import CampaignSchema

from ..clock import frozen, now
from ..errors import ApiError
from ..extensions import db
from ..models import Ballot, BallotChoice, Campaign, Entry, Exclusion
from .ballots import cast_ballot, entry_ids
from .campaigns import create_campaign, list_entries
from .publications import latest_publication

RULE_FROM_PB = {
    "greedy": "greedy_budget",
    "greedy-no-skip": "greedy_budget_no_skip",
    "equalshares": "equal_shares",
    "equalshares/add1": "equal_shares",
}
RULE_TO_PB = {
    "greedy_budget": "greedy",
    "greedy_budget_no_skip": "greedy-no-skip",
    "equal_shares": "equalshares/add1",
}
# The time zone of an imported campaign when the import does not name one: the country's
# (pabulib's dates are local dates), else the service's default.
COUNTRY_TIMEZONES = {
    "Poland": "Europe/Warsaw",
    "France": "Europe/Paris",
    "Netherlands": "Europe/Amsterdam",
    "Germany": "Europe/Berlin",
    "Switzerland": "Europe/Zurich",
    "Belgium": "Europe/Brussels",
    "Spain": "Europe/Madrid",
    "Italy": "Europe/Rome",
    "Portugal": "Europe/Lisbon",
    "Czechia": "Europe/Prague",
    "China": "Asia/Shanghai",
}
DEFAULT_TIMEZONE = "Asia/Shanghai"
PB_DATE = "%d.%m.%Y"
_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


def _slug(meta: dict[str, str]) -> str:
    parts = [meta.get(k, "") for k in ("country", "unit", "subunit", "instance")]
    slug = _SLUG_CHARS.sub("-", "-".join(p for p in parts if p).lower()).strip("-")
    return ("pb-" + slug)[:64].rstrip("-") or "pb-import"


def _error(exc: RankingError) -> ApiError:
    return ApiError(422, exc.code, exc.message, exc.details)


def _pb_date(text: str | None) -> date | None:
    """A META date: pabulib writes ``DD.MM.YYYY``; ISO ``YYYY-MM-DD`` is accepted too."""
    for fmt in (PB_DATE, "%Y-%m-%d"):
        try:
            return datetime.strptime((text or "").strip(), fmt).date()
        except ValueError:
            continue
    return None


def _window(meta: dict[str, str], tz: str, now: datetime) -> tuple[datetime, datetime]:
    """The voting window of an imported campaign.

    With valid ``date_begin``/``date_end`` that lie in the past: from 00:00 on
    date_begin to 24:00 on date_end, campaign-local time (the dates are whole local
    days). Otherwise (no dates, unreadable, reversed or not yet over) the ballots are
    history placed in the day before the import, as before.
    """
    begin, end = _pb_date(meta.get("date_begin")), _pb_date(meta.get("date_end"))
    if begin is not None and end is not None and begin <= end:
        zone = ZoneInfo(tz)
        opens = datetime.combine(begin, time(0, 0), zone)
        closes = datetime.combine(end + timedelta(days=1), time(0, 0), zone)
        if closes <= now:
            return opens, closes
    return now - timedelta(days=1), now


def _int_meta(meta: dict[str, str], key: str) -> int | None:
    try:
        value = int(float(meta.get(key, "").strip()))
    except ValueError:
        return None
    return value if value >= 1 else None


def import_pb(
    text: str, slug: str | None = None, actor: str = "cli", timezone: str | None = None
) -> tuple[Campaign, int]:
    """Create a campaign from a .pb file; returns (campaign, ballots cast). All or nothing.

    The file's META is kept with the campaign (``pb_meta``) for export; its dates set the
    voting window and its ``min_length``/``max_length`` the choice limits, where the
    ballots allow them.
    """
    try:
        inst = pabulib.parse(text)
        if inst.vote_type not in pabulib.APPROVAL_VOTE_TYPES:
            raise RankingError(
                "unsupported_vote_type",
                f"只支持认可投票 / only approval ballots can be imported, this "
                f"file has {inst.vote_type!r}",
                {"vote_type": inst.vote_type},
            )
        costs, budget, ballots = inst.costs(), inst.budget, inst.ballot_lists()
    except RankingError as exc:
        raise _error(exc) from exc
    rule = RULE_FROM_PB.get((inst.rule or "greedy").lower())
    if rule is None:
        raise ApiError(
            422,
            "unsupported_rule",
            f"不支持的规则 / unsupported rule {inst.rule!r}",
            {"rule": inst.rule},
        )
    bad = [pid for pid in inst.project_ids if not _CODE.match(pid)]
    if bad:
        raise ApiError(
            422,
            "invalid_project_id",
            "项目编号不可用作参评编号 / project ids cannot be used as entry codes",
            {"project_ids": bad[:20]},
        )
    lengths = [len(b) for b in ballots if b]
    longest, shortest = max(lengths, default=1), min(lengths, default=1)
    # The file's limits when its ballots keep them; otherwise what the ballots need.
    low, high = _int_meta(inst.meta, "min_length"), _int_meta(inst.meta, "max_length")
    min_choices = low if low is not None and low <= shortest else 1
    max_choices = high if high is not None and high >= max(longest, min_choices) else longest
    tz = timezone or COUNTRY_TIMEZONES.get(inst.meta.get("country", "").strip(), DEFAULT_TIMEZONE)
    opens, closes = _window(inst.meta, tz, now().astimezone(UTC).replace(microsecond=0))
    doc = {
        "slug": slug or _slug(inst.meta),
        "timezone": tz,
        "title": (inst.meta.get("description") or inst.meta.get("unit") or "pabulib")[:300],
        "description": f"pabulib: {inst.meta.get('country', '')} {inst.meta.get('unit', '')} "
        f"{inst.meta.get('instance', '')}".strip(),
        "voting": {
            "opens_at": opens.isoformat(),
            "closes_at": closes.isoformat(),
            "min_choices": min_choices,
            "max_choices": max(1, max_choices),
            "limit": "once",
            "voter_id": "member_code",
            "channels": ["web"],
        },
        "review": {"criteria": []},
        "ranking": {
            "public_weight": 1,
            "expert_weight": 0,
            "vote_score": "max",
            "tie_break": ["votes", "lot"],
        },
        "selection": {
            "rule": rule,
            "budget": budget,
            "min_votes": int(float(inst.meta.get("min_project_score_threshold") or 0)),
        },
    }
    try:
        data = CampaignSchema().load(doc)
    except ValidationError as exc:  # e.g. an unknown --timezone
        raise ApiError(
            422, "validation_error", "导入的活动无效 / invalid campaign", {"fields": exc.messages}
        ) from exc
    with frozen(opens - timedelta(hours=1)):
        campaign = create_campaign(data, actor)
        campaign.pb_meta = [[key, value] for key, value in inst.meta.items()]
        db.session.add_all(
            Entry(
                campaign_id=campaign.id,
                code=p["project_id"],
                title=(p.get("name") or p["project_id"])[:300],
                summary=(p.get("description") or None),
                category=p.get("category") or None,
                area=(p.get("district") or p.get("subunit") or None),
                cost=float(costs[i]),
            )
            for i, p in enumerate(inst.projects)
        )
        db.session.flush()
    codes = entry_ids(campaign)
    ids = inst.project_ids
    cast = 0
    span = (closes - opens) / max(1, len(ballots))
    for n, (vote, ballot) in enumerate(zip(inst.votes, ballots, strict=True)):
        if not ballot:
            continue  # an empty approval ballot approves nothing
        with frozen(opens + span * n):
            try:
                cast_ballot(
                    campaign,
                    ballot_id=uuid.uuid5(uuid.NAMESPACE_URL, f"pb:{campaign.slug}:{n}"),
                    voter_id=vote.get("voter_id") or f"voter-{n}",
                    choices=[ids[i] for i in ballot],
                    channel="web",
                    codes=codes,
                )
            except ApiError as exc:
                raise ApiError(
                    422,
                    "invalid_ballot",
                    f"第 {n + 1} 张选票无效 / ballot {n + 1} "
                    f"({vote.get('voter_id')}) is invalid: {exc.message}",
                    {"ballot": n + 1, "code": exc.code},
                ) from exc
        cast += 1
    return campaign, cast


def export_pb(campaign: Campaign) -> str:
    """The campaign as a .pb file: projects, counted approval ballots, selection if published."""
    entries = list_entries(campaign)
    excluded = select(Exclusion.ballot_id).where(
        Exclusion.campaign_id == campaign.id, Exclusion.active.is_(True)
    )
    rows = db.session.execute(
        select(Ballot.receipt, Entry.code)
        .join(BallotChoice, BallotChoice.ballot_id == Ballot.id)
        .join(Entry, Entry.id == BallotChoice.entry_id)
        .where(Ballot.campaign_id == campaign.id, Ballot.id.not_in(excluded))
        .order_by(Ballot.accepted_at, Ballot.id, Entry.code)
    )
    ballots: dict[str, list[str]] = {}
    for receipt, code in rows:
        ballots.setdefault(receipt, []).append(code)
    support = {e.code: 0 for e in entries}
    for codes in ballots.values():
        for code in codes:
            support[code] += 1
    publication = latest_publication(campaign.id)
    selected = (
        {r["code"] for r in publication.document["rows"] if r["selected"]} if publication else None
    )
    selection, voting = campaign.rules.selection, campaign.rules.voting
    derived: dict[str, Any] = {
        "num_projects": len(entries),
        "num_votes": len(ballots),
        "budget": selection.budget or sum(e.cost or 0 for e in entries),
        "vote_type": "approval",
        "rule": RULE_TO_PB.get(selection.rule, "greedy"),
        "min_length": voting.min_choices,
        "max_length": voting.max_choices,
    }
    if selection.min_votes:
        derived["min_project_score_threshold"] = selection.min_votes
    stored = {key: value for key, value in (campaign.pb_meta or [])}
    if campaign.pb_meta is None:
        # A campaign made here: its title and its voting window as local dates.
        zone = ZoneInfo(campaign.timezone)
        meta: dict[str, str] = {"description": campaign.title}
        if voting.opens_at and voting.closes_at:
            opens = voting.opens_at.astimezone(zone)
            closes = voting.closes_at.astimezone(zone)
            meta["date_begin"] = opens.strftime(PB_DATE)
            meta["date_end"] = (closes - timedelta(microseconds=1)).strftime(PB_DATE)
    else:
        meta = dict(stored)  # the file's META, in its order, as it was read
    for key, value in derived.items():
        text = _text(value)
        # The file's spelling wins when it says the same number ("400000.0").
        if not _same(stored.get(key), text):
            meta[key] = text
    projects = []
    for e in entries:
        project = {
            "project_id": e.code,
            "cost": e.cost if e.cost is not None else 0,
            "votes": support[e.code],
            "name": e.title,
            "category": e.category or "",
            "district": e.area or "",
        }
        if selected is not None:
            project["selected"] = int(e.code in selected)
        projects.append(project)
    # Voters appear by receipt code: nothing that identifies a person leaves the service.
    votes = [{"voter_id": receipt, "vote": ",".join(codes)} for receipt, codes in ballots.items()]
    inst = pabulib.PbInstance(
        meta=meta,
        projects=[{k: _text(v) for k, v in p.items()} for p in projects],
        votes=votes,
    )
    return pabulib.dumps(inst)


def _same(stored: str | None, text: str) -> bool:
    if stored is None:
        return False
    if stored == text:
        return True
    try:
        return float(stored) == float(text)
    except ValueError:
        return False


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
