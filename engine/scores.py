"""Vote counts and vote scores (DESIGN.md "Ranking method").

Everything here is vectorised: a million ballots is a few million ints and one
``np.bincount``; there is no per-ballot Python code.
"""

from __future__ import annotations

import numpy as np

from .types import Approvals, RankingError
from .vocabulary import VOTE_SCORES


def vote_counts(approvals: Approvals, n_entries: int) -> np.ndarray:
    """Counted ballots approving each entry (int64 array of length ``n_entries``).

    Raises ``RankingError("invalid_approvals")`` when the CSR arrays are inconsistent or
    name an entry position outside ``[0, n_entries)``: a silently dropped or misplaced
    vote would change a published result.
    """
    indptr = np.asarray(approvals.indptr)
    indices = np.asarray(approvals.indices)
    if indptr.ndim != 1 or len(indptr) < 1:
        raise RankingError(
            "invalid_approvals", "indptr must be a 1-D array of length n_ballots + 1"
        )
    if int(indptr[0]) != 0 or int(indptr[-1]) != len(indices):
        raise RankingError(
            "invalid_approvals",
            "indptr must start at 0 and end at len(indices)",
            {
                "indptr_first": int(indptr[0]),
                "indptr_last": int(indptr[-1]),
                "n_indices": int(len(indices)),
            },
        )
    if len(indptr) > 1 and np.any(np.diff(indptr) < 0):
        raise RankingError("invalid_approvals", "indptr must be non-decreasing")
    if len(indices) == 0:
        return np.zeros(n_entries, dtype=np.int64)
    lo, hi = int(indices.min()), int(indices.max())
    if lo < 0 or hi >= n_entries:
        raise RankingError(
            "invalid_approvals",
            "a ballot approves an entry position outside the entry list",
            {"min_index": lo, "max_index": hi, "n_entries": n_entries},
        )
    return np.bincount(indices, minlength=n_entries).astype(np.int64, copy=False)


def vote_scores(counts: np.ndarray, n_ballots: int, kind: str = "max") -> np.ndarray:
    """Vote score ``V_i`` on a 0..100 scale from vote counts ``v_i``.

    - ``max``: ``100 · v_i / max_j v_j`` (published Chinese practice, the default).
    - ``approval_rate``: ``100 · v_i / #ballots``.
    - ``share``: ``100 · v_i / Σ_j v_j``.
    - ``rank_points``: purely ordinal. Entries are ranked by votes with competition
      ranking ("1224": ``rank_i = 1 + #{j : v_j > v_i}``), and
      ``V_i = 100 · (n - rank_i) / (n - 1)``. The most voted entry gets 100, the least
      voted gets 0 unless it shares its votes with a better-ranked entry; tied entries
      get the same points. With a single entry, ``V = 100``.
    - ``log``: ``100 · log(1 + v_i) / log(1 + max_j v_j)``; damps landslides.

    Whenever there is no vote information at all (no ballots, or every count zero) every
    score is 0 — including ``rank_points`` — so that an entry never gains points from
    an empty vote.
    """
    v = np.asarray(counts, dtype=np.float64)
    n = len(v)
    if kind not in VOTE_SCORES:
        raise RankingError(
            "invalid_method", f"unknown vote_score {kind!r}", {"allowed": list(VOTE_SCORES)}
        )
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    top = float(v.max())
    if top <= 0:
        return np.zeros(n, dtype=np.float64)
    if kind == "max":
        return 100.0 * v / top
    if kind == "approval_rate":
        return 100.0 * v / n_ballots if n_ballots > 0 else np.zeros(n, dtype=np.float64)
    if kind == "share":
        return 100.0 * v / float(v.sum())
    if kind == "log":
        return 100.0 * np.log1p(v) / np.log1p(top)
    # rank_points: #{j : v_j > v_i} via a sorted copy, O(n log n) rather than O(n^2).
    if n == 1:
        return np.full(1, 100.0)
    ascending = np.sort(v)
    strictly_more = n - np.searchsorted(ascending, v, side="right")
    rank = 1 + strictly_more
    return 100.0 * (n - rank) / (n - 1)
