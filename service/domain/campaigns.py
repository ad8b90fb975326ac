"""Campaign set-up: create, update with the rules lock, entries, CSV import."""

from __future__ import annotations

import contextlib
import copy
import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError

from schemas.campaign import UNLOCKED, CampaignSchema
from schemas.entry import EntrySchema
from schemas.rules import CampaignRules

from .. import hotcache
from ..clock import now
from ..errors import ApiError, validation_error
from ..extensions import db
from ..models import Ballot, Campaign, Criterion, Entry, Score
from .audit import audit
from .roll import check_kind_change

SECTIONS = ("voting", "review", "ranking", "selection", "results")
CSV_HEADER = ["code", "title", "summary", "category", "area", "grid", "cost"]


def get_campaign(slug: str) -> Campaign:
    campaign = db.session.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is None:
        raise ApiError(404, "not_found", f"评选活动不存在 / No campaign '{slug}'")
    return campaign


def visible_campaign(slug: str, include_drafts: bool) -> Campaign:
    """``get_campaign`` for public readers: a draft is 404 unless ``include_drafts``
    (an admin token), exactly as a campaign that does not exist."""
    campaign = get_campaign(slug)
    if campaign.draft and not include_drafts:
        raise ApiError(404, "not_found", f"评选活动不存在 / No campaign '{slug}'")
    return campaign


def publish_campaign(campaign: Campaign, actor: str) -> Campaign:
    """End the draft: the campaign becomes public and today's rules apply (the windows,
    the entries lock once voting opens, the rules lock with the first ballot or score).
    409 not_a_draft when it was published already."""
    if not campaign.draft:
        raise ApiError(409, "not_a_draft", "活动已发布 / The campaign is already published")
    campaign.draft = False
    audit("campaign.publish", actor, campaign.id, slug=campaign.slug)
    return campaign


@dataclass(frozen=True)
class LockedCampaign:
    """What the ballot path reads of a campaign whose rules are locked: its row, typed
    rules and entry codes (entries are fixed once the rules lock). Shared by the threads
    of a process for HOT_CACHE_SECONDS (service/hotcache.py)."""

    id: int
    slug: str
    timezone: str
    rules: CampaignRules
    rules_locked_at: datetime
    codes: Mapping[str, int]
    # Rules never lock in a draft, so a locked campaign is public: the ballot path reads
    # ``draft`` from either kind of campaign.
    draft: bool = False


def campaign_for_ballots(slug: str) -> Campaign | LockedCampaign:
    """The campaign a ballot is cast on: a cached LockedCampaign once the rules are
    locked (the common case), the ORM row before (the first ballot locks the rules)."""
    key = ("campaign", slug)
    cached = hotcache.cache().lookup(key)
    if cached is not None:
        return cached
    campaign = get_campaign(slug)
    if campaign.rules_locked_at is None:
        return campaign
    codes = db.session.execute(
        select(Entry.code, Entry.id).where(Entry.campaign_id == campaign.id)
    ).all()
    locked = LockedCampaign(
        campaign.id,
        campaign.slug,
        campaign.timezone,
        campaign.rules,
        campaign.rules_locked_at,
        MappingProxyType(dict(codes)),
    )
    hotcache.cache().put(key, locked)
    return locked


def rules_locked(campaign: Campaign) -> bool:
    """Rules lock with the first accepted ballot or score (never in a draft)."""
    if campaign.draft:
        return False
    if campaign.rules_locked_at is not None:
        return True
    return bool(
        db.session.scalar(select(exists().where(Ballot.campaign_id == campaign.id)))
        or db.session.scalar(select(exists().where(Score.campaign_id == campaign.id)))
    )


def lock_rules(campaign: Campaign) -> None:
    """Called in the transaction that accepts the first ballot or score."""
    if campaign.rules_locked_at is None:
        campaign.rules_locked_at = now()


def campaign_status(campaign: Campaign, at: datetime | None = None) -> str:
    """draft | upcoming | voting | review | closed, from the windows and the clock."""
    if campaign.draft:
        return "draft"
    at = at or now()
    voting, review = campaign.rules.voting, campaign.rules.review
    v_open, v_close = voting.opens_at, voting.closes_at
    r_open, r_close = review.opens_at, review.closes_at
    if v_open is None and r_open is None:
        return "draft"
    if v_open and at < v_open and (r_open is None or at < r_open):
        return "upcoming"
    if v_open and at >= v_open and (v_close is None or at < v_close):
        return "voting"
    if r_open and at >= r_open and (r_close is None or at < r_close):
        return "review"
    if v_close and at >= v_close and (r_close is None or at >= r_close):
        return "closed"
    return "upcoming"


def campaign_document(campaign: Campaign) -> dict[str, Any]:
    review = dict(campaign.review or {})
    review["criteria"] = [
        {"key": c.key, "label": c.label, "max_points": c.max_points, "weight": c.weight}
        for c in campaign.criteria
    ]
    return {
        "slug": campaign.slug,
        "draft": bool(campaign.draft),
        "title": campaign.title,
        "description": campaign.description,
        "timezone": campaign.timezone,
        "voting": campaign.voting,
        "review": review,
        "ranking": campaign.ranking,
        "selection": campaign.selection,
        "results": campaign.results,
    }


def campaign_view(campaign: Campaign) -> dict[str, Any]:
    doc = campaign_document(campaign)
    doc.update(
        status=campaign_status(campaign),
        rules_locked=rules_locked(campaign),
        entries_count=db.session.scalar(
            select(func.count()).select_from(Entry).where(Entry.campaign_id == campaign.id)
        ),
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
    )
    return doc


def _canonical(loaded: dict[str, Any]) -> dict[str, Any]:
    # Store what the schema dumps: ISO strings, defaults filled, one canonical form.
    return CampaignSchema(
        exclude=(
            "status",
            "draft",
            "rules_locked",
            "entries_count",
            "created_at",
            "updated_at",
        )
    ).dump(loaded)


def _apply(campaign: Campaign, doc: dict[str, Any]) -> None:
    campaign.title = doc["title"]
    campaign.description = doc.get("description")
    campaign.timezone = doc["timezone"]
    review = dict(doc["review"])
    criteria = review.pop("criteria", [])
    campaign.voting, campaign.review = doc["voting"], review
    campaign.ranking, campaign.selection, campaign.results = (
        doc["ranking"],
        doc["selection"],
        doc["results"],
    )
    existing = {c.key: c for c in campaign.criteria}
    wanted = {c["key"] for c in criteria}
    for key, gone in existing.items():
        if key not in wanted:
            campaign.criteria.remove(gone)
    for position, c in enumerate(criteria):
        crit = existing.get(c["key"])
        if crit is None:
            crit = Criterion(key=c["key"])
            campaign.criteria.append(crit)
        crit.label, crit.max_points, crit.weight, crit.position = (
            c.get("label", ""),
            c["max_points"],
            c.get("weight", 1.0),
            position,
        )


def create_campaign(data: dict[str, Any], actor: str) -> Campaign:
    doc = _canonical(data)
    if db.session.scalar(select(exists().where(Campaign.slug == doc["slug"]))):
        raise ApiError(
            409,
            "slug_taken",
            f"标识已被使用 / Slug '{doc['slug']}' is taken",
            {"slug": doc["slug"]},
        )
    campaign = Campaign(slug=doc["slug"], draft=bool(data.get("draft", False)))
    _apply(campaign, doc)
    db.session.add(campaign)
    try:
        db.session.flush()
    except IntegrityError as exc:  # a concurrent create of the same slug
        db.session.rollback()
        raise ApiError(
            409,
            "slug_taken",
            f"标识已被使用 / Slug '{doc['slug']}' is taken",
            {"slug": doc["slug"]},
        ) from exc
    audit("campaign.create", actor, campaign.id, slug=campaign.slug, draft=campaign.draft)
    return campaign


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "categories":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _locked_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changed = []
    for section in SECTIONS:
        before, after = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(before) | set(after)):
            if key in UNLOCKED.get(section, set()):
                continue
            if before.get(key) != after.get(key):
                changed.append(f"{section}.{key}")
    if old.get("timezone") != new.get("timezone"):
        changed.append("timezone")
    return changed


def update_campaign(campaign: Campaign, patch: dict[str, Any], actor: str) -> Campaign:
    hotcache.changed(db.session)  # every process's cached campaign, once this commits
    if not isinstance(patch, dict):
        raise validation_error({"_schema": ["需要 JSON 对象 / expected a JSON object"]})
    if "slug" in patch and patch["slug"] != campaign.slug:
        raise validation_error({"slug": ["标识不可修改 / the slug cannot change"]})
    if "draft" in patch and patch["draft"] != campaign.draft:
        raise validation_error(
            {"draft": ["请用 POST …/publish-campaign 发布 / publish with POST …/publish-campaign"]}
        )
    patch = {k: v for k, v in patch.items() if k != "draft"}
    old = _canonical(CampaignSchema().load(campaign_document(campaign)))
    merged = _merge(old, patch)
    try:
        new = _canonical(CampaignSchema().load(merged))
    except ValidationError as exc:
        raise validation_error(exc.messages) from exc
    if rules_locked(campaign):
        changed = _locked_changes(old, new)
        if changed:
            raise ApiError(
                409,
                "rules_locked",
                "已有选票或评分，规则已锁定 / Rules are locked once a ballot or score exists",
                {"fields": changed},
            )
    check_kind_change(campaign, old["voting"], new["voting"])
    window_changes = {
        f"{s}.{k}": {"from": old[s].get(k), "to": new[s].get(k)}
        for s in ("voting", "review")
        for k in ("opens_at", "closes_at")
        if old[s].get(k) != new[s].get(k)
    }
    _apply(campaign, new)
    audit("campaign.update", actor, campaign.id, fields=sorted(patch), windows=window_changes)
    return campaign


# --- entries -------------------------------------------------------------------


def entries_locked(campaign: Campaign) -> bool:
    """Entries are fixed once voting has opened or anything was cast or scored (never in
    a draft: its dates mean nothing until it is published)."""
    if campaign.draft:
        return False
    if rules_locked(campaign):
        return True
    opens = campaign.rules.voting.opens_at
    return opens is not None and now() >= opens


def _refuse_if_entries_locked(campaign: Campaign) -> None:
    if entries_locked(campaign):
        raise ApiError(
            409,
            "entries_locked",
            "投票已开始，参评对象不可增删改 / Entries are fixed once voting has opened",
        )


def get_entry(campaign: Campaign, code: str) -> Entry:
    entry = db.session.scalar(
        select(Entry).where(Entry.campaign_id == campaign.id, Entry.code == code)
    )
    if entry is None:
        raise ApiError(404, "not_found", f"参评对象不存在 / No entry '{code}'")
    return entry


def list_entries(campaign: Campaign) -> list[Entry]:
    return list(
        db.session.scalars(
            select(Entry).where(Entry.campaign_id == campaign.id).order_by(Entry.code)
        )
    )


def check_entry_cap(campaign: Campaign, adding: int) -> None:
    """422 too_many_entries when ``adding`` more entries would pass the campaign's cap
    (``MAX_ENTRIES_PER_CAMPAIGN``): 55,000 entries made a 13 MB voting page."""
    limit = current_app.config["MAX_ENTRIES_PER_CAMPAIGN"]
    existing = db.session.execute(
        select(func.count()).select_from(Entry).where(Entry.campaign_id == campaign.id)
    ).scalar_one()
    if existing + adding > limit:
        raise ApiError(
            422,
            "too_many_entries",
            f"每个评选活动最多 {limit} 个参评对象 / at most {limit} entries per campaign",
            {"limit": limit, "existing": existing, "adding": adding},
        )


def add_entries(campaign: Campaign, items: list[dict[str, Any]], actor: str) -> list[Entry]:
    """Add validated entries, all or nothing; 409 code_taken names every clash."""
    _refuse_if_entries_locked(campaign)
    check_entry_cap(campaign, len(items))
    codes = [item["code"] for item in items]
    dupes = sorted({c for c in codes if codes.count(c) > 1})
    taken = set(
        db.session.scalars(
            select(Entry.code).where(Entry.campaign_id == campaign.id, Entry.code.in_(codes))
        )
    )
    if dupes or taken:
        raise ApiError(
            409,
            "code_taken",
            "编号已存在 / Entry code already used",
            {"codes": sorted(taken | set(dupes))},
        )
    entries = [Entry(campaign_id=campaign.id, **item) for item in items]
    db.session.add_all(entries)
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        raise ApiError(
            409, "code_taken", "编号已存在 / Entry code already used", {"codes": codes}
        ) from exc
    audit("entries.add", actor, campaign.id, codes=codes)
    return entries


def update_entry(campaign: Campaign, entry: Entry, patch: dict[str, Any], actor: str) -> Entry:
    # Texts stay editable (typos happen); what changes the count does not.
    substantive = set(patch) - {"title", "summary"}
    if substantive:
        _refuse_if_entries_locked(campaign)
    for key, value in patch.items():
        setattr(entry, key, value)
    audit("entry.update", actor, campaign.id, code=entry.code, fields=sorted(patch))
    return entry


def delete_entry(campaign: Campaign, entry: Entry, actor: str) -> None:
    _refuse_if_entries_locked(campaign)
    db.session.delete(entry)
    audit("entry.delete", actor, campaign.id, code=entry.code)


def import_entries_csv(campaign: Campaign, text: str, actor: str) -> dict[str, int]:
    """All or nothing: every bad line is reported with its number; nothing is written."""
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise validation_error({"_file": ["空文件 / empty file"]}, "invalid_csv") from None
    header = [h.strip() for h in header]
    if header != CSV_HEADER:
        raise ApiError(
            422,
            "invalid_csv",
            f"表头须为 / header must be: {','.join(CSV_HEADER)}",
            {"lines": [{"line": 1, "errors": {"header": [",".join(header)]}}]},
        )
    # The cap first: validating 55,000 lines took 34 s only to refuse them. A broken
    # line (csv.Error) is reported with its number below.
    with contextlib.suppress(csv.Error):
        check_entry_cap(campaign, sum(1 for row in reader if any(c.strip() for c in row)))
    reader = csv.reader(io.StringIO(text))
    next(reader)
    schema = EntrySchema()
    items: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(CSV_HEADER):
                errors.append(
                    {
                        "line": line,
                        "errors": {
                            "_row": [
                                f"需要 {len(CSV_HEADER)} 列，实际 {len(row)} 列 / expected "
                                f"{len(CSV_HEADER)} columns, got {len(row)}"
                            ]
                        },
                    }
                )
                continue
            raw = {k: (v.strip() or None) for k, v in zip(CSV_HEADER, row, strict=True)}
            raw = {k: v for k, v in raw.items() if v is not None or k in ("code", "title")}
            try:
                item = schema.load(raw)
            except ValidationError as exc:
                errors.append({"line": line, "errors": exc.messages})
                continue
            if item["code"] in seen:
                errors.append(
                    {
                        "line": line,
                        "errors": {
                            "code": [
                                f"与第 {seen[item['code']]} 行重复 / duplicate of line {seen[item['code']]}"
                            ]
                        },
                    }
                )
                continue
            seen[item["code"]] = line
            items.append(item)
    except csv.Error as exc:
        errors.append({"line": reader.line_num, "errors": {"_row": [str(exc)]}})
    if not errors and items:
        taken = set(
            db.session.scalars(
                select(Entry.code).where(
                    Entry.campaign_id == campaign.id, Entry.code.in_(list(seen))
                )
            )
        )
        for code in sorted(taken, key=seen.__getitem__):
            errors.append(
                {
                    "line": seen[code],
                    "errors": {"code": [f"编号已存在 / code '{code}' already exists"]},
                }
            )
    if errors:
        raise ApiError(
            422,
            "invalid_csv",
            "CSV 有错误，未导入任何行 / CSV has errors; nothing was imported",
            {"lines": errors},
        )
    if not items:
        raise validation_error({"_file": ["没有数据行 / no data lines"]}, "invalid_csv")
    add_entries(campaign, items, actor)
    return {"created": len(items), "lines": len(items)}


def create_campaign_from_doc(doc: dict, actor: str = "cli"):
    data = CampaignSchema().load({k: v for k, v in doc.items() if k != "entries"})
    return create_campaign(data, actor)
