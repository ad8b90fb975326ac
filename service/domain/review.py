"""Expert review: experts, assignments, rubric scores with revisions, recusal, progress."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from engine.vocabulary import PUBLISHED_DECIMALS

from ..auth import Principal, issue_token
from ..clock import now
from ..errors import ApiError
from ..extensions import db
from ..models import ApiToken, Assignment, Campaign, Entry, Expert, Score, ScoreHistory
from ..observability import SCORES
from .access import review_window
from .audit import audit
from .campaigns import get_entry, lock_rules
from .feasibility import infeasible
from .roll import turnout

# --- experts ------------------------------------------------------------------------


def add_expert(campaign: Campaign, name: str, area: str | None, actor: str) -> tuple[Expert, str]:
    expert = Expert(campaign_id=campaign.id, name=name, area=area)
    db.session.add(expert)
    db.session.flush()
    token = issue_token("expert", name=name, expert_id=expert.id)
    audit("expert.add", actor, campaign.id, expert_id=expert.id, name=name)
    return expert, token


def list_experts(campaign: Campaign) -> list[Expert]:
    return list(
        db.session.scalars(
            select(Expert).where(Expert.campaign_id == campaign.id).order_by(Expert.id)
        )
    )


def get_expert(campaign: Campaign, expert_id: int) -> Expert:
    expert = db.session.get(Expert, expert_id)
    if expert is None or expert.campaign_id != campaign.id:
        raise ApiError(404, "not_found", f"专家不存在 / No expert {expert_id}")
    return expert


def revoke_expert(campaign: Campaign, expert_id: int, actor: str) -> None:
    expert = get_expert(campaign, expert_id)
    if expert.revoked_at is None:
        expert.revoked_at = now()
        db.session.execute(
            update(ApiToken)
            .where(ApiToken.expert_id == expert.id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now())
        )
        audit("expert.revoke", actor, campaign.id, expert_id=expert.id)


def set_assignments(campaign: Campaign, expert: Expert, codes: list[str], actor: str) -> list[str]:
    """Replace the expert's explicit assignment (an empty list means: every entry)."""
    ids = dict(
        db.session.execute(
            select(Entry.code, Entry.id).where(
                Entry.campaign_id == campaign.id, Entry.code.in_(codes)
            )
        ).all()
    )
    unknown = sorted(set(codes) - set(ids))
    if unknown:
        raise ApiError(422, "unknown_entry", "参评对象不存在 / Unknown entry", {"codes": unknown})
    db.session.query(Assignment).filter(Assignment.expert_id == expert.id).delete()
    db.session.add_all(Assignment(expert_id=expert.id, entry_id=i) for i in set(ids.values()))
    audit("expert.assign", actor, campaign.id, expert_id=expert.id, entries=sorted(set(codes)))
    return sorted(set(codes))


def expert_for(principal: Principal, campaign: Campaign) -> Expert:
    """The expert behind a token, who must belong to this campaign."""
    expert = db.session.get(Expert, principal.expert_id)
    if expert is None or expert.revoked_at is not None:
        raise ApiError(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
    if expert.campaign_id != campaign.id:
        raise ApiError(403, "forbidden", "该专家不属于本次评选 / Not an expert of this campaign")
    return expert


def is_recused(campaign: Campaign, expert: Expert, entry: Entry) -> bool:
    return bool(
        campaign.rules.review.recuse_same_area
        and expert.area
        and entry.area
        and expert.area == entry.area
    )


def _assigned_ids(expert: Expert) -> set[int]:
    return set(
        db.session.scalars(select(Assignment.entry_id).where(Assignment.expert_id == expert.id))
    )


def assignments(campaign: Campaign, expert: Expert) -> dict[str, Any]:
    """The entries this expert is to score (recused ones left out), with own scores."""
    assigned = _assigned_ids(expert)
    own = {
        s.entry_id: s for s in db.session.scalars(select(Score).where(Score.expert_id == expert.id))
    }
    entries = []
    for entry in db.session.scalars(
        select(Entry).where(Entry.campaign_id == campaign.id).order_by(Entry.code)
    ):
        if (assigned and entry.id not in assigned) or is_recused(campaign, expert, entry):
            continue
        score = own.get(entry.id)
        entries.append(
            {
                "code": entry.code,
                "title": entry.title,
                "summary": entry.summary,
                "category": entry.category,
                "area": entry.area,
                "grid": entry.grid,
                "cost": entry.cost,
                "score": score_view(score, entry.code) if score else None,
            }
        )
    return {
        "campaign": campaign.slug,
        "expert": expert,
        "entries": entries,
        "criteria": [
            {"key": c.key, "label": c.label, "max_points": c.max_points, "weight": c.weight}
            for c in campaign.criteria
        ],
    }


def score_view(score: Score, code: str) -> dict[str, Any]:
    return {
        "entry": code,
        "expert_id": score.expert_id,
        "scores": score.scores,
        "total": score.total,
        "comment": score.comment,
        "revision": score.revision,
        "updated_at": score.updated_at,
    }


# --- scoring -------------------------------------------------------------------------


def _check_window(campaign: Campaign) -> None:
    window = review_window(campaign)
    if campaign.draft or window.state == "not_open":  # nothing is scored in a draft
        raise ApiError(
            403,
            "review_not_open",
            "评审尚未开始 / Review has not opened",
            {"opens_at": window.opens_at.isoformat() if window.opens_at else None},
        )
    if window.state == "closed":
        assert window.closes_at is not None
        raise ApiError(
            403,
            "review_closed",
            "评审已结束 / Review has closed",
            {"closes_at": window.closes_at.isoformat()},
        )


def _check_points(campaign: Campaign, scores: dict[str, Any]) -> tuple[dict[str, float], float]:
    criteria = {c.key: c for c in campaign.criteria}
    unknown = sorted(set(scores) - set(criteria))
    if unknown:
        raise ApiError(
            422, "unknown_criterion", "未知评分项 / Unknown criterion", {"criteria": unknown}
        )
    missing = [k for k in criteria if k not in scores]
    if missing:
        raise ApiError(
            422, "missing_criterion", "评分项缺失 / Missing criterion", {"criteria": missing}
        )
    clean: dict[str, float] = {}
    for key, value in scores.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ApiError(
                422,
                "validation_error",
                "分数须为数字 / Points must be numbers",
                {"fields": {"scores": {key: ["not a number"]}}},
            )
        if not 0 <= value <= criteria[key].max_points:
            raise ApiError(
                422,
                "out_of_range",
                f"{key} 须在 0 到 {criteria[key].max_points:g} "
                f"之间 / {key} must be between 0 and {criteria[key].max_points:g}",
                {"criterion": key, "min": 0, "max": criteria[key].max_points},
            )
        clean[key] = float(value)
    denominator = sum(c.weight * c.max_points for c in criteria.values())
    total = 100 * sum(criteria[k].weight * v for k, v in clean.items()) / denominator
    return clean, round(total, PUBLISHED_DECIMALS)


def submit_score(
    campaign: Campaign, expert: Expert, code: str, scores: dict[str, Any], comment: str | None
) -> tuple[dict[str, Any], bool]:
    """Record an expert's score; returns (view, created). A revision replaces the live
    score and the replaced version stays in the history."""
    try:
        view, created = _submit_score(campaign, expert, code, scores, comment)
    except ApiError as exc:
        SCORES.labels(exc.code).inc()
        raise
    SCORES.labels("created" if created else "revised").inc()
    return view, created


def _submit_score(
    campaign: Campaign, expert: Expert, code: str, scores: dict[str, Any], comment: str | None
) -> tuple[dict[str, Any], bool]:
    _check_window(campaign)
    entry = get_entry(campaign, code)
    if is_recused(campaign, expert, entry):
        raise ApiError(
            403,
            "recused",
            "须回避本居民区的参评对象 / Recused: the entry is from the expert's own area",
            {"area": entry.area},
        )
    assigned = _assigned_ids(expert)
    if assigned and entry.id not in assigned:
        raise ApiError(403, "not_assigned", "未分配给该专家 / Not assigned to this expert")
    clean, total = _check_points(campaign, scores)
    at = now()
    created = False
    # FOR UPDATE: two revisions at once must get consecutive revision numbers.
    live = select(Score).where(Score.expert_id == expert.id, Score.entry_id == entry.id)
    score = db.session.scalar(live.with_for_update())
    if score is None:
        try:
            with db.session.begin_nested():
                if campaign.rules_locked_at is None:
                    lock_rules(campaign)
                score = Score(
                    campaign_id=campaign.id,
                    expert_id=expert.id,
                    entry_id=entry.id,
                    scores=clean,
                    total=total,
                    comment=comment,
                    revision=1,
                    created_at=at,
                    updated_at=at,
                )
                db.session.add(score)
            created = True
        except IntegrityError:
            # A simultaneous first score won: this one becomes its revision.
            score = db.session.scalar(live.with_for_update())
            assert score is not None  # the score that won the race
    if not created:
        score.scores, score.total, score.comment = clean, total, comment
        score.revision = score.revision + 1
        score.updated_at = at
    db.session.flush()
    db.session.add(
        ScoreHistory(
            score_id=score.id,
            revision=score.revision,
            scores=clean,
            total=total,
            comment=comment,
            recorded_at=at,
        )
    )
    return score_view(score, entry.code), created


def score_history(campaign: Campaign, code: str) -> list[dict[str, Any]]:
    entry = get_entry(campaign, code)
    rows = db.session.execute(
        select(ScoreHistory, Score.expert_id)
        .join(Score, Score.id == ScoreHistory.score_id)
        .where(Score.entry_id == entry.id)
        .order_by(Score.expert_id, ScoreHistory.revision)
    )
    return [
        {
            "expert_id": expert_id,
            "revision": h.revision,
            "scores": h.scores,
            "total": h.total,
            "comment": h.comment,
            "recorded_at": h.recorded_at,
        }
        for h, expert_id in rows
    ]


def progress(campaign: Campaign) -> dict[str, Any]:
    min_reviews = int(campaign.rules.review.min_reviews)
    counts = dict(
        db.session.execute(
            select(Score.entry_id, func.count())
            .where(Score.campaign_id == campaign.id)
            .group_by(Score.entry_id)
        ).all()
    )
    entries = db.session.scalars(
        select(Entry).where(Entry.campaign_id == campaign.id).order_by(Entry.code)
    ).all()
    experts = list_experts(campaign)
    done = dict(
        db.session.execute(
            select(Score.expert_id, func.count())
            .where(Score.campaign_id == campaign.id)
            .group_by(Score.expert_id)
        ).all()
    )
    expert_rows = []
    for expert in experts:
        assigned = _assigned_ids(expert)
        to_score = [
            e
            for e in entries
            if (not assigned or e.id in assigned) and not is_recused(campaign, expert, e)
        ]
        expert_rows.append(
            {
                "id": expert.id,
                "name": expert.name,
                "area": expert.area,
                "revoked": expert.revoked_at is not None,
                "done": done.get(expert.id, 0),
                "assigned": len(to_score),
            }
        )
    entry_rows = [
        {
            "code": e.code,
            "title": e.title,
            "reviews": counts.get(e.id, 0),
            "min_reviews_met": counts.get(e.id, 0) >= min_reviews,
        }
        for e in entries
    ]
    return {
        "campaign": campaign.slug,
        "min_reviews": min_reviews,
        "entries_complete": sum(r["min_reviews_met"] for r in entry_rows),
        "entries": entry_rows,
        "experts": expert_rows,
        "turnout": turnout(campaign),
        "infeasible": infeasible(campaign),
    }
