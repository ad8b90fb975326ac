from __future__ import annotations

from sqlalchemy import select, update

from ..auth import issue_token
from ..clock import now
from ..errors import ApiError
from ..extensions import db
from ..models import ApiToken, Kiosk
from .audit import audit


def register_kiosk(name: str, location: str | None, actor: str) -> tuple[Kiosk, str]:
    kiosk = Kiosk(name=name, location=location, created_at=now())
    db.session.add(kiosk)
    db.session.flush()
    token = issue_token("kiosk", name=name, kiosk_id=kiosk.id)
    audit("kiosk.register", actor, kiosk_id=kiosk.id, name=name)
    return kiosk, token


def list_kiosks() -> list[Kiosk]:
    return list(db.session.scalars(select(Kiosk).order_by(Kiosk.id)))


def revoke_kiosk(kiosk_id: int, actor: str) -> None:
    kiosk = db.session.get(Kiosk, kiosk_id)
    if kiosk is None:
        raise ApiError(404, "not_found", f"终端不存在 / No kiosk {kiosk_id}")
    if kiosk.revoked_at is None:
        kiosk.revoked_at = now()
        db.session.execute(
            update(ApiToken)
            .where(ApiToken.kiosk_id == kiosk_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now())
        )
        audit("kiosk.revoke", actor, kiosk_id=kiosk_id)
