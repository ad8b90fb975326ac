"""Plain data types of the ranking engine.

The engine is pure: these types are all it sees. No Flask, no SQLAlchemy, no Redis.
Callers (the ranking job, the pabulib importer, tests) build them from whatever store
they use and get a plain ``dict`` result back (JSON-serialisable, deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .vocabulary import TIE_RULES


@dataclass(frozen=True)
class Entry:
    """One entry (case, building group, project). Position in the list is its index."""

    code: str
    title: str = ""
    category: str | None = None
    area: str | None = None
    cost: float | None = None


@dataclass(frozen=True)
class Approvals:
    """Counted approval ballots in CSR form.

    Ballot ``b`` approves entries ``indices[indptr[b]:indptr[b + 1]]`` (entry positions).
    A million ballots of three choices is two int arrays of a few MB: no per-ballot
    Python objects anywhere in the hot path.
    """

    indptr: np.ndarray  # int64, length n_ballots + 1, starts at 0
    indices: np.ndarray  # int32/int64 entry positions

    @property
    def n_ballots(self) -> int:
        return int(len(self.indptr) - 1)

    @classmethod
    def from_lists(cls, ballots: list[list[int]]) -> Approvals:
        lengths = np.fromiter((len(b) for b in ballots), dtype=np.int64, count=len(ballots))
        indptr = np.zeros(len(ballots) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        flat = [i for b in ballots for i in b]
        return cls(indptr=indptr, indices=np.asarray(flat, dtype=np.int64))


@dataclass(frozen=True)
class Criterion:
    key: str
    max_points: float
    weight: float = 1.0
    label: str = ""


@dataclass(frozen=True)
class Review:
    """One live expert score: points per criterion key."""

    expert: str
    entry: int  # entry position
    scores: dict[str, float]


@dataclass(frozen=True)
class Method:
    """The campaign's ranking, review and selection settings (DESIGN.md names).

    Built from the campaign's typed rules (``CampaignRules.method()`` in
    schemas/rules.py); unknown values are rejected by the schemas before they reach
    the engine, and again by ``rank()``. These defaults are the campaign defaults.
    """

    public_weight: float = 0.3
    expert_weight: float = 0.7
    vote_score: str = "max"  # max | approval_rate | share | rank_points | log
    aggregate: str = "trimmed_mean"  # mean | trimmed_mean | median
    calibration: str = "none"  # none | zscore | additive
    min_reviews: int = 3
    tie_break: tuple[str, ...] = TIE_RULES
    rule: str = "top"  # top | greedy_budget | greedy_budget_no_skip | equal_shares
    winners: int | None = None
    budget: float | None = None
    categories: dict[str, dict[str, int | None]] = field(default_factory=dict)  # {cat: {min, max}}
    max_per_area: int | None = None
    award: str | None = None  # label for selected rows; default: the category (if quotas)
    min_votes: int = 0  # entries with fewer votes cannot be selected (pabulib's threshold)


class RankingError(ValueError):
    """A method the data cannot satisfy (impossible quotas, disconnected calibration
    graph, a budget rule without a budget...). ``code`` is a stable snake_case string."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
