from typing import Any

from ..extensions import db
from ..models import AuditEvent


def audit(action: str, actor: str, campaign_id: int | None = None, **details: Any) -> None:
    """Record an audit event in the caller's transaction (the request commits)."""
    db.session.add(AuditEvent(campaign_id=campaign_id, actor=actor, action=action, details=details))
