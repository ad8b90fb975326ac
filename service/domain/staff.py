"""Staff accounts for the office console: accounts, one-time links, password log-in with
lockout, server-side sessions with idle expiry, and managers' campaign assignments.

Passwords are hashed with werkzeug's scrypt. Secrets (links, session cookies) are random
and stored as SHA-256 only, as the API's bearer tokens are.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from ..auth import hash_token, new_token
from ..clock import now
from ..errors import ApiError
from ..extensions import db
from ..models import Campaign, Kiosk, OneTimeLink, Staff, StaffCampaign, StaffSession
from ..models.staff import STAFF_ROLES
from .audit import audit

LINK_HOURS = 24
MIN_PASSWORD = 10
# A hash to compare against when the name is unknown, so both answers take as long.
_DUMMY_HASH = generate_password_hash("not a password", method="scrypt")


def actor_of(staff: Staff) -> str:
    """The audit log's actor for a staff member."""
    return f"staff:{staff.name}"


def get_staff(staff_id: int) -> Staff:
    staff = db.session.get(Staff, staff_id)
    if staff is None:
        raise ApiError(404, "not_found", f"工作人员不存在 / No staff member {staff_id}")
    return staff


def staff_by_name(name: str) -> Staff | None:
    return db.session.scalar(select(Staff).where(Staff.name == name))


def list_staff() -> list[Staff]:
    return list(db.session.scalars(select(Staff).order_by(Staff.id)))


def add_staff(name: str, role: str, actor: str) -> Staff:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ApiError(
            422,
            "validation_error",
            "姓名须为 1 至 100 个字符 / name must be 1 to 100 characters",
            {"fields": {"name": ["length"]}},
        )
    if role not in STAFF_ROLES:
        raise ApiError(
            422,
            "validation_error",
            f"角色须为 {', '.join(STAFF_ROLES)} 之一 / role must be one of {', '.join(STAFF_ROLES)}",
            {"fields": {"role": [role]}},
        )
    if staff_by_name(name) is not None:
        raise ApiError(409, "name_taken", f"该姓名已有账号 / '{name}' already has an account")
    staff = Staff(name=name, role=role, active=True, failed_logins=0, created_at=now())
    db.session.add(staff)
    db.session.flush()
    audit("staff.add", actor, name=name, role=role)
    return staff


def set_role(staff: Staff, role: str, active: bool, actor: str) -> None:
    if role not in STAFF_ROLES:
        raise ApiError(
            422, "validation_error", "未知角色 / unknown role", {"fields": {"role": [role]}}
        )
    staff.role, staff.active = role, active
    if not active:
        end_sessions(staff)
    audit("staff.update", actor, name=staff.name, role=role, active=active)


# --- one-time links ----------------------------------------------------------------


def _issue_link(purpose: str, *, staff_id=None, kiosk_id=None) -> str:
    token = new_token("otl")
    at = now()
    # An earlier unused link of the same kind stops working: only the newest is valid.
    db.session.execute(
        update(OneTimeLink)
        .where(
            OneTimeLink.purpose == purpose,
            OneTimeLink.used_at.is_(None),
            (OneTimeLink.staff_id == staff_id)
            if staff_id is not None
            else (OneTimeLink.kiosk_id == kiosk_id),
        )
        .values(used_at=at)
    )
    db.session.add(
        OneTimeLink(
            purpose=purpose,
            token_hash=hash_token(token),
            staff_id=staff_id,
            kiosk_id=kiosk_id,
            created_at=at,
            expires_at=at + timedelta(hours=LINK_HOURS),
        )
    )
    return token


def _live_link(purpose: str, token: str | None) -> OneTimeLink | None:
    if not token:
        return None
    link = db.session.scalar(
        select(OneTimeLink).where(
            OneTimeLink.token_hash == hash_token(token), OneTimeLink.purpose == purpose
        )
    )
    if link is None or link.used_at is not None or now() >= link.expires_at:
        return None
    return link


def issue_password_link(staff: Staff, actor: str) -> str:
    """A token for ``/console/set-password/<token>`` (single use, valid 24 h)."""
    token = _issue_link("set_password", staff_id=staff.id)
    audit("staff.password_link", actor, name=staff.name)
    return token


def staff_for_password_link(token: str | None) -> Staff | None:
    link = _live_link("set_password", token)
    if link is None:
        return None
    staff = db.session.get(Staff, link.staff_id)
    return staff if staff is not None and staff.active else None


def check_password_rules(password: str, repeat: str) -> str | None:
    """A message for a password that is refused, or None."""
    if len(password) < MIN_PASSWORD:
        return f"密码至少 {MIN_PASSWORD} 个字符 / at least {MIN_PASSWORD} characters"
    if len(password) > 200:
        return "密码最多 200 个字符 / at most 200 characters"
    if password != repeat:
        return "两次输入的密码不一致 / the two passwords differ"
    return None


def use_password_link(token: str, password: str) -> Staff:
    """Set the password through a live link and spend the link (the caller commits)."""
    link = _live_link("set_password", token)
    staff = db.session.get(Staff, link.staff_id) if link else None
    if link is None or staff is None or not staff.active:
        raise ApiError(403, "invalid_link", "链接无效或已过期 / the link is invalid or expired")
    link.used_at = now()
    staff.password_hash = generate_password_hash(password, method="scrypt")
    staff.failed_logins, staff.locked_until = 0, None
    end_sessions(staff)
    audit("staff.set_password", actor_of(staff), name=staff.name)
    return staff


def issue_kiosk_link(kiosk: Kiosk, actor: str) -> str:
    """A token for ``/kiosk/enrol/link/<token>`` (single use, valid 24 h)."""
    if kiosk.revoked_at is not None:
        raise ApiError(409, "kiosk_revoked", "终端已停用 / the kiosk is revoked")
    token = _issue_link("kiosk_enrol", kiosk_id=kiosk.id)
    audit("kiosk.enrol_link", actor, kiosk_id=kiosk.id)
    return token


def kiosk_for_link(token: str | None) -> Kiosk | None:
    link = _live_link("kiosk_enrol", token)
    if link is None:
        return None
    kiosk = db.session.get(Kiosk, link.kiosk_id)
    return kiosk if kiosk is not None and kiosk.revoked_at is None else None


def spend_kiosk_link(token: str) -> Kiosk:
    """Mark an enrolment link used (the caller opens the browser session and commits)."""
    link = _live_link("kiosk_enrol", token)
    kiosk = db.session.get(Kiosk, link.kiosk_id) if link else None
    if link is None or kiosk is None or kiosk.revoked_at is not None:
        raise ApiError(403, "invalid_link", "链接无效或已过期 / the link is invalid or expired")
    link.used_at = now()
    return kiosk


# --- log-in and sessions -------------------------------------------------------------


def _setting(name: str, default: int) -> int:
    return int(current_app.config.get(name, default))


def authenticate(name: str, password: str) -> Staff:
    """The staff member, or 401 bad_credentials / 423 account_locked (the caller commits
    in both cases, so failures are counted)."""
    staff = staff_by_name((name or "").strip())
    at = now()
    if staff is None or staff.password_hash is None or not staff.active:
        check_password_hash(_DUMMY_HASH, password or "")
        raise ApiError(401, "bad_credentials", "姓名或密码错误 / wrong name or password")
    if staff.locked_until is not None and at < staff.locked_until:
        raise ApiError(
            423,
            "account_locked",
            "多次登录失败，账号已暂时锁定，请稍后再试 / too many failed log-ins: the account "
            "is locked for a while",
            {"locked_until": staff.locked_until.isoformat()},
        )
    if not check_password_hash(staff.password_hash, password or ""):
        staff.failed_logins = (staff.failed_logins or 0) + 1
        if staff.failed_logins >= _setting("CONSOLE_LOCKOUT_FAILURES", 5):
            staff.locked_until = at + timedelta(minutes=_setting("CONSOLE_LOCKOUT_MINUTES", 15))
            staff.failed_logins = 0
            audit("staff.locked", f"staff:{staff.name}", name=staff.name)
        raise ApiError(401, "bad_credentials", "姓名或密码错误 / wrong name or password")
    staff.failed_logins, staff.locked_until, staff.last_login_at = 0, None, at
    return staff


def open_session(staff: Staff) -> str:
    secret = new_token("stf")
    at = now()
    db.session.add(
        StaffSession(
            staff_id=staff.id, secret_hash=hash_token(secret), created_at=at, last_seen_at=at
        )
    )
    audit("staff.login", actor_of(staff), name=staff.name)
    return secret


def _idle_limit() -> timedelta:
    return timedelta(minutes=_setting("CONSOLE_IDLE_MINUTES", 30))


def staff_for_session(secret: str | None) -> tuple[Staff, StaffSession] | None:
    """The live session a cookie names (not revoked, not idle too long, active staff)."""
    if not secret:
        return None
    row = db.session.scalar(
        select(StaffSession).where(
            StaffSession.secret_hash == hash_token(secret), StaffSession.revoked_at.is_(None)
        )
    )
    if row is None or now() - row.last_seen_at >= _idle_limit():
        return None
    staff = db.session.get(Staff, row.staff_id)
    if staff is None or not staff.active:
        return None
    return staff, row


def touch_session(row: StaffSession) -> bool:
    """Move the idle clock; True when the row changed (written at most once a minute)."""
    at = now()
    if at - row.last_seen_at >= timedelta(minutes=1):
        row.last_seen_at = at
        return True
    return False


def close_session(secret: str | None) -> None:
    found = staff_for_session(secret)
    if found is None:
        return
    staff, row = found
    row.revoked_at = now()
    audit("staff.logout", actor_of(staff), name=staff.name)


def end_sessions(staff: Staff) -> None:
    db.session.execute(
        update(StaffSession)
        .where(StaffSession.staff_id == staff.id, StaffSession.revoked_at.is_(None))
        .values(revoked_at=now())
    )


# --- managers' campaigns -------------------------------------------------------------


def managed_campaign_ids(staff: Staff) -> set[int]:
    return set(
        db.session.scalars(
            select(StaffCampaign.campaign_id).where(StaffCampaign.staff_id == staff.id)
        )
    )


def can_see(staff: Staff, campaign: Campaign) -> bool:
    """Admins and observers see every campaign; managers those they are assigned to."""
    return staff.role in ("admin", "observer") or campaign.id in managed_campaign_ids(staff)


def can_change(staff: Staff, campaign: Campaign) -> bool:
    """Admins change everything; managers their campaigns; observers nothing."""
    if staff.role == "admin":
        return True
    return staff.role == "manager" and campaign.id in managed_campaign_ids(staff)


def assign_campaign(staff: Staff, campaign: Campaign, actor: str) -> None:
    if staff.role != "manager":
        raise ApiError(
            422, "not_a_manager", "只有管理员角色 manager 需要分配活动 / only managers are assigned"
        )
    if campaign.id not in managed_campaign_ids(staff):
        db.session.add(StaffCampaign(staff_id=staff.id, campaign_id=campaign.id))
        audit("staff.assign", actor, campaign.id, name=staff.name)


def unassign_campaign(staff: Staff, campaign: Campaign, actor: str) -> None:
    row = db.session.scalar(
        select(StaffCampaign).where(
            StaffCampaign.staff_id == staff.id, StaffCampaign.campaign_id == campaign.id
        )
    )
    if row is not None:
        db.session.delete(row)
        audit("staff.unassign", actor, campaign.id, name=staff.name)
