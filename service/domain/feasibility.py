"""Review feasibility: which entries can no longer reach ``min_reviews``, and why.

An entry's possible reviews are the live scores it already has (a withdrawn expert's
scores stay) plus one for every expert who may still score it: not withdrawn, assigned
to it (an expert with no explicit assignment reviews every entry), not recused
(``review.recuse_same_area`` and the same 居民区), and only while the review window has
not closed. Fewer possible reviews than ``min_reviews`` means the entry will be marked
评审数不足 and cannot be selected whatever its votes: the office must be told when it
happens (registering or withdrawing an expert, changing assignments), on the dashboard,
in ``GET …/review/progress`` and in a ranking run's result.

Only campaigns whose expert weight is above zero need reviews (a vote-only campaign has
no such gap).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..clock import now
from ..extensions import db
from ..models import Assignment, Campaign, Entry, Expert, Score

# Why an entry cannot reach its minimum, most specific first: the fix differs.
REASONS = ("review_closed", "recusal", "assignment", "withdrawal", "too_few_experts")


def reviews_matter(campaign: Campaign) -> bool:
    return float(campaign.rules.ranking.expert_weight or 0) > 0


def min_reviews(campaign: Campaign) -> int:
    return int(campaign.rules.review.min_reviews)


def _review_closed(campaign: Campaign) -> bool:
    closes = campaign.rules.review.closes_at
    return closes is not None and now() >= closes


def infeasible(campaign: Campaign) -> list[dict[str, Any]]:
    """``[{code, title, reason, reviewers_possible, reviews, min_reviews, blocked}]`` for
    every entry that cannot reach ``min_reviews``; empty when reviews do not count.

    ``blocked`` names the experts kept away from the entry, by cause (``recused``,
    ``not_assigned``, ``withdrawn``), so the console can say who and propose the fix.
    """
    if not reviews_matter(campaign):
        return []
    needed = min_reviews(campaign)
    if needed <= 0:
        return []
    recuse = bool(campaign.rules.review.recuse_same_area)
    closed = _review_closed(campaign)
    entries = list(
        db.session.scalars(
            select(Entry).where(Entry.campaign_id == campaign.id).order_by(Entry.code)
        )
    )
    experts = list(
        db.session.scalars(
            select(Expert).where(Expert.campaign_id == campaign.id).order_by(Expert.id)
        )
    )
    assigned: dict[int, set[int]] = {}
    for expert_id, entry_id in db.session.execute(
        select(Assignment.expert_id, Assignment.entry_id).where(
            Assignment.expert_id.in_([e.id for e in experts] or [0])
        )
    ):
        assigned.setdefault(expert_id, set()).add(entry_id)
    scored: dict[int, set[int]] = {}
    for expert_id, entry_id in db.session.execute(
        select(Score.expert_id, Score.entry_id).where(Score.campaign_id == campaign.id)
    ):
        scored.setdefault(entry_id, set()).add(expert_id)

    found = []
    for entry in entries:
        done = scored.get(entry.id, set())
        blocked: dict[str, list[str]] = {"recused": [], "not_assigned": [], "withdrawn": []}
        possible = len(done)
        for expert in experts:
            if expert.id in done:
                continue
            if expert.revoked_at is not None:
                blocked["withdrawn"].append(expert.name)
            elif recuse and expert.area and entry.area and expert.area == entry.area:
                blocked["recused"].append(expert.name)
            elif assigned.get(expert.id) and entry.id not in assigned[expert.id]:
                blocked["not_assigned"].append(expert.name)
            elif not closed:
                possible += 1
        if possible >= needed:
            continue
        if closed:
            reason = "review_closed"
        elif blocked["recused"]:
            reason = "recusal"
        elif blocked["not_assigned"]:
            reason = "assignment"
        elif blocked["withdrawn"]:
            reason = "withdrawal"
        else:
            reason = "too_few_experts"
        found.append(
            {
                "code": entry.code,
                "title": entry.title,
                "area": entry.area,
                "reason": reason,
                "reviewers_possible": possible,
                "reviews": len(done),
                "min_reviews": needed,
                "blocked": {k: v for k, v in blocked.items() if v},
            }
        )
    return found


def warnings(campaign: Campaign) -> list[dict[str, Any]]:
    """The infeasible entries as warnings for an API answer (``warnings`` field)."""
    return [
        {
            "code": "review_infeasible",
            "entry": item["code"],
            "reason": item["reason"],
            "reviewers_possible": item["reviewers_possible"],
            "min_reviews": item["min_reviews"],
            "message": (
                f"“{item['title']}”最多只能得到 {item['reviewers_possible']} 份评审，"
                f"少于最少 {item['min_reviews']} 份，将不能入选 / "
                f"{item['code']} can get at most {item['reviewers_possible']} of the "
                f"{item['min_reviews']} reviews it needs ({item['reason']})"
            ),
        }
        for item in infeasible(campaign)
    ]
