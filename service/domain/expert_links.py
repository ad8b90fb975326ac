"""Experts' personal links for the console: absolute, and re-issued on demand."""

from __future__ import annotations

from sqlalchemy import update

from ..auth import issue_token
from ..clock import now
from ..errors import ApiError
from ..extensions import db
from ..models import ApiToken, Campaign, Expert
from .audit import audit


def review_path(slug: str, token: str) -> str:
    return f"/review/{slug}/login?token={token}"


def reissue_expert_token(campaign: Campaign, expert: Expert, actor: str) -> str:
    """A new token (and link) for the expert; every earlier one stops working."""
    if expert.revoked_at is not None:
        raise ApiError(409, "expert_revoked", "该专家已撤销 / the expert was withdrawn")
    db.session.execute(
        update(ApiToken)
        .where(ApiToken.expert_id == expert.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now())
    )
    token = issue_token("expert", name=expert.name, expert_id=expert.id)
    audit("expert.new_link", actor, campaign.id, expert_id=expert.id)
    return token
