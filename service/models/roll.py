from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model
from ._types import UTCDateTime, utcnow


class RollVoter(Model):
    """One voter on a campaign's electoral roll, as the same keyed hash as a ballot's
    ``voter_key`` (the identifier itself is never stored). The primary key is the one
    indexed lookup a ballot costs when the campaign votes by roll."""

    __tablename__ = "roll_voters"
    __table_args__ = (Index("ix_roll_voters_campaign_area", "campaign_id", "area"),)

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    voter_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    area: Mapped[str | None] = mapped_column(String(100))
    grid: Mapped[str | None] = mapped_column(String(100))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
