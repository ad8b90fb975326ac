from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model
from ._types import UTCDateTime, utcnow


class SmsVerification(Model):
    """One SMS one-time code, bound to a campaign and a voter (``voting.verify: sms``).

    The voter appears only as the keyed hash ballots use; the code only as
    HMAC(SECRET_KEY, id ":" code). ``used_at`` is set in the transaction that inserts the
    ballot, by a conditional update, so one code can carry one ballot only.
    """

    __tablename__ = "sms_verifications"
    __table_args__ = (Index("ix_sms_verifications_voter_created", "voter_key", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    voter_key: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SmsCounter(Model):
    """Codes sent per scope and day: ``campaign:<id>`` (the daily budget) and
    ``number:<voter key>`` (five a day, and the last send for the 60-second resend rule).

    Reserved with a conditional ``UPDATE … WHERE used < limit`` so that concurrent sends
    cannot overshoot a limit.
    """

    __tablename__ = "sms_counters"

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
