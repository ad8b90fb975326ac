from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import Model
from ._types import UTCDateTime, utcnow


class RankingRun(Model):
    """An immutable computation over a frozen input set."""

    __tablename__ = "ranking_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="queued")
    trigger: Mapped[str] = mapped_column(String(32), default="manual")
    job_id: Mapped[str | None] = mapped_column(String(64))
    input_digest: Mapped[str | None] = mapped_column(String(64))
    ballots_root: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Publication(Model):
    """A versioned, immutable result document."""

    __tablename__ = "publications"
    __table_args__ = (
        UniqueConstraint("campaign_id", "version", name="uq_publications_campaign_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str] = mapped_column(ForeignKey("ranking_runs.id"))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NightlyMark(Model):
    """One row per campaign-local day: makes a second nightly run that day a no-op."""

    __tablename__ = "nightly_marks"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Added for receipts after publication (see engine/merkle.py): a run stores its counted
# receipts in Merkle-aligned chunks, so an inclusion proof reads one chunk and the chunk
# roots instead of rehashing every counted ballot per request.
class MerkleChunk(Model):
    """``CHUNK`` consecutive leaves of a run's ballot tree: their receipts and root."""

    __tablename__ = "merkle_chunks"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("ranking_runs.id", ondelete="CASCADE"), primary_key=True
    )
    chunk_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_receipt: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    receipts: Mapped[str] = mapped_column(Text)  # newline-separated, in leaf order
    root: Mapped[str] = mapped_column(String(64))  # hex


# One publication per run: a publish job retried after a crash finds the first one.
Index("uq_publications_run_id", Publication.run_id, unique=True)
