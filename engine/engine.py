"""The ranking engine's entry point: combine vote and review scores, break ties, select.

``rank()`` is pure and deterministic: the same input gives a byte-identical
``json.dumps(result, sort_keys=True)``. Floats are compared for ties after rounding to
``TIE_DECIMALS`` (so float noise never decides a tie) and published rounded to
``PUBLISHED_DECIMALS`` (once, when rows are built).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import budget as selection
from .reviews import (
    CALIBRATED_CLIP,
    FLAT_STD,
    aggregate,
    calibrate_detail,
    review_scores,
)
from .scores import vote_counts, vote_scores
from .types import Approvals, Criterion, Entry, Method, RankingError, Review
from .vocabulary import (
    AGGREGATES,
    CALIBRATIONS,
    DEFAULT_AWARD,
    PARAM_DECIMALS,
    PUBLISHED_DECIMALS,
    RULES,
    TIE_DECIMALS,
    TIE_RULES,
    TRIM_MIN_REVIEWS,
    VOTE_SCORES,
)

FLAG_INSUFFICIENT = "insufficient_reviews"
FLAG_BELOW_MIN_VOTES = "below_min_votes"
# Passed over because the remaining seats were reserved for other categories' minima.
FLAG_RESERVED = "seat_reserved_for_quota"
FLAG_AREA_CAP = "area_cap_reached"
FLAG_CATEGORY_MAX = "category_max_reached"
# Greedy budget rules: the entry would fit the remaining budget, but `winners` seats
# were already taken.
FLAG_WINNERS_CAP = "winners_cap_reached"


def rank(
    entries: Sequence[Entry],
    approvals: Approvals,
    reviews: Sequence[Review],
    criteria: Sequence[Criterion],
    method: Method,
    lot_seed: int = 0,
) -> dict[str, Any]:
    """Rank ``entries`` and select winners; returns the JSON-ready result document.

    Raises ``RankingError`` with a stable ``code`` when the input or the method cannot
    be honoured (``invalid_method``, ``invalid_entries``, ``invalid_approvals``,
    ``invalid_review``, ``invalid_criteria``, ``invalid_lot_seed``,
    ``calibration_graph_disconnected``, ``selection_impossible``, ``budget_required``,
    ``cost_required``) — never a silent partial result.
    """
    _validate_method(method)
    if isinstance(lot_seed, bool) or not isinstance(lot_seed, (int, np.integer)) or lot_seed < 0:
        raise RankingError(
            "invalid_lot_seed",
            "lot_seed must be a non-negative integer",
            {"lot_seed": repr(lot_seed)},
        )
    lot_seed = int(lot_seed)
    n = len(entries)
    codes = [e.code for e in entries]
    _validate_entries(entries, codes)

    wp, we = float(method.public_weight), float(method.expert_weight)
    votes = vote_counts(approvals, n)
    v_score = vote_scores(votes, approvals.n_ballots, method.vote_score)

    # Review scores are rounded to the published precision before anything uses them, so
    # the published raw score is exactly what calibration and aggregation started from.
    raw = np.round(review_scores(reviews, criteria, n), PUBLISHED_DECIMALS)
    experts = [str(r.expert) for r in reviews]
    positions = [int(r.entry) for r in reviews]
    calibrated, calibration = calibrate_detail(raw, experts, positions, method.calibration, codes)
    per_entry: list[list[int]] = [[] for _ in range(n)]
    for k, i in enumerate(positions):
        per_entry[i].append(k)
    e_score = np.zeros(n, dtype=np.float64)
    n_reviews = np.zeros(n, dtype=np.int64)
    dropped: list[list[str]] = [[] for _ in range(n)]
    for i, ks in enumerate(per_entry):
        n_reviews[i] = len(ks)
        e_score[i], dropped[i] = aggregate(
            [float(calibrated[k]) for k in ks], [experts[k] for k in ks], method.aggregate
        )

    public_part = wp * v_score
    expert_part = we * e_score
    combined = public_part + expert_part

    order, tie_labels = _order(
        entries, combined, votes, e_score, n_reviews, method.tie_break, lot_seed
    )

    flags: list[list[str]] = [[] for _ in range(n)]
    # Reviews only matter when they weigh in: a vote-only campaign needs none.
    needs_reviews = we > 0
    eligible = [True] * n
    if needs_reviews:
        for i in range(n):
            if n_reviews[i] < method.min_reviews:
                eligible[i] = False
                flags[i].append(FLAG_INSUFFICIENT)

    if method.min_votes:
        for i in range(n):
            if votes[i] < method.min_votes:
                eligible[i] = False
                flags[i].append(FLAG_BELOW_MIN_VOTES)

    notes: list[dict[str, Any]] = []
    if method.rule == "top":
        selected = _select_top(order, entries, eligible, method, flags, notes)
    else:
        selected = _select_budget(order, entries, eligible, approvals, method, notes, flags)
    chosen = set(selected)

    rows = []
    for r, i in enumerate(order):
        e = entries[i]
        is_sel = i in chosen
        rows.append(
            {
                "rank": r + 1,
                "code": e.code,
                "title": e.title,
                "category": e.category,
                "area": e.area,
                # Costs are input money figures, published exactly as given.
                "cost": None if e.cost is None else _plain_number(e.cost),
                "votes": int(votes[i]),
                "vote_score": _pub(v_score[i]),
                "reviews": int(n_reviews[i]),
                "expert_score": _pub(e_score[i]),
                "public_part": _pub(public_part[i]),
                "expert_part": _pub(expert_part[i]),
                "combined": _pub(combined[i]),
                "selected": is_sel,
                "award": _award(e, method) if is_sel else None,
                "tie_break": tie_labels[r],
                "flags": flags[i],
                "dropped_reviews": dropped[i],
                # Calibrated scores by expert (kept for readers of older documents) and
                # the full per-review breakdown an appeal follows.
                "review_scores": {
                    experts[k]: _pub(calibrated[k])
                    for k in sorted(per_entry[i], key=lambda k: experts[k])
                },
                "review_detail": [
                    _review_detail(experts[k], raw[k], calibrated[k], dropped[i], calibration)
                    for k in sorted(per_entry[i], key=lambda k: experts[k])
                ],
            }
        )
    return {
        "method": _method_json(method),
        "calibration": calibration,
        "lot_seed": lot_seed,
        "counts": {"ballots_counted": approvals.n_ballots, "reviews": len(reviews), "entries": n},
        "notes": notes,
        "rows": rows,
    }


# --- validation -----------------------------------------------------------------------


def _validate_method(m: Method) -> None:
    def bad(field: str, message: str, value: Any) -> RankingError:
        return RankingError("invalid_method", message, {"field": field, "value": repr(value)})

    for name, allowed, value in (
        ("vote_score", VOTE_SCORES, m.vote_score),
        ("aggregate", AGGREGATES, m.aggregate),
        ("calibration", CALIBRATIONS, m.calibration),
        ("rule", RULES, m.rule),
    ):
        if value not in allowed:
            raise bad(name, f"{name} must be one of {', '.join(allowed)}", value)
    for name in ("public_weight", "expert_weight"):
        w = getattr(m, name)
        if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise bad(name, f"{name} must be a finite number >= 0", w)
    unknown = [t for t in m.tie_break if t not in TIE_RULES]
    if unknown:
        raise bad("tie_break", f"unknown tie-break rule {unknown[0]!r}", unknown[0])
    for name in ("min_reviews", "winners", "max_per_area"):
        v = getattr(m, name)
        if v is None and name != "min_reviews":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise bad(name, f"{name} must be a non-negative integer", v)
    if m.budget is not None and (
        isinstance(m.budget, bool)
        or not isinstance(m.budget, (int, float))
        or not math.isfinite(m.budget)
        or m.budget < 0
    ):
        raise bad("budget", "budget must be a finite number >= 0", m.budget)
    for cat, q in m.categories.items():
        if not isinstance(q, dict) or set(q) - {"min", "max"}:
            raise bad("categories", f"quota for {cat!r} must be {{min, max}}", q)
        for key in ("min", "max"):
            v = q.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise bad("categories", f"{key} for {cat!r} must be a non-negative integer", v)


def _validate_entries(entries: Sequence[Entry], codes: list[str]) -> None:
    # Codes are the last tie-break and the lot's reference order, so they must be unique.
    seen: set[str] = set()
    for c in codes:
        if c in seen:
            raise RankingError("invalid_entries", f"duplicate entry code {c!r}", {"code": c})
        seen.add(c)
    for e in entries:
        if e.cost is not None and (
            isinstance(e.cost, bool)
            or not isinstance(e.cost, (int, float, np.number))
            or not math.isfinite(e.cost)
            or e.cost < 0
        ):
            raise RankingError(
                "invalid_entries",
                f"cost of {e.code!r} must be a number >= 0",
                {"code": e.code, "cost": repr(e.cost)},
            )


# --- ordering and ties ----------------------------------------------------------------


def lot_positions(codes: Sequence[str], seed: int) -> np.ndarray:
    """Each entry's place in the seeded lot (0 = drawn first).

    The shuffle permutes the entries sorted by code (not their input order), with
    ``np.random.Generator(np.random.PCG64(seed)).permutation``: PCG64 is specified
    bit-for-bit, so anyone can redraw the lot from the published seed. A different seed
    generally gives another order.
    """
    n = len(codes)
    by_code = sorted(range(n), key=lambda i: codes[i])
    drawn = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    pos = np.empty(n, dtype=np.int64)
    for place, k in enumerate(drawn.tolist()):
        pos[by_code[k]] = place
    return pos


def _order(
    entries: Sequence[Entry],
    combined: np.ndarray,
    votes: np.ndarray,
    e_score: np.ndarray,
    n_reviews: np.ndarray,
    chain: Sequence[str],
    seed: int,
) -> tuple[list[int], list[str | None]]:
    """Entry positions best-first, and per rank the rule that separated it from the
    row above (``None`` when not tied with it on the combined score)."""
    n = len(entries)
    c_key = np.round(combined, TIE_DECIMALS)
    e_key = np.round(e_score, TIE_DECIMALS)
    lot = lot_positions([e.code for e in entries], seed) if "lot" in chain else None

    def rule_key(rule: str, i: int) -> Any:
        if rule == "votes":
            return -int(votes[i])
        if rule == "expert":
            return -float(e_key[i])
        if rule == "reviews":
            return -int(n_reviews[i])
        if rule == "cost":
            cost = entries[i].cost
            return (1, 0.0) if cost is None else (0, float(cost))
        assert lot is not None  # "lot" is in the chain
        return int(lot[i])

    keys = [(-float(c_key[i]), *(rule_key(r, i) for r in chain), entries[i].code) for i in range(n)]
    order = sorted(range(n), key=keys.__getitem__)
    labels: list[str | None] = [None] * n
    for r in range(1, n):
        a, b = keys[order[r - 1]], keys[order[r]]
        if a[0] != b[0]:
            continue
        labels[r] = "code"
        for j, rule in enumerate(chain, start=1):
            if a[j] != b[j]:
                labels[r] = rule
                break
    return order, labels


# --- selection ------------------------------------------------------------------------


def _select_top(
    order: list[int],
    entries: Sequence[Entry],
    eligible: list[bool],
    m: Method,
    flags: list[list[str]],
    notes: list[dict[str, Any]],
) -> list[int]:
    """Top-N with category quotas (minima reserved first) and a cap per area.

    ``winners=None`` means the campaign ranks without selecting: nothing is selected and
    a ``no_selection`` note says so. Minima are reserved by walking the ranking once and
    taking, for each category still below its minimum, its best eligible entries (within
    the area cap); the remaining seats are then filled in rank order within each
    category's maximum and the area cap. If fewer entries can be selected than seats,
    all that can be are selected and a ``seats_unfilled`` note records the shortfall.
    """
    if m.winners is None:
        notes.append(
            {
                "code": "no_selection",
                "message": "selection.winners is not set: ranking only, nothing selected",
                "details": {},
            }
        )
        return []
    winners = m.winners
    quotas = {cat: (int(q.get("min") or 0), q.get("max")) for cat, q in m.categories.items()}
    cap = m.max_per_area

    cat: str | None  # a quota's category, then an entry's (which may have none)
    for cat, (lo, hi) in sorted(quotas.items()):
        if hi is not None and lo > hi:
            raise RankingError(
                "selection_impossible",
                f"category {cat!r} has min {lo} above its max {hi}",
                {"category": cat, "min": lo, "max": hi},
            )
    total_min = sum(lo for lo, _ in quotas.values())
    if total_min > winners:
        raise RankingError(
            "selection_impossible",
            f"the category minima add up to {total_min}, more than the {winners} seats",
            {
                "winners": winners,
                "sum_of_minima": total_min,
                "minima": {c: lo for c, (lo, _) in sorted(quotas.items())},
            },
        )
    for cat, (lo, _) in sorted(quotas.items()):
        available = sum(1 for i in order if eligible[i] and entries[i].category == cat)
        if available < lo:
            raise RankingError(
                "selection_impossible",
                f"category {cat!r} needs {lo} winners but has only {available} eligible entries",
                {"category": cat, "min": lo, "eligible": available},
            )

    chosen: list[int] = []
    taken: set[int] = set()
    per_cat: dict[str, int] = {}
    per_area: dict[str, int] = {}

    def area_full(i: int) -> bool:
        area = entries[i].area
        return cap is not None and area is not None and per_area.get(area, 0) >= cap

    def take(i: int) -> None:
        chosen.append(i)
        taken.add(i)
        cat, area = entries[i].category, entries[i].area
        if cat is not None:
            per_cat[cat] = per_cat.get(cat, 0) + 1
        if area is not None:
            per_area[area] = per_area.get(area, 0) + 1

    for i in order:
        cat = entries[i].category
        if (
            eligible[i]
            and cat in quotas
            and per_cat.get(cat, 0) < quotas[cat][0]
            and not area_full(i)
        ):
            take(i)
    short = {
        cat: {"min": lo, "reserved": per_cat.get(cat, 0)}
        for cat, (lo, _) in sorted(quotas.items())
        if per_cat.get(cat, 0) < lo
    }
    if short:
        raise RankingError(
            "selection_impossible",
            "the area cap leaves too few entries to meet the category minima "
            "(minima are reserved greedily in rank order)",
            {"max_per_area": cap, "categories": short},
        )

    for i in order:
        if len(chosen) >= winners:
            break
        if i in taken or not eligible[i]:
            continue
        cat = entries[i].category
        if cat in quotas and (most := quotas[cat][1]) is not None and per_cat.get(cat, 0) >= most:
            flags[i].append(FLAG_CATEGORY_MAX)
            continue
        if area_full(i):
            flags[i].append(FLAG_AREA_CAP)
            continue
        take(i)

    # Explain every eligible entry left out above the last winner: a reader of the table
    # must see why it lost its seat (the fill loop may stop before reaching it when the
    # reserved minima took every seat).
    if chosen:
        rank_of = {i: k for k, i in enumerate(order)}
        last = max(rank_of[i] for i in chosen)
        for i in order[:last]:
            if i in taken or not eligible[i] or flags[i]:
                continue
            cat = entries[i].category
            if (
                cat in quotas
                and (most := quotas[cat][1]) is not None
                and per_cat.get(cat, 0) >= most
            ):
                flags[i].append(FLAG_CATEGORY_MAX)
            elif area_full(i):
                flags[i].append(FLAG_AREA_CAP)
            else:
                flags[i].append(FLAG_RESERVED)

    if len(chosen) < winners:
        notes.append(
            {
                "code": "seats_unfilled",
                "message": f"only {len(chosen)} of {winners} seats could be filled",
                "details": {"winners": winners, "selected": len(chosen), "eligible": sum(eligible)},
            }
        )
    return chosen


def _select_budget(
    order: list[int],
    entries: Sequence[Entry],
    eligible: list[bool],
    approvals: Approvals,
    m: Method,
    notes: list[dict[str, Any]],
    flags: list[list[str]] | None = None,
) -> list[int]:
    """Dispatch to the budget rules in ``budget.py`` (imported lazily, see there)."""
    if m.budget is None:
        raise RankingError(
            "budget_required", f"selection rule {m.rule!r} needs a budget", {"rule": m.rule}
        )
    missing = [e.code for e in entries if e.cost is None]
    if missing:
        raise RankingError(
            "cost_required",
            f"selection rule {m.rule!r} needs a cost on every entry",
            {"rule": m.rule, "entries": missing},
        )
    greedy = m.rule in ("greedy_budget", "greedy_budget_no_skip")
    # Greedy rules honour `winners` as a cap ("the first batch of 10 projects within the
    # budget"); equal shares decides the count itself.
    ignored = [
        f
        for f in ("winners", "max_per_area")
        if getattr(m, f) is not None and not (greedy and f == "winners")
    ]
    if m.categories:
        ignored.append("categories")
    if ignored:
        notes.append(
            {
                "code": "constraints_ignored",
                "message": f"selection rule {m.rule!r} does not use {', '.join(ignored)}",
                "details": {"rule": m.rule, "fields": ignored},
            }
        )
    costs = np.asarray([float(e.cost) for e in entries], dtype=np.float64)  # type: ignore[arg-type]  # none missing: checked above
    budget = float(m.budget)

    if greedy:
        taken = [
            int(i)
            for i in selection.greedy_budget(
                [i for i in order if eligible[i]], costs, budget, skip=m.rule == "greedy_budget"
            )
        ]
        if m.winners is None or len(taken) <= m.winners:
            return taken
        chosen = taken[: m.winners]
        _flag_winners_cap(order, entries, eligible, chosen, costs, budget, m, notes, flags)
        return chosen

    if all(eligible):
        return [int(i) for i in selection.equal_shares(approvals, costs, budget, tie_order=order)]
    # Ineligible entries leave the election but their voters stay: every counted ballot
    # keeps its share of the budget, as if those entries had never been on the ballot.
    keep = np.asarray(eligible, dtype=bool)
    kept = np.flatnonzero(keep)
    new_pos = np.full(len(entries), -1, dtype=np.int64)
    new_pos[kept] = np.arange(len(kept))
    indices = np.asarray(approvals.indices)
    indptr = np.asarray(approvals.indptr)
    ballot_of = np.repeat(np.arange(approvals.n_ballots), np.diff(indptr))
    mask = keep[indices]
    per_ballot = np.bincount(ballot_of[mask], minlength=approvals.n_ballots)
    new_indptr = np.zeros(approvals.n_ballots + 1, dtype=np.int64)
    np.cumsum(per_ballot, out=new_indptr[1:])
    sub = Approvals(indptr=new_indptr, indices=new_pos[indices[mask]])
    sub_order = [int(new_pos[i]) for i in order if keep[i]]
    picked = selection.equal_shares(sub, costs[kept], budget, tie_order=sub_order)
    return [int(kept[j]) for j in picked]


def _flag_winners_cap(
    order: list[int],
    entries: Sequence[Entry],
    eligible: list[bool],
    chosen: list[int],
    costs: np.ndarray,
    budget: float,
    m: Method,
    notes: list[dict[str, Any]],
    flags: list[list[str]] | None,
) -> None:
    """Explain the entries the `winners` cap left out of a greedy budget selection.

    Walking on past the last winner as the rule would, every eligible entry that still
    fits the budget left after the winners is flagged ``winners_cap_reached`` (with
    ``greedy_budget_no_skip`` the walk stops at the first that does not fit, as the rule
    does); a ``winners_cap_reached`` note counts them and names the money left.
    """
    taken = set(chosen)
    remaining = round(budget - float(sum(costs[i] for i in chosen)), 6)
    left = int(remaining) if remaining.is_integer() else remaining
    last = max(order.index(i) for i in chosen)
    left_out = []
    for i in order[last + 1 :]:
        if i in taken or not eligible[i]:
            continue
        if selection._fits(float(costs[i]), remaining, budget):
            left_out.append(i)
            if flags is not None:
                flags[i].append(FLAG_WINNERS_CAP)
        elif m.rule == "greedy_budget_no_skip":
            break
    if left_out:
        notes.append(
            {
                "code": "winners_cap_reached",
                "message": (
                    f"the cap of {m.winners} winners was reached with "
                    f"{left} of the budget left; "
                    f"{len(left_out)} fitting entries were not selected"
                ),
                "details": {
                    "winners": m.winners,
                    "budget_left": left,
                    "entries": [entries[i].code for i in left_out],
                },
            }
        )


# --- output ---------------------------------------------------------------------------


def _award(e: Entry, m: Method) -> str:
    if m.award:
        return m.award
    if m.categories and e.category:
        return e.category
    return DEFAULT_AWARD


def _pub(x: float) -> float:
    # + 0.0 turns -0.0 into 0.0 so that a zero always serialises the same way.
    return round(float(x), PUBLISHED_DECIMALS) + 0.0


def _plain_number(x: float) -> int | float:
    return int(x) if isinstance(x, (int, np.integer)) else float(x)


def _review_detail(
    expert: str, raw: float, calibrated: float, dropped: list[str], calibration: dict[str, Any]
) -> dict[str, Any]:
    """One review as published: raw ``S``, calibrated score, and the expert's adjustment
    (``bias`` for additive, ``z`` for zscore) rounded for reading; the exact parameters
    are in the document's ``calibration`` section."""
    item: dict[str, Any] = {
        "expert": expert,
        "raw": _pub(raw),
        "calibrated": _pub(calibrated),
        "dropped": expert in dropped,
    }
    how = calibration["how"]
    if how == "none":
        return item
    p = calibration["experts"][expert]
    if how == "additive":
        item["bias"] = _pub(p["bias"])
        unclipped = raw - p["bias"]
    else:
        z = 0.0 if p["flat"] else (raw - p["mean"]) / p["std"]
        item["z"] = _pub(z)
        unclipped = calibration["panel"]["mean"] + z * calibration["panel"]["std"]
    lo, hi = CALIBRATED_CLIP
    # Float noise at the boundary is not clipping: only a visible change counts.
    item["clipped"] = bool(unclipped < lo - 1e-9 or unclipped > hi + 1e-9)
    return item


# The fine print of the method, published with it so the document alone is enough to
# recompute every score (README "Ranking method" says the same in words).
FINE_PRINT: dict[str, Any] = {
    "review_score": "S = 100 * sum(weight * points) / sum(weight * max_points)",
    "raw_score_decimals": PUBLISHED_DECIMALS,
    "score_decimals": PUBLISHED_DECIMALS,
    "calibration_param_decimals": PARAM_DECIMALS,
    "calibrated_clip": list(CALIBRATED_CLIP),
    "entry_score": "aggregate of the entry's calibrated review scores",
    "entry_score_without_reviews": 0,
    "trimmed_mean_min_reviews": TRIM_MIN_REVIEWS,
    "median_of_even_count": "mean of the two middle values",
    "tie_decimals": TIE_DECIMALS,
}
ZSCORE_FINE_PRINT: dict[str, Any] = {
    "zscore_std": "population (ddof=0)",
    "zscore_panel": "mean and population std of all live reviews pooled",
    "zscore_expert": "mean and population std of the expert's live reviews",
    "zscore_flat_std": FLAT_STD,
    "zscore_flat_z": 0,
    "zscore_formula": "calibrated = clip(panel_mean + (S - mean_e) / std_e * panel_std)",
}
ADDITIVE_FINE_PRINT: dict[str, Any] = {
    "additive_model": "S = value_i + bias_e, least squares, sum(bias_e) = 0",
    "additive_formula": "calibrated = clip(S - bias_e)",
    "additive_graph": "experts and reviewed entries; entries nobody reviewed are not in it",
    "additive_entry_score": "aggregate of calibrated reviews, not value_i "
    "(equal to value_i before clipping only with mean)",
}


def _method_json(m: Method) -> dict[str, Any]:
    d = dataclasses.asdict(m)
    d["tie_break"] = list(m.tie_break)
    d["categories"] = {c: dict(q) for c, q in sorted(m.categories.items())}
    d.update(FINE_PRINT)
    if m.calibration == "zscore":
        d.update(ZSCORE_FINE_PRINT)
    elif m.calibration == "additive":
        d.update(ADDITIVE_FINE_PRINT)
    return d
