"""The campaign form: campaign document <-> HTML form fields, and errors per field.

Form field names are the document's paths: ``voting.min_choices``,
``review.criteria.0.max_points``, ``selection.categories.1.name``. Validation is the
API's (``CampaignSchema`` and the domain functions); this module only translates.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from schemas.campaign import (
    AGGREGATES,
    CALIBRATIONS,
    CHANNELS,
    RULES,
    TIE_RULES,
    VOTE_SCORES,
    VOTER_ID_KINDS,
)

from ..clock import now
from ..web.render import is_english

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"

# The seed's three kinds of campaign, and a blank one.
TEMPLATES = {
    "grids": "grids.json",  # 彭邻格项目遴选： budget, grids, a cap on winners
    "cases": "cases.json",  # 案例评选： public vote + expert review, chapters, 12 winners
    "groups": "groups.json",  # 楼组之最： vote only, award categories with quotas
    "blank": None,
}

BLANK = {
    "voting": {"min_choices": 1, "max_choices": 3, "channels": ["kiosk", "web"]},
    "review": {"criteria": []},
    "ranking": {"public_weight": 1, "expert_weight": 0},
    "selection": {"rule": "top", "winners": 10},
}


def template_names() -> list[tuple[str, str, str]]:
    """(key, name, what it is) for the template chooser."""
    return [
        ("grids", _("彭邻格项目遴选"), _("居民投票 + 专家评审，按预算选取，限制入选数")),
        ("cases", _("案例评选"), _("大众投票 + 专家评审，分篇章，评出 12 个优秀案例")),
        ("groups", _("楼组之最"), _("只投票，分奖项类别，各有名额")),
        ("blank", _("空白活动"), _("从头设置每一项")),
    ]


def template_document(key: str) -> dict[str, Any]:
    """A template's campaign document, with no slug or title and windows from today."""
    name = TEMPLATES.get(key)
    doc = (
        json.loads((DEMO_DIR / name).read_text("utf-8")) if name else json.loads(json.dumps(BLANK))
    )
    doc.pop("entries", None)
    doc["slug"], doc["title"] = "", ""
    if name:
        doc["description"] = ""
    tz = ZoneInfo(doc.get("timezone") or "Asia/Shanghai")
    today = now().astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    for section, days in (("voting", 14), ("review", 21)):
        doc.setdefault(section, {})
        doc[section]["opens_at"] = today.isoformat()
        doc[section]["closes_at"] = (today + timedelta(days=days, hours=18)).isoformat()
    if not doc["review"].get("criteria"):
        doc["review"].pop("opens_at"), doc["review"].pop("closes_at")
    return doc


# --- document -> form values ------------------------------------------------------------


def local_input(value: str | None, timezone: str) -> str:
    """An RFC 3339 time as a datetime-local value in the campaign's timezone."""
    if not value:
        return ""
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("Asia/Shanghai")
    return datetime.fromisoformat(value).astimezone(tz).strftime("%Y-%m-%dT%H:%M")


def form_values(doc: dict[str, Any]) -> dict[str, Any]:
    """The values the form shows, from a campaign document."""
    tz = doc.get("timezone") or "Asia/Shanghai"
    voting, review = dict(doc.get("voting") or {}), dict(doc.get("review") or {})
    ranking, selection = dict(doc.get("ranking") or {}), dict(doc.get("selection") or {})
    results = dict(doc.get("results") or {})
    for section in (voting, review):
        for key in ("opens_at", "closes_at"):
            section[key] = local_input(section.get(key), tz)
    categories = [
        {"name": name, "min": q.get("min", 0), "max": q.get("max")}
        for name, q in (selection.get("categories") or {}).items()
    ]
    return {
        "slug": doc.get("slug", ""),
        "title": doc.get("title", ""),
        "description": doc.get("description") or "",
        "timezone": tz,
        "voting": voting,
        "review": review,
        "criteria": list(review.get("criteria") or []),
        "ranking": ranking,
        "tie_break": list(ranking.get("tie_break") or TIE_RULES),
        "selection": selection,
        "categories": categories,
        "results": results,
    }


# --- form -> document --------------------------------------------------------------------


class FormProblem(Exception):
    """Input the schema never sees (a time that is no time): errors by field name."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


def _text(form: MultiDict, name: str) -> str:
    return (form.get(name) or "").strip()


def _number(form: MultiDict, name: str):
    """A number as the schema wants it, or the raw text for the schema to refuse."""
    raw = _text(form, name)
    if raw == "":
        return None
    try:
        return int(raw) if re.fullmatch(r"-?\d+", raw) else float(raw)
    except ValueError:
        return raw


def _rows(
    form: MultiDict, prefix: str, fields: tuple[str, ...]
) -> list[tuple[int, dict[str, str]]]:
    indexes = sorted(
        {
            int(m.group(1))
            for key in form
            if (m := re.fullmatch(re.escape(prefix) + r"\.(\d+)\.\w+", key))
        }
    )
    rows = []
    for i in indexes:
        if form.get(f"{prefix}.{i}.remove"):
            continue
        row = {f: _text(form, f"{prefix}.{i}.{f}") for f in fields}
        if any(row.values()):
            rows.append((i, row))
    return rows


def parse_form(form: MultiDict) -> tuple[dict[str, Any], dict[str, int]]:
    """The campaign document a form describes, and {category name: row index} to put
    quota errors beside their row. Raises FormProblem for times that are no times."""
    problems: dict[str, str] = {}
    timezone = _text(form, "timezone") or "Asia/Shanghai"
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("Asia/Shanghai")  # the schema names the unknown timezone

    def when(name: str):
        raw = _text(form, name)
        if not raw:
            return None
        try:
            return datetime.fromisoformat(raw).replace(tzinfo=tz).isoformat()
        except ValueError:
            problems[name] = _("请填写日期和时间")
            return None

    voting = {
        "opens_at": when("voting.opens_at"),
        "closes_at": when("voting.closes_at"),
        "min_choices": _number(form, "voting.min_choices"),
        "max_choices": _number(form, "voting.max_choices"),
        "limit": _text(form, "voting.limit") or None,
        "voter_id": _text(form, "voting.voter_id") or None,
        "channels": form.getlist("voting.channels"),
        "kiosk_grace_hours": _number(form, "voting.kiosk_grace_hours"),
        "eligibility": _text(form, "voting.eligibility") or None,
        "area_scope": bool(form.get("voting.area_scope")),
        "verify": _text(form, "voting.verify") or None,
        "verify_kiosk": bool(form.get("voting.verify_kiosk")),
        "sms_daily_budget": _number(form, "voting.sms_daily_budget"),
    }
    criteria = []
    for _i, row in _rows(form, "review.criteria", ("key", "label", "max_points", "weight")):
        item: dict[str, Any] = {"key": row["key"], "label": row["label"]}
        for f in ("max_points", "weight"):
            item[f] = _number(MultiDict({f: row[f]}), f)
        criteria.append({k: v for k, v in item.items() if v is not None})
    review = {
        "opens_at": when("review.opens_at"),
        "closes_at": when("review.closes_at"),
        "min_reviews": _number(form, "review.min_reviews"),
        "aggregate": _text(form, "review.aggregate") or None,
        "calibration": _text(form, "review.calibration") or None,
        "recuse_same_area": bool(form.get("review.recuse_same_area")),
        "criteria": criteria,
    }
    tie_break = []
    for i in range(len(TIE_RULES)):
        rule = _text(form, f"ranking.tie_break.{i}")
        if rule:
            tie_break.append(rule)
    ranking = {
        "public_weight": _number(form, "ranking.public_weight"),
        "expert_weight": _number(form, "ranking.expert_weight"),
        "vote_score": _text(form, "ranking.vote_score") or None,
        "tie_break": tie_break,
    }
    categories: dict[str, dict[str, Any]] = {}
    rows_by_name: dict[str, int] = {}
    for i, row in _rows(form, "selection.categories", ("name", "min", "max")):
        categories[row["name"]] = {
            "min": _number(MultiDict({"v": row["min"]}), "v") or 0,
            "max": _number(MultiDict({"v": row["max"]}), "v"),
        }
        rows_by_name[row["name"]] = i
    selection = {
        "rule": _text(form, "selection.rule") or None,
        "winners": _number(form, "selection.winners"),
        "budget": _number(form, "selection.budget"),
        "categories": categories,
        "max_per_area": _number(form, "selection.max_per_area"),
        "award": _text(form, "selection.award") or None,
        "min_votes": _number(form, "selection.min_votes"),
    }
    results = {
        "live": bool(form.get("results.live")),
        "auto_publish": bool(form.get("results.auto_publish")),
    }
    if problems:
        raise FormProblem(problems)

    def clean(section: dict[str, Any], keep_none=("winners", "budget", "max_per_area", "award")):
        # An empty field takes the schema's default; a few may be explicitly empty.
        return {k: v for k, v in section.items() if v is not None or k in keep_none}

    doc = {
        "slug": _text(form, "slug"),
        "title": _text(form, "title"),
        "description": _text(form, "description") or None,
        "timezone": timezone,
        "voting": {
            k: v for k, v in voting.items() if v is not None or k in ("opens_at", "closes_at")
        },
        "review": {
            k: v for k, v in review.items() if v is not None or k in ("opens_at", "closes_at")
        },
        "ranking": clean(ranking, ()),
        "selection": clean(selection),
        "results": results,
    }
    return doc, rows_by_name


def form_echo(form: MultiDict) -> dict[str, Any]:
    """What the staff member typed, shown again beside the errors (not the stored doc)."""
    values = form_values({})
    values.update(slug=_text(form, "slug"), title=_text(form, "title"))
    values["description"] = form.get("description", "")
    values["timezone"] = _text(form, "timezone") or "Asia/Shanghai"
    for section in ("voting", "review", "ranking", "selection", "results"):
        values[section] = {
            key.split(".", 1)[1]: form.get(key)
            for key in form
            if key.startswith(section + ".") and key.count(".") == 1
        }
    values["voting"]["channels"] = form.getlist("voting.channels")
    values["criteria"] = [
        row for _i, row in _rows(form, "review.criteria", ("key", "label", "max_points", "weight"))
    ]
    values["categories"] = [
        row for _i, row in _rows(form, "selection.categories", ("name", "min", "max"))
    ]
    values["tie_break"] = [_text(form, f"ranking.tie_break.{i}") for i in range(len(TIE_RULES))]
    return values


# --- errors beside their fields -----------------------------------------------------------


_DEFAULT_MESSAGES = [
    (re.compile(r"^Missing data for required field\.$"), "必填"),
    (re.compile(r"^Field may not be null\.$"), "必填"),
    (re.compile(r"^Not a valid integer\.$"), "须为整数"),
    (re.compile(r"^Not a valid number\.$"), "须为数字"),
    (re.compile(r"^Not a valid boolean\.$"), "须为是或否"),
    (re.compile(r"^Not a valid string\.$"), "须为文字"),
    (re.compile(r"^String does not match expected pattern\.$"), "格式不正确"),
    (re.compile(r"^Shorter than minimum length (\d+)\.$"), "至少 {0} 项"),
    (
        re.compile(r"^Must be greater than or equal to (\S+) and less than or equal to (\S+)\.$"),
        "须在 {0} 至 {1} 之间",
    ),
    (re.compile(r"^Must be greater than or equal to (\S+)\.$"), "不能小于 {0}"),
    (re.compile(r"^Must be greater than (\S+)\.$"), "须大于 {0}"),
    (re.compile(r"^Must be less than or equal to (\S+)\.$"), "不能大于 {0}"),
    (re.compile(r"^Must be one of: (.*)\.$"), "须为以下之一：{0}"),
    (re.compile(r"^Length must be between (\d+) and (\d+)\.$"), "长度须在 {0} 至 {1} 个字符之间"),
    (re.compile(r"^Longer than maximum length (\d+)\.$"), "最多 {0} 个字符"),
    (re.compile(r"^Unknown field\.$"), "未知字段"),
]


def in_chinese(message: str) -> str:
    """A validation message in the page's language. The service's own messages carry
    both ("中文 / English"); marshmallow's defaults are English and get a Chinese one."""
    zh, sep, en = message.partition(" / ")
    if sep:
        return en if is_english() else zh
    if is_english():
        return message
    for pattern, chinese in _DEFAULT_MESSAGES:
        m = pattern.match(message)
        if m:
            return chinese.format(*m.groups())
    return message


def field_errors(messages: Any, rows_by_name: dict[str, int] | None = None) -> dict[str, str]:
    """marshmallow's nested messages as {form field name: one message}."""
    rows_by_name = rows_by_name or {}
    flat: dict[str, str] = {}

    def walk(value: Any, path: list[str]) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, path + [str(key)])
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            name = ".".join(p for p in path if p != "_schema")
            # Quota errors come keyed by category name ("…categories.<name>.value.min").
            if name.startswith("selection.categories."):
                rest = name[len("selection.categories.") :]
                for cat, i in rows_by_name.items():
                    if rest == cat or rest.startswith(cat + "."):
                        tail = rest[len(cat) :].replace(".value", "").replace(".key", ".name")
                        name = f"selection.categories.{i}" + (tail or ".name")
                        break
            flat.setdefault(name or "_form", in_chinese(value[0]))
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                walk(inner, path + [str(i)])

    walk(messages, [])
    return flat


CHOICES = {
    "voter_id": VOTER_ID_KINDS,
    "channels": CHANNELS,
    "vote_score": VOTE_SCORES,
    "aggregate": AGGREGATES,
    "calibration": CALIBRATIONS,
    "tie_break": TIE_RULES,
    "rule": RULES,
}
