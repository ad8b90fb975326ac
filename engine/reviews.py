"""Expert review scores: per-review rubric score, calibration and per-entry aggregation.

Review counts are small (an expert panel scores tens to hundreds of entries), so plain
Python per review is fine here; the only linear algebra is the additive bias model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .types import Criterion, RankingError, Review
from .vocabulary import AGGREGATES, CALIBRATIONS, PARAM_DECIMALS, TRIM_MIN_REVIEWS


def criteria_by_key(criteria: Sequence[Criterion]) -> dict[str, Criterion]:
    """Index the rubric by key, rejecting a rubric that cannot produce a 0..100 score."""
    by_key: dict[str, Criterion] = {}
    for c in criteria:
        if c.key in by_key:
            raise RankingError(
                "invalid_criteria", f"duplicate criterion key {c.key!r}", {"criterion": c.key}
            )
        if not (math.isfinite(c.max_points) and c.max_points > 0):
            raise RankingError(
                "invalid_criteria",
                f"criterion {c.key!r} needs max_points > 0",
                {"criterion": c.key, "max_points": c.max_points},
            )
        if not (math.isfinite(c.weight) and c.weight >= 0):
            raise RankingError(
                "invalid_criteria",
                f"criterion {c.key!r} needs weight >= 0",
                {"criterion": c.key, "weight": c.weight},
            )
        by_key[c.key] = c
    if by_key and sum(c.weight * c.max_points for c in by_key.values()) <= 0:
        raise RankingError("invalid_criteria", "all criterion weights are zero")
    return by_key


def review_score(review: Review, criteria: Mapping[str, Criterion]) -> float:
    """``S = 100 · Σ_c w_c·s_c / Σ_c w_c·max_c`` for one review.

    Every rubric criterion must be scored and nothing else: a partial review would be
    scored against a different denominator than its peers. Violations raise
    ``RankingError("invalid_review")`` naming the expert, entry and criterion.
    """
    where = {"expert": review.expert, "entry": review.entry}
    if not criteria:
        raise RankingError("invalid_review", "a review was given but the rubric is empty", where)
    unknown = sorted(set(review.scores) - set(criteria))
    if unknown:
        raise RankingError(
            "invalid_review",
            f"unknown criterion {unknown[0]!r}",
            {**where, "criterion": unknown[0]},
        )
    missing = sorted(set(criteria) - set(review.scores))
    if missing:
        raise RankingError(
            "invalid_review",
            f"missing criterion {missing[0]!r}",
            {**where, "criterion": missing[0]},
        )
    num = 0.0
    den = 0.0
    for key, crit in criteria.items():
        points = review.scores[key]
        if (
            isinstance(points, bool)
            or not isinstance(points, (int, float, np.number))
            or not math.isfinite(points)
            or points < 0
            or points > crit.max_points
        ):
            raise RankingError(
                "invalid_review",
                f"points for {key!r} must be between 0 and {crit.max_points}",
                {**where, "criterion": key, "points": repr(points), "max_points": crit.max_points},
            )
        num += crit.weight * float(points)
        den += crit.weight * crit.max_points
    return 100.0 * num / den


def review_scores(
    reviews: Sequence[Review], criteria: Sequence[Criterion], n_entries: int
) -> np.ndarray:
    """Validated per-review scores ``S`` (float array aligned with ``reviews``).

    Also rejects reviews of unknown entry positions and a second live review by the same
    expert of the same entry (DESIGN.md: one live score per expert and entry).
    """
    by_key = criteria_by_key(criteria) if reviews else {}
    seen: set[tuple[str, int]] = set()
    out = np.empty(len(reviews), dtype=np.float64)
    for k, r in enumerate(reviews):
        if not (isinstance(r.entry, (int, np.integer)) and 0 <= r.entry < n_entries):
            raise RankingError(
                "invalid_review",
                "review of an unknown entry",
                {"expert": r.expert, "entry": repr(r.entry)},
            )
        pair = (r.expert, int(r.entry))
        if pair in seen:
            raise RankingError(
                "invalid_review",
                "two live reviews by one expert of one entry",
                {"expert": r.expert, "entry": int(r.entry)},
            )
        seen.add(pair)
        out[k] = review_score(r, by_key)
    return out


# z = 0 for an expert whose population std is at most this (float noise in equal scores).
FLAT_STD = 1e-12
CALIBRATED_CLIP = (0.0, 100.0)


def calibrate(
    scores: np.ndarray,
    experts: Sequence[str],
    entries: Sequence[int],
    how: str = "none",
    entry_codes: Sequence[str] | None = None,
) -> np.ndarray:
    """Calibrated per-review scores, aligned with ``scores``, clipped to ``[0, 100]``.

    - ``none``: unchanged.
    - ``zscore``: per expert ``z = (S - mean_e) / std_e`` (population std, ddof=0),
      mapped back onto the whole panel's scale as ``panel_mean + z · panel_std`` (panel
      mean/std over all reviews pooled, ddof=0), clipped to ``[0, 100]``. An expert whose
      scores have no spread — a single review, or identical scores — tells us their
      personal level but nothing about relative quality, so ``z = 0`` and each of their
      reviews maps to the panel mean.
    - ``additive``: least-squares fit of ``S_ei = v_i + b_e + ε`` with ``Σ_e b_e = 0``
      (the constraint pins the otherwise free shift between ``v`` and ``b``); the
      calibrated score is ``S_ei - b_e``, clipped to ``[0, 100]``. The fit is only
      identifiable when the bipartite expert–entry graph is connected; otherwise
      ``RankingError("calibration_graph_disconnected")`` lists the components. Entries
      without any review are not nodes of that graph (they have nothing to calibrate).
      With the ``mean`` aggregate, an entry's calibrated mean equals its fitted ``v_i``
      (before clipping); with ``median`` or ``trimmed_mean`` it generally does not.
    """
    return calibrate_detail(scores, experts, entries, how, entry_codes)[0]


def calibrate_detail(
    scores: np.ndarray,
    experts: Sequence[str],
    entries: Sequence[int],
    how: str = "none",
    entry_codes: Sequence[str] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``calibrate`` plus the parameters an outsider needs to redo it (JSON-ready).

    - ``none``: ``{"how": "none"}``;
    - ``zscore``: ``{"how", "panel": {reviews, mean, std}, "experts": {id: {reviews,
      mean, std, flat}}}`` (population standard deviations; ``flat`` means z = 0);
    - ``additive``: ``{"how", "experts": {id: {reviews, bias}}, "values": {code:
      value_i}}`` (``values`` only for reviewed entries).

    Parameters are rounded to ``PARAM_DECIMALS`` for publication; the scores returned
    are computed from the unrounded ones.
    """
    s = np.asarray(scores, dtype=np.float64)
    if how not in CALIBRATIONS:
        raise RankingError(
            "invalid_method", f"unknown calibration {how!r}", {"allowed": list(CALIBRATIONS)}
        )
    if how == "none" or len(s) == 0:
        return s.copy(), {"how": how}
    expert_ids, e_idx = np.unique(
        np.asarray(experts, dtype=object).astype(str), return_inverse=True
    )
    if how == "zscore":
        return _zscore(s, e_idx, expert_ids)
    return _additive(s, e_idx, expert_ids, np.asarray(entries, dtype=np.int64), entry_codes)


def _param(x: float) -> float:
    return round(float(x), PARAM_DECIMALS) + 0.0


def _zscore(
    s: np.ndarray, e_idx: np.ndarray, expert_ids: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    m = len(expert_ids)
    count = np.bincount(e_idx, minlength=m).astype(np.float64)
    mean_e = np.bincount(e_idx, weights=s, minlength=m) / count
    dev = s - mean_e[e_idx]
    std_e = np.sqrt(np.bincount(e_idx, weights=dev * dev, minlength=m) / count)
    std_r = std_e[e_idx]
    # Tolerance rather than == 0 so float noise in identical scores cannot blow up z.
    flat = std_r <= FLAT_STD
    z = np.where(flat, 0.0, dev / np.where(flat, 1.0, std_r))
    panel_mean = float(s.mean())
    panel_std = float(s.std())
    params = {
        "how": "zscore",
        "panel": {"reviews": len(s), "mean": _param(panel_mean), "std": _param(panel_std)},
        "experts": {
            str(expert_ids[e]): {
                "reviews": int(count[e]),
                "mean": _param(mean_e[e]),
                "std": _param(std_e[e]),
                "flat": bool(std_e[e] <= FLAT_STD),
            }
            for e in range(m)
        },
    }
    return np.clip(panel_mean + z * panel_std, *CALIBRATED_CLIP), params


def _components(e_idx: np.ndarray, i_idx: np.ndarray, m: int, k: int) -> list[int]:
    """Union-find over experts (0..m-1) and entries (m..m+k-1); returns each node's root."""
    parent = list(range(m + k))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e, i in zip(e_idx.tolist(), i_idx.tolist(), strict=True):
        a, b = find(e), find(m + i)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [find(x) for x in range(m + k)]


def _additive(
    s: np.ndarray,
    e_idx: np.ndarray,
    expert_ids: np.ndarray,
    entries: np.ndarray,
    entry_codes: Sequence[str] | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    m = len(expert_ids)
    entry_ids, i_idx = np.unique(entries, return_inverse=True)
    k = len(entry_ids)
    roots = _components(e_idx, i_idx, m, k)
    if len(set(roots)) > 1:
        comps: dict[int, dict[str, list[str]]] = {}
        for node, root in enumerate(roots):
            comp = comps.setdefault(root, {"experts": [], "entries": []})
            if node < m:
                comp["experts"].append(str(expert_ids[node]))
            else:
                pos = int(entry_ids[node - m])
                comp["entries"].append(entry_codes[pos] if entry_codes is not None else str(pos))
        listing = sorted(
            (
                {"experts": sorted(c["experts"]), "entries": sorted(c["entries"])}
                for c in comps.values()
            ),
            key=lambda c: (c["experts"], c["entries"]),
        )
        raise RankingError(
            "calibration_graph_disconnected",
            f"additive calibration needs every expert linked to every other through shared "
            f"entries; the panel splits into {len(listing)} groups",
            {"components": listing},
        )
    # Normal equations with a Lagrange multiplier for Σ b_e = 0. Unknowns: v (k entries),
    # b (m experts), λ. Built with bincount/add.at so the size is (k+m+1)^2, not reviews^2.
    size = k + m + 1
    a = np.zeros((size, size), dtype=np.float64)
    rhs = np.zeros(size, dtype=np.float64)
    vi = i_idx
    be = k + e_idx
    a[np.arange(k), np.arange(k)] = np.bincount(vi, minlength=k)
    a[k + np.arange(m), k + np.arange(m)] = np.bincount(e_idx, minlength=m)
    np.add.at(a, (vi, be), 1.0)
    np.add.at(a, (be, vi), 1.0)
    rhs[:k] = np.bincount(vi, weights=s, minlength=k)
    rhs[k : k + m] = np.bincount(e_idx, weights=s, minlength=m)
    a[k : k + m, size - 1] = 1.0
    a[size - 1, k : k + m] = 1.0
    sol = np.linalg.solve(a, rhs)
    value = sol[:k]
    bias = sol[k : k + m]
    count = np.bincount(e_idx, minlength=m)
    params = {
        "how": "additive",
        "experts": {
            str(expert_ids[e]): {"reviews": int(count[e]), "bias": _param(bias[e])}
            for e in range(m)
        },
        "values": {
            (entry_codes[int(entry_ids[j])] if entry_codes is not None else str(entry_ids[j])): (
                _param(value[j])
            )
            for j in range(k)
        },
    }
    return np.clip(s - bias[e_idx], *CALIBRATED_CLIP), params


def aggregate(
    scores: Sequence[float], experts: Sequence[str], how: str = "trimmed_mean"
) -> tuple[float, list[str]]:
    """Entry score ``E`` from its (calibrated) review scores, and the experts dropped.

    - ``mean``; ``median`` (mean of the two middle values for an even count);
    - ``trimmed_mean``: with at least 5 reviews drop one highest and one lowest review
      and average the rest; with fewer, the plain mean (nothing dropped).

    Which of several equal extremes is dropped does not change ``E``; for a stable
    published list we order by (score, expert id) and drop the first and the last.
    No review gives ``E = 0`` (DESIGN.md).
    """
    if how not in AGGREGATES:
        raise RankingError(
            "invalid_method", f"unknown aggregate {how!r}", {"allowed": list(AGGREGATES)}
        )
    n = len(scores)
    if n == 0:
        return 0.0, []
    if how == "median":
        return float(np.median(np.asarray(scores, dtype=np.float64))), []
    if how == "trimmed_mean" and n >= TRIM_MIN_REVIEWS:
        order = sorted(range(n), key=lambda j: (float(scores[j]), str(experts[j])))
        kept = [float(scores[j]) for j in order[1:-1]]
        return math.fsum(kept) / len(kept), [str(experts[order[0]]), str(experts[order[-1]])]
    return math.fsum(float(x) for x in scores) / n, []
