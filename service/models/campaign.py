from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from schemas.rules import CampaignRules

from ..extensions import Model
from ._types import UTCDateTime, utcnow


class Campaign(Model):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # Rule sections are stored as documents: they are read whole, versioned with the
    # campaign, and frozen into every ranking run.
    voting: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    review: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ranking: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    selection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    results: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rules_locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An explicit draft (created with "draft": true, as the console does): invisible to
    # the public, no voting whatever the dates, everything editable until published.
    draft: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The META section of the pabulib file a campaign was imported from, as [key, value]
    # pairs in file order (a list, so no JSON store can reorder it); None otherwise.
    pb_meta: Mapped[list[list[str]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    entries: Mapped[list[Entry]] = relationship(
        back_populates="campaign", order_by="Entry.code", cascade="all, delete-orphan"
    )
    criteria: Mapped[list[Criterion]] = relationship(
        back_populates="campaign", order_by="Criterion.position", cascade="all, delete-orphan"
    )

    @property
    def rules(self) -> CampaignRules:
        """The rule sections as typed values (schemas/rules.py): read these, never the
        stored dictionaries. Built once per stored documents: a section assigned anew
        (an update) builds new rules on the next read."""
        sections = (self.voting, self.review, self.ranking, self.selection, self.results)
        cached = self.__dict__.get("_rules_cache")
        if cached is not None and all(a is b for a, b in zip(cached[0], sections, strict=True)):
            return cached[1]
        rules = CampaignRules.load(*sections)
        self.__dict__["_rules_cache"] = (sections, rules)
        return rules


class Entry(Model):
    __tablename__ = "entries"
    __table_args__ = (UniqueConstraint("campaign_id", "code", name="uq_entries_campaign_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    area: Mapped[str | None] = mapped_column(String(100))
    grid: Mapped[str | None] = mapped_column(String(100))
    cost: Mapped[float | None] = mapped_column(Numeric(14, 2, asdecimal=False))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    campaign: Mapped[Campaign] = relationship(back_populates="entries")


class Criterion(Model):
    __tablename__ = "criteria"
    __table_args__ = (UniqueConstraint("campaign_id", "key", name="uq_criteria_campaign_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    max_points: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False))
    weight: Mapped[float] = mapped_column(Numeric(10, 4, asdecimal=False), default=1)
    position: Mapped[int] = mapped_column(Integer, default=0)

    campaign: Mapped[Campaign] = relationship(back_populates="criteria")
