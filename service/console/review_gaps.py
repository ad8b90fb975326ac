"""Review gaps in the console: entries that cannot reach ``min_reviews``, in words, with
the fix (``service/domain/feasibility.py`` computes them)."""

from __future__ import annotations

from typing import Any

from flask import flash
from flask_babel import gettext as _

from ..domain.feasibility import infeasible
from ..models import Campaign
from ..web.results import infeasible_reason_words


def _fix(item: dict[str, Any]) -> str:
    blocked = item.get("blocked") or {}
    need = item["min_reviews"] - item["reviewers_possible"]
    if item["reason"] == "review_closed":
        return _("评审已结束：如需补评，请先延长评审时间，再指派专家。")
    if item["reason"] == "recusal":
        return _(
            "请再指派 %(n)s 位不属于“%(area)s”的专家评审它（%(who)s 须回避）。",
            n=need,
            area=item.get("area") or "",
            who="、".join(blocked.get("recused", [])),
        )
    if item["reason"] == "assignment":
        return _(
            "请在评审分配中把它分给更多专家（%(who)s 没有分到它），或再邀请 %(n)s 位专家。",
            who="、".join(blocked.get("not_assigned", [])),
            n=need,
        )
    return _("请再邀请 %(n)s 位专家评审它。", n=need)


def gap_rows(campaign: Campaign) -> list[dict[str, Any]]:
    return [
        {
            **item,
            "why": infeasible_reason_words(item["reason"]),
            "fix": _fix(item),
        }
        for item in infeasible(campaign)
    ]


def message(item: dict[str, Any]) -> str:
    return _(
        "注意：“%(title)s”（%(code)s）最多只能得到 %(n)s 份评审，少于最少 %(min)s 份，"
        "将标为“评审数不足”而不能入选。原因：%(why)s。%(fix)s",
        title=item["title"],
        code=item["code"],
        n=item["reviewers_possible"],
        min=item["min_reviews"],
        why=item["why"],
        fix=item["fix"],
    )


def flash_gaps(campaign: Campaign) -> None:
    """After a change to experts or assignments: one warning per entry left short."""
    for item in gap_rows(campaign):
        flash(message(item), "warning")
