from __future__ import annotations

from sqlalchemy import select, update

from .. import hotcache
from ..auth import hash_token, issue_token, new_token
from ..clock import now
from ..errors import ApiError
from ..extensions import db
from ..models import ApiToken, Kiosk, KioskSession
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
        db.session.execute(
            update(KioskSession)
            .where(KioskSession.kiosk_id == kiosk_id, KioskSession.revoked_at.is_(None))
            .values(revoked_at=now())
        )
        audit("kiosk.revoke", actor, kiosk_id=kiosk_id)
        hotcache.changed(db.session)  # every process's token and cookie caches, on commit


def open_browser_session(kiosk: Kiosk) -> str:
    """Enrol a browser: a new random credential for its cookie (the caller commits).

    It is not the kiosk's API token: it is accepted by the HTML voting form only, so a
    cookie copied off an unattended kiosk cannot post to the JSON API or upload batches.
    """
    secret = new_token("ksb")
    db.session.add(
        KioskSession(kiosk_id=kiosk.id, secret_hash=hash_token(secret), created_at=now())
    )
    audit("kiosk.enrol_browser", f"kiosk:{kiosk.id}", kiosk_id=kiosk.id)
    return secret


def kiosk_for_browser(secret: str | None) -> Kiosk | None:
    """The live kiosk an enrolled browser's cookie belongs to, or None."""
    if not secret:
        return None
    return db.session.scalar(
        select(Kiosk)
        .join(KioskSession, KioskSession.kiosk_id == Kiosk.id)
        .where(
            KioskSession.secret_hash == hash_token(secret),
            KioskSession.revoked_at.is_(None),
            Kiosk.revoked_at.is_(None),
        )
    )
