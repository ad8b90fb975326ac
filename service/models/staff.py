"""Office staff: the people who run campaigns in the browser console (``/console``).

Bearer tokens (``api_tokens``) stay for programs; staff log in with a name and password.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model
from ._types import UTCDateTime, utcnow

STAFF_ROLES = ("admin", "manager", "observer")


class Staff(Model):
    """A staff account. ``password_hash`` is None until the one-time link was used."""

    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'manager', 'observer')", name="ck_staff_role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StaffCampaign(Model):
    """A manager's assignment to a campaign (admins and observers need none)."""

    __tablename__ = "staff_campaigns"
    __table_args__ = (UniqueConstraint("staff_id", "campaign_id", name="uq_staff_campaigns"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )


class StaffSession(Model):
    """A logged-in browser: its cookie holds a random secret (only the SHA-256 is kept).
    Idle sessions expire (``CONSOLE_IDLE_MINUTES``); logout revokes."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OneTimeLink(Model):
    """A single-use link valid for a limited time: a staff member's set-password link
    (``purpose = 'set_password'``) or a kiosk's enrolment link (``'kiosk_enrol'``).
    Only the SHA-256 of the token is stored; the link is shown once."""

    __tablename__ = "one_time_links"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('set_password', 'kiosk_enrol')", name="ck_one_time_links_purpose"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff.id", ondelete="CASCADE"), index=True
    )
    kiosk_id: Mapped[int | None] = mapped_column(
        ForeignKey("kiosks.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
