from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import Model
from ._types import UTCDateTime, utcnow


class Kiosk(Model):
    __tablename__ = "kiosks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class KioskSession(Model):
    """A browser enrolled as a kiosk. Its cookie holds a random secret of its own (only the
    SHA-256 is stored), accepted by the HTML voting form only, never by the JSON API; it
    stops when the kiosk is revoked."""

    __tablename__ = "kiosk_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kiosk_id: Mapped[int] = mapped_column(ForeignKey("kiosks.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Ballot(Model):
    """An accepted approval ballot. The voter appears only as a keyed hash.

    Dedup is settled by ``uq_ballots_voter_slot``: ``dedup_slot`` is ``"once"`` for
    one ballot per campaign, or the campaign-local date for ``limit: daily``; two
    concurrent ballots of one voter cannot both commit.
    """

    __tablename__ = "ballots"
    __table_args__ = (
        UniqueConstraint("campaign_id", "voter_key", "dedup_slot", name="uq_ballots_voter_slot"),
        Index("ix_ballots_kiosk_accepted", "kiosk_id", "accepted_at"),
        Index("ix_ballots_campaign_client_accepted", "campaign_id", "client_hash", "accepted_at"),
        Index("ix_ballots_campaign_subnet_accepted", "campaign_id", "subnet_hash", "accepted_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the client's ballot_id
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    voter_key: Mapped[str] = mapped_column(String(64))
    dedup_slot: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(10))
    kiosk_id: Mapped[int | None] = mapped_column(ForeignKey("kiosks.id"), index=True)
    cast_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    content_digest: Mapped[str] = mapped_column(String(64))
    receipt: Mapped[str] = mapped_column(String(32), unique=True)
    nonce: Mapped[str] = mapped_column(String(32))
    flagged: Mapped[str | None] = mapped_column(String(64))
    # Web ballots: keyed hashes of the client address and of its /24 or /64 (never the
    # address itself; service/domain/web_flags.py).
    client_hash: Mapped[str | None] = mapped_column(String(64))
    subnet_hash: Mapped[str | None] = mapped_column(String(64))
    # Written at ingest with the row, for the ranking run (service/domain/rankings.py),
    # which then reads one row per ballot and joins nothing: ``leaf`` is the ballot's
    # Merkle leaf hash, SHA-256(0x00 ‖ receipt) (engine/merkle.py); ``choice_ids`` the
    # ids of its ballot_choices rows, ascending, as big-endian int32 (4 bytes each).
    # NULL only for a row written by another path; a run then reads the joined rows.
    leaf: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    choice_ids: Mapped[bytes | None] = mapped_column(LargeBinary)

    choices: Mapped[list[BallotChoice]] = relationship(
        back_populates="ballot", cascade="all, delete-orphan"
    )


class BallotChoice(Model):
    """One approved entry. The primary key forbids an entry twice in one ballot."""

    __tablename__ = "ballot_choices"
    __table_args__ = (Index("ix_ballot_choices_campaign_entry", "campaign_id", "entry_id"),)

    ballot_id: Mapped[str] = mapped_column(
        ForeignKey("ballots.id", ondelete="CASCADE"), primary_key=True
    )
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))

    ballot: Mapped[Ballot] = relationship(back_populates="choices")


class Exclusion(Model):
    """An explicit, audited, reversible exclusion of a ballot from the count."""

    __tablename__ = "exclusions"
    __table_args__ = (Index("ix_exclusions_campaign_ballot", "campaign_id", "ballot_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    ballot_id: Mapped[str] = mapped_column(ForeignKey("ballots.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
