"""Pure ranking engine: vote scores, expert reviews, combination, ties and selection."""

from .engine import rank
from .types import Approvals, Criterion, Entry, Method, RankingError, Review

__all__ = ["Approvals", "Criterion", "Entry", "Method", "RankingError", "Review", "rank"]
