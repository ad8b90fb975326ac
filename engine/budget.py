"""Budget-constrained selection rules: greedy (with and without skipping) and the
Method of Equal Shares (MES) with cost utilities and the "add1" completion.

Semantics follow pabutools 1.2.3 (the reference implementation used by pabulib):

* ``greedy_budget`` walks a given order and takes what fits (``skip=True``) or stops at
  the first entry that does not fit (``skip=False``, "greedy-no-skip").
* ``equal_shares`` is ``pabutools.rules.method_of_equal_shares(sat_class=Cost_Sat)``:
  every voter starts with ``budget / n_ballots`` (empty ballots count); a project's
  supporters pay ``min(their money, rho)`` and MES repeatedly buys the project with the
  smallest ``rho / cost``; ties go to the earlier entry in ``tie_order``.
* ``completion="add1"`` is pabutools' ``voter_budget_increment=1``: while the outcome is
  feasible but not exhaustive (some approved, not selected project still fits the
  remaining real budget), rerun MES with one more currency unit per voter
  (``budget/n + 1``, ``budget/n + 2``, ...). The first exhaustive outcome is returned;
  if an outcome overspends the real budget, the previous one is kept. This reproduces
  the official winners of pabulib's ``equalshares/add1`` elections (Assen 2024).
  ``"add1_greedy"`` additionally fills what is left greedily by approval count (what
  equalshares.net suggests as a final step, pabutools ``completion_by_rule_combination``
  with ``greedy_utilitarian_welfare``); pabulib's official add1 winners do *not* use it:
  on Assen 2024 it would add project 7, which was not selected.
  (equalshares.net's reference code differs slightly: after the first run it continues
  from whole per-voter budgets ``floor(budget/n) + 1, + 2, ...`` and counts unapproved
  projects when testing exhaustiveness. Both variants give Assen's official winners.)

Deliberate difference: an approved entry that costs 0 is selected up front (pabutools'
``Cost_Sat`` gives it zero satisfaction and never selects it).

Arithmetic is float64 with a relative tolerance of 1e-9 for "equal" (ties, "exactly
affordable"), which matches pabutools' exact fractions on integer-cost data; ties are
then resolved by ``tie_order``.

Speed (no per-voter Python loop anywhere):

* identical ballots are merged into types with a multiplicity, so a million ballots
  over a few dozen projects are a few thousand types;
* each round prices projects vectorised over their supporters' types, and only those
  whose lower bound on ``rho / cost`` could still beat the best found (as pabutools
  does); small elections price everything in one go;
* add1: within a run every quantity is an affine function of the per-voter budget
  ``b`` (given the decisions made so far), and ``rho_j(b)`` is convex, so each run also
  returns how far ``b`` can grow before any of its decisions could change. The add1
  increments in between have the same outcome and are skipped, and the next run
  resumes from the first round whose decisions may change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.types import Approvals, RankingError

__all__ = ["COMPLETIONS", "equal_shares", "greedy_budget"]

COMPLETIONS = (None, "add1", "add1_greedy")

_TOL = 1e-9  # relative tolerance for "equal" in the float arithmetic of MES
_BATCH = 4096  # supporters priced per vectorised evaluation before the best is known
_DENSE = 1 << 16  # ballot types x projects up to which rounds use a dense matrix
_SMALL = 3000  # (ballot type, project) pairs up to which MES runs in plain Python
_INF = math.inf


def _check_budget(budget: float | None) -> float:
    if budget is None:
        raise RankingError("budget_required", "this selection rule needs a budget")
    try:
        value = float(budget)
    except (TypeError, ValueError):
        raise RankingError("budget_required", f"budget must be a number, got {budget!r}") from None
    if not math.isfinite(value) or value < 0:
        raise RankingError(
            "budget_required", f"budget must be a finite number >= 0, got {budget!r}"
        )
    return value


def _check_costs(costs: np.ndarray | Sequence[float | None]) -> np.ndarray:
    try:
        arr = np.asarray(costs, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise RankingError("cost_required", "costs must be numbers") from None
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        positions = np.flatnonzero(bad)[:20].tolist()
        raise RankingError(
            "cost_required",
            "every entry needs a finite cost >= 0 for a budget rule",
            {"entries": positions},
        )
    return arr


def _positions(seq: Sequence[int], n: int, what: str) -> np.ndarray:
    arr = np.asarray(seq, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{what} holds a position outside 0..{n - 1}")
    return arr


def _fits(cost: float, remaining: float, budget: float) -> bool:
    return cost <= remaining + 1e-12 * max(budget, 1.0)


def greedy_budget(
    order: Sequence[int], costs: np.ndarray, budget: float, skip: bool = True
) -> list[int]:
    """Take entries in ``order`` (positions, best first) while they fit the budget.

    ``skip=True`` passes over an entry that does not fit and goes on (greedy_budget);
    ``skip=False`` stops at the first one that does not fit (greedy_budget_no_skip).
    A position repeated in ``order`` is considered once. Returns positions in the order
    taken.
    """
    total = _check_budget(budget)
    cost = _check_costs(costs)
    positions = _positions(order, len(cost), "order")
    remaining = total
    taken: list[int] = []
    seen: set[int] = set()
    for pos in positions.tolist():
        if pos in seen:
            continue
        seen.add(pos)
        if _fits(cost[pos], remaining, total):
            taken.append(pos)
            remaining -= cost[pos]
        elif not skip:
            break
    return taken


# --------------------------------------------------------------------------------------
# Method of Equal Shares
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Election:
    """Ballots merged into types, each project's supporting types, per-project counts."""

    n_voters: int
    costs: np.ndarray  # float64 per project
    mult: np.ndarray  # float64 multiplicity per ballot type
    p_ptr: np.ndarray  # project -> supporting ballot types (CSR)
    p_types: np.ndarray
    p_len: np.ndarray  # supporting types per project
    votes: np.ndarray  # float64 approval count per project (exact integers)
    dense: np.ndarray | None  # types x projects multiplicities, for small elections
    candidates: np.ndarray  # bool: approved and cost > 0 (what MES may buy)
    free: list[int]  # approved and cost == 0, in tie order
    rank: np.ndarray  # tie rank per project, lower wins


def _tie_rank(tie_order: Sequence[int], n_projects: int) -> np.ndarray:
    order = _positions(tie_order, n_projects, "tie_order")
    if len(np.unique(order)) != len(order):
        raise ValueError("tie_order repeats a position")
    rank = np.arange(n_projects, dtype=np.int64) + n_projects  # unlisted: after, by position
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank


def _gather(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions of CSR rows ``rows`` and the row number (0..len-1) of each."""
    lens = ptr[rows + 1] - ptr[rows]
    total = int(lens.sum())
    offs = np.cumsum(lens) - lens
    flat = np.repeat(ptr[rows] - offs, lens) + np.arange(total)
    return flat, np.repeat(np.arange(rows.size), lens)


def _ballot_types(approvals: Approvals, n_projects: int):
    """Deduplicate choices inside ballots, then merge identical ballots.

    Returns (n_voters, mult, t_ptr, t_idx) with types as CSR over project positions.
    """
    indptr = np.asarray(approvals.indptr, dtype=np.int64)
    idx = np.asarray(approvals.indices, dtype=np.int64).reshape(-1)
    n = len(indptr) - 1
    if n < 0 or indptr[0] != 0 or indptr[-1] != len(idx) or np.any(np.diff(indptr) < 0):
        raise ValueError("approvals.indptr is not a valid CSR index pointer")
    if idx.size and (idx.min() < 0 or idx.max() >= n_projects):
        raise ValueError("a ballot approves a position with no cost")
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return 0, np.zeros(0), np.zeros(1, dtype=np.int64), empty
    lengths = np.diff(indptr)
    words = max(1, (n_projects + 63) // 64)
    keys = np.zeros((n, words) if words > 1 else n, dtype=np.uint64)  # approval bitsets
    # OR the choices of each ballot into its bitset (a repeated choice sets the same bit)
    if idx.size:
        bit = np.left_shift(np.uint64(1), (idx & 63).astype(np.uint64))
        rows = np.flatnonzero(lengths)  # (reduceat mishandles empty segments)
        for w in range(words):
            in_word = bit if words == 1 else np.where(idx >> 6 == w, bit, np.uint64(0))
            ored = np.bitwise_or.reduceat(in_word, indptr[rows])
            if words == 1:
                keys[rows] = ored
            else:
                keys[rows, w] = ored
    uniq: np.ndarray
    if n_projects <= 20:  # few projects: count bitsets directly
        per_key = np.bincount(keys.astype(np.int64), minlength=1 << n_projects)
        uniq = np.flatnonzero(per_key)
        counts, uniq = per_key[uniq], uniq.astype(np.uint64)
    elif words == 1:
        uniq, counts = np.unique(keys, return_counts=True)
    else:
        view = np.ascontiguousarray(keys).view(np.dtype((np.void, 8 * words))).ravel()
        uniq, counts = np.unique(view, return_counts=True)
        uniq = uniq.view(np.uint64)
    uniq = np.ascontiguousarray(uniq).reshape(-1, words)

    # Each type's projects, read from its bitset (in chunks to bound memory).
    owners, projects = [], []
    chunk = 1 << 16
    for lo in range(0, uniq.shape[0], chunk):
        bits = np.unpackbits(uniq[lo : lo + chunk].view(np.uint8), axis=1, bitorder="little")
        t, j = np.nonzero(bits[:, :n_projects])
        owners.append(t + lo)
        projects.append(j)
    owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    t_idx = np.concatenate(projects).astype(np.int64) if projects else owner
    t_ptr = np.zeros(uniq.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=uniq.shape[0]), out=t_ptr[1:])
    return n, counts.astype(np.float64), t_ptr, t_idx


def _prepare(approvals: Approvals, costs: np.ndarray, tie_order: Sequence[int]) -> _Election:
    n_projects = len(costs)
    rank = _tie_rank(tie_order, n_projects)
    n, mult, t_ptr, t_idx = _ballot_types(approvals, n_projects)
    n_types = len(mult)
    owner = np.repeat(np.arange(n_types, dtype=np.int64), np.diff(t_ptr))
    small = np.int16 if n_projects < 2**15 else np.int64  # radix sort for small ints
    by_project = np.argsort(t_idx.astype(small), kind="stable")
    p_types = owner[by_project]
    p_ptr = np.zeros(n_projects + 1, dtype=np.int64)
    np.cumsum(np.bincount(t_idx, minlength=n_projects), out=p_ptr[1:])
    votes = np.bincount(t_idx, weights=mult[owner], minlength=n_projects).astype(np.float64)
    dense = None
    if n_types * n_projects <= _DENSE:
        dense = np.zeros((n_types, n_projects))
        dense[owner, t_idx] = mult[owner]
    approved = votes > 0
    candidates = approved & (costs > 0)
    free = np.flatnonzero(approved & (costs == 0))
    free = free[np.argsort(rank[free], kind="stable")].tolist()
    return _Election(
        n_voters=n,
        costs=costs,
        mult=mult,
        p_ptr=p_ptr,
        p_types=p_types,
        p_len=np.diff(p_ptr),
        dense=dense,
        votes=votes,
        candidates=candidates,
        free=free,
        rank=rank,
    )


def _limit(b0: float, fv, fs, vtol, stol) -> float:
    """Largest b up to which every ``f(b) = fv + fs * (b - b0)`` keeps its side.

    Each f was found >= 0 at b0 (the comparison went the way it went). Where f is tight
    (``fv <= vtol``) a decreasing f flips immediately; a flat one (identical functions,
    a persistent tie decided by tie rank) never does.
    """
    falling = fs < 0
    if not falling.any():
        return _INF
    tight = fv <= vtol
    if np.any(tight & (fs < -stol)):
        return b0
    falling &= ~tight
    if not falling.any():
        return _INF
    return float(b0 + np.min(fv[falling] / -fs[falling]))


class _State:
    """Everything a MES run carries from one round to the next.

    Money per voter of ballot type t is ``bv[t] + bs[t] * (b - b0)``. For each project,
    ``alpha(b) >= max(la1 + ls1 * b, la2 + ls2 * b)`` (alpha = rho / cost, the price the
    project's supporters would pay per unit of cost) at this and every later round, and
    the project cannot be afforded before ``h1``. These bounds spare most exact
    evaluations and tell how far b may move before a project could beat the winner.
    """

    __slots__ = (
        "bv",
        "bs",
        "alive",
        "remaining",
        "h1",
        "la1",
        "ls1",
        "la2",
        "ls2",
        "bought",
        "hi",
    )
    bv: np.ndarray
    bs: np.ndarray
    alive: np.ndarray
    remaining: np.ndarray
    h1: np.ndarray
    la1: np.ndarray
    ls1: np.ndarray
    la2: np.ndarray
    ls2: np.ndarray
    bought: list[int]
    hi: float

    @classmethod
    def start(cls, e: _Election, b0: float) -> _State:
        st = cls()
        n_types = len(e.mult)
        st.bv, st.bs = np.full(n_types, b0), np.ones(n_types)
        st.alive = np.ones(n_types, dtype=bool)
        st.remaining = e.candidates.copy()
        with np.errstate(divide="ignore"):
            inv = np.where(e.candidates, 1.0 / e.votes, _INF)
            st.h1 = np.where(e.candidates, e.costs / e.votes, _INF)  # b * votes >= cost
        st.la1, st.ls1 = inv.copy(), np.zeros_like(inv)  # everyone pays cost / votes
        st.la2, st.ls2 = inv.copy(), np.zeros_like(inv)
        st.bought = []
        st.hi = _INF
        return st

    def copy(self) -> _State:
        st = _State()
        for name in self.__slots__[:-2]:
            setattr(st, name, getattr(self, name).copy())
        st.bought, st.hi = list(self.bought), self.hi
        return st


class _Eval:
    """Exact prices of a batch of projects ``J`` at the current state.

    ``alpha`` is rho / cost (inf if not affordable), ``qv``/``qs`` rho and its slope in
    b, ``av``/``as_`` the supporters' money and its slope; ``supporters(i)`` gives the
    live supporting types of ``J[i]``, poorest first, and how many of them are poor.
    """

    __slots__ = ("J", "alpha", "av", "as_", "qv", "qs", "_sup")
    J: np.ndarray
    alpha: np.ndarray
    av: np.ndarray
    as_: np.ndarray
    qv: np.ndarray
    qs: np.ndarray
    _sup: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray, int]]

    def supporters(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        return self._sup(i)


def _update_bounds(st: _State, J, afford, qv, qs, c, cnt, av, as_, rich, b0) -> np.ndarray:
    """Record, per project of J, the lower bounds on alpha described in ``_State``.

    ``rich(ug, h1)`` returns, for the projects ``ug`` (positions in J) that are not
    affordable now but become so at ``h1``, the count, money and money slope of their
    richest supporters there. Returns alpha (inf where not affordable).
    """
    alpha = np.full(J.size, _INF)
    alpha[afford] = qv[afford] / c[afford]
    Ja = J[afford]
    a_s = qs[afford] / c[afford]
    st.h1[Ja] = -_INF
    st.la1[Ja] = alpha[afford] - a_s * b0  # tangent: alpha is convex in b
    st.ls1[Ja] = a_s
    st.la2[Ja], st.ls2[Ja] = st.la1[Ja], a_s
    un = np.flatnonzero(~afford)
    if un.size:
        Ju = J[un]
        grows = (as_[un] > 0) & (cnt[un] > 0)
        h1 = np.full(un.size, _INF)
        h1[grows] = b0 + (c[un[grows]] - av[un[grows]]) / as_[un[grows]]
        st.h1[Ju] = h1
        with np.errstate(divide="ignore"):
            st.la1[Ju] = 1.0 / cnt[un]  # rho >= cost / supporters
        st.ls1[Ju] = 0.0
        st.la2[Ju], st.ls2[Ju] = -_INF, 0.0
        ug = un[grows]
        if ug.size:
            # rho >= (money of R - (available - cost)) / |R| for any supporters R; take R
            # = the richest supporters where the project becomes affordable.
            cr, sv, ss = rich(ug, h1[grows])
            cu = c[ug]
            lv = (sv - av[ug] + cu) / cr / cu
            ls = (ss - as_[ug]) / cr / cu
            st.la2[J[ug]] = lv - ls * b0
            st.ls2[J[ug]] = ls
    return alpha


def _evaluate(e: _Election, st: _State, J: np.ndarray, b0: float, eps: float) -> _Eval:
    """Price every project of ``J`` exactly (vectorised over their supporters' types)
    and tighten its lower bounds in ``st``."""
    nJ = J.size
    flat, seg = _gather(e.p_ptr, J)
    types = e.p_types[flat]
    live = st.alive[types]
    types, seg = types[live], seg[live]
    v, s = st.bv[types], st.bs[types]
    order = np.lexsort((v, seg))  # by project, poorest first
    types, seg, v, s = types[order], seg[order], v[order], s[order]
    m = e.mult[types]
    mv, ms = m * v, m * s
    n = np.bincount(seg, minlength=nJ)
    starts = np.cumsum(n) - n
    cnt = np.bincount(seg, m, nJ)
    av = np.bincount(seg, mv, nJ)
    as_ = np.bincount(seg, ms, nJ)
    c = e.costs[J]
    N = v.size
    cm, cmv, cms = np.cumsum(m) - m, np.cumsum(mv) - mv, np.cumsum(ms) - ms
    base = starts[seg]
    cnt_from = cnt[seg] - (cm - cm[base])  # supporters this poor or richer
    pbv = cmv - cmv[base]  # what the poorer supporters pay (all they have)
    q = (c[seg] - pbv) / cnt_from
    pos = np.where(q <= v + eps, np.arange(N), N)
    first = np.full(nJ, N)
    full = n > 0
    if N:
        first[full] = np.minimum.reduceat(pos, starts[full])
    afford = (av >= c * (1 - _TOL)) & (first < N)
    fa = first[afford]
    qv, qs = np.zeros(nJ), np.zeros(nJ)
    qv[afford] = q[fa]
    qs[afford] = -(cms[fa] - cms[base[fa]]) / cnt_from[fa]

    def rich(ug, h1):
        d = np.zeros(nJ)
        d[ug] = h1 - b0
        at = v + s * d[seg]
        top = np.full(nJ, -_INF)
        top[full] = np.maximum.reduceat(at, starts[full])
        in_ug = np.zeros(nJ, dtype=bool)
        in_ug[ug] = True
        r = in_ug[seg] & (at >= top[seg] - _TOL * np.abs(top[seg]))
        sr = seg[r]
        return (
            np.bincount(sr, m[r], nJ)[ug],
            np.bincount(sr, mv[r], nJ)[ug],
            np.bincount(sr, ms[r], nJ)[ug],
        )

    def sup(i):
        lo, hi = starts[i], starts[i] + n[i]
        return types[lo:hi], v[lo:hi], s[lo:hi], int(first[i] - lo)

    out = _Eval()
    out.J, out.av, out.as_, out.qv, out.qs, out._sup = J, av, as_, qv, qs, sup
    out.alpha = _update_bounds(st, J, afford, qv, qs, c, cnt, av, as_, rich, b0)
    return out


def _evaluate_dense(e: _Election, st: _State, J: np.ndarray, b0: float, eps: float) -> _Eval:
    """``_evaluate`` for small elections: a types x projects matrix, few NumPy calls."""
    assert e.dense is not None  # built for small elections, the only ones evaluated here
    order = np.flatnonzero(st.alive)
    order = order[np.argsort(st.bv[order], kind="stable")]  # poorest first
    v, s = st.bv[order], st.bs[order]
    M = e.dense[np.ix_(order, J)]  # multiplicity if the type supports the project
    c = e.costs[J]
    cnt = M.sum(0)
    av, as_ = v @ M, s @ M
    cum = np.cumsum(M, 0)
    cnt_from = cnt - cum + M  # supporters this poor or richer
    pay_v = M * v[:, None]
    pb_v = np.cumsum(pay_v, 0) - pay_v  # what the poorer supporters pay (all they have)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (c - pb_v) / cnt_from
    valid = (M > 0) & (q <= v[:, None] + eps)
    cols = np.arange(J.size)
    if order.size:
        first = valid.argmax(0)
        afford = (av >= c * (1 - _TOL)) & valid[first, cols]
    else:  # nobody has money left
        first, afford = np.zeros(J.size, dtype=np.int64), np.zeros(J.size, dtype=bool)
    qv, qs = np.zeros(J.size), np.zeros(J.size)
    if afford.any():
        fa, ca = first[afford], cols[afford]
        qv[afford] = q[fa, ca]
        pay_s = M[:, ca] * s[:, None]
        qs[afford] = -(np.cumsum(pay_s, 0) - pay_s)[fa, np.arange(ca.size)] / cnt_from[fa, ca]

    def rich(ug, h1):
        Mu = M[:, ug]
        at = np.where(Mu > 0, v[:, None] + s[:, None] * (h1 - b0), -_INF)
        top = at.max(0)
        R = np.where(at >= top - _TOL * np.abs(top), Mu, 0.0)
        return R.sum(0), v @ R, s @ R

    def sup(i):
        rows = np.flatnonzero(M[:, i] > 0)
        return order[rows], v[rows], s[rows], int(np.count_nonzero(rows < first[i]))

    out = _Eval()
    out.J, out.av, out.as_, out.qv, out.qs, out._sup = J, av, as_, qv, qs, sup
    out.alpha = _update_bounds(st, J, afford, qv, qs, c, cnt, av, as_, rich, b0)
    return out


def _evaluate_lazily(
    e: _Election, st: _State, cand: np.ndarray, b0: float, eps: float
) -> list[_Eval]:
    """Price projects in order of their lower bound until no other can do better."""
    with np.errstate(invalid="ignore"):
        lb = np.maximum(st.la1[cand] + st.ls1[cand] * b0, st.la2[cand] + st.ls2[cand] * b0)
    # not affordable yet (near the threshold the evaluation decides, with tolerance)
    lb[b0 < st.h1[cand] - 1e-7 * max(1.0, b0)] = _INF
    order = np.argsort(lb, kind="stable")
    lb_sorted = lb[order]
    n_finite = int(np.searchsorted(lb_sorted, _INF))
    evals: list[_Eval] = []
    done = 0
    best = _INF
    batch = 1
    while done < n_finite:
        if best < _INF:
            upto = int(np.searchsorted(lb_sorted, best * (1 + _TOL), side="right"))
            if upto <= done:
                break
        else:
            # about _BATCH supporters per evaluation
            sizes = e.p_len[cand[order[done:n_finite]]]
            upto = done + max(batch, int(np.searchsorted(np.cumsum(sizes), _BATCH)))
            upto = min(n_finite, upto)
            batch *= 2
        ev = _evaluate(e, st, cand[order[done:upto]], b0, eps)
        done = upto
        evals.append(ev)
        best = min(best, float(ev.alpha.min()) if ev.alpha.size else _INF)
    if not evals:  # nothing can be afforded: report an empty evaluation
        ev = _evaluate(e, st, cand[:0], b0, eps)
        evals.append(ev)
    return evals


def _mes_run(e: _Election, b0: float, trace: list | None = None) -> tuple[list[int], float, list]:
    """One MES run with ``b0`` money per voter.

    Returns the projects bought (in order), ``hi`` (for every b in [b0, hi) the run makes
    exactly the same decisions, so it has the same outcome) and a trace: per round, the
    state at its start and the ``hi`` of the rounds before it. Given the trace of a run
    at a smaller b, the rounds whose decisions still hold at ``b0`` are not redone.
    """
    out: list = []
    if trace:
        margin = 1e-7 * max(1.0, b0)  # a breakpoint computed in floats is approximate
        for b_ref, snap, hi_before in trace:  # hi_before never increases
            if hi_before <= b0 + margin:
                break
            out.append((b_ref, snap, hi_before))
        b_ref, snap, _ = out[-1]
        st = snap.copy()
        if b0 != b_ref:
            st.bv += st.bs * (b0 - b_ref)
        out[-1] = (b0, st.copy(), st.hi)
    else:
        st = _State.start(e, b0)
    keep = trace is not None
    if keep and not out:
        out.append((b0, st.copy(), st.hi))
    rank = e.rank
    eps = _TOL * b0  # absolute tolerance on amounts of money per voter

    while True:
        cand = np.flatnonzero(st.remaining)
        if cand.size == 0:
            break
        if e.dense is not None:
            # small election: price everything at once (also refreshes every bound)
            evals = [_evaluate_dense(e, st, cand, b0, eps)]
        elif int(e.p_len[cand].sum()) <= _BATCH:
            evals = [_evaluate(e, st, cand, b0, eps)]
        else:
            evals = _evaluate_lazily(e, st, cand, b0, eps)
        alpha = np.concatenate([ev.alpha for ev in evals]) if len(evals) > 1 else evals[0].alpha
        best = float(alpha.min()) if alpha.size else _INF
        if best == _INF:
            # Nothing affordable: the run ends, unless more money makes a project so.
            st.hi = min(st.hi, float(st.h1[cand].min()))
            break

        # The winner: smallest alpha, ties by tie rank.
        J_all = np.concatenate([ev.J for ev in evals]) if len(evals) > 1 else evals[0].J
        tied = np.flatnonzero(alpha <= best * (1 + _TOL))
        k = int(tied[np.argmin(rank[J_all[tied]])]) if tied.size > 1 else int(tied[0])
        for ev_w in evals:
            if k < ev_w.J.size:
                break
            k -= ev_w.J.size
        w = k
        p = int(ev_w.J[w])
        c_p = float(e.costs[p])
        aw_v, aw_s = float(ev_w.alpha[w]), float(ev_w.qs[w]) / c_p

        # Decisions of this round that must keep their outcome for b > b0:
        # - the winner stays affordable and its supporters stay on their side (poor:
        #   money < rho, rich: money >= rho), so its rho and the payments stay affine;
        t_w, v_w, s_w, n_poor = ev_w.supporters(w)
        n_w = t_w.size
        qv, qs = float(ev_w.qv[w]), float(ev_w.qs[w])
        av_w, as_w = float(ev_w.av[w]), float(ev_w.as_[w])
        if as_w < 0:  # (available money is affine in b)
            st.hi = min(st.hi, b0 if av_w - c_p <= _TOL * c_p else b0 + (av_w - c_p) / -as_w)
        sign = np.ones(n_w)
        sign[:n_poor] = -1.0
        st.hi = min(
            st.hi,
            _limit(
                b0,
                sign * (v_w - qv),
                sign * (s_w - qs),
                eps,
                _TOL * (np.abs(s_w) + abs(qs)) + 1e-15,
            ),
        )
        # - no other project gets below the winner's alpha (by its lower bounds).
        others = cand[cand != p]
        if others.size:
            loses_ties = rank[others] > rank[p]
            st.hi = min(st.hi, _rivals_limit(st, others, loses_ties, b0, aw_v, aw_s, best))

        st.bought.append(p)
        st.remaining[p] = False
        # Payment: the poor give all they have, the others rho.
        poor_t, rich = t_w[:n_poor], slice(n_poor, n_w)
        st.bv[poor_t], st.bs[poor_t], st.alive[poor_t] = 0.0, 0.0, False
        t_r = t_w[rich]
        nv, ns = v_w[rich] - qv, s_w[rich] - qs
        dies = nv <= eps
        if dies.any():
            if np.any(np.abs(ns[dies]) > _TOL * (np.abs(s_w[rich][dies]) + abs(qs)) + 1e-15):
                st.hi = b0  # left with exactly nothing here, but not for a nearby b
            nv[dies], ns[dies] = 0.0, 0.0
            st.alive[t_r[dies]] = False
        st.bv[t_r], st.bs[t_r] = nv, ns
        if keep:
            out.append((b0, st.copy(), st.hi))
    return st.bought, st.hi, out


def _rivals_limit(
    st: _State, J: np.ndarray, loses_ties: np.ndarray, b0: float, aw_v, aw_s, best
) -> float:
    """Up to which b no project of J can get an alpha below the winner's line.

    Project j is harmless while b < h1[j] (not affordable) or while one of its lower
    bound lines stays above the winner's line (or on it, if j loses ties to the
    winner); the answer is where the union of these intervals that contains b0 ends.
    """
    h1 = st.h1[J]
    end = np.where(b0 < h1, h1, b0)
    vtol = _TOL * abs(best) + 1e-18
    la = np.stack([st.la1[J], st.la2[J]])
    ls = np.stack([st.ls1[J], st.ls2[J]])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        fv = la + ls * b0 - aw_v  # each line minus the winner's alpha, at b0 ...
        fs = ls - aw_s  # ... and its slope (la may be +-inf: never NaN here)
        root = b0 - fv / fs
    flat = np.abs(fs) <= _TOL * (np.abs(ls) + abs(aw_s)) + 1e-18
    pos = fv > vtol
    tight = ~pos & (fv >= -vtol)
    # the interval (lo, hi) where the line is above the winner (a tie on the line is
    # harmless only for a project that loses ties to the winner)
    above = pos | (tight & loses_ties)
    rising = fs > 0
    lo = np.where(flat, np.where(above, -_INF, _INF), np.where(rising, root, -_INF))
    hi = np.where(flat, np.where(above, _INF, -_INF), np.where(rising, _INF, root))
    hi = np.where(tight & ~flat & ~rising, b0, hi)  # meets the winner at b0, then below
    lo = np.where(tight & ~flat & rising, np.where(loses_ties, -_INF, b0), lo)
    for _ in range(2):  # chain the intervals that overlap
        for i in (0, 1):
            end = np.where((lo[i] < end) & (hi[i] > end), hi[i], end)
    return float(end.min())


# --------------------------------------------------------------------------------------
# Small elections in plain Python
# --------------------------------------------------------------------------------------
#
# The same algorithm as ``_mes_run`` with ``_evaluate_dense`` (same formulas, same
# tolerances, same bounds, same trace), on Python floats and lists. Below about
# ``_SMALL`` (ballot type, project) pairs a NumPy call costs more than the arithmetic it
# does, and add1 makes dozens of runs of a dozen rounds each.


class _SmallState:
    """``_State`` on lists (per ballot type: bv, bs, alive; per project the rest)."""

    __slots__ = ("bv", "bs", "alive", "remaining", "h1", "la1", "ls1", "la2", "ls2", "bought", "hi")
    bv: list[float]
    bs: list[float]
    alive: list[bool]
    remaining: list[bool]
    h1: list[float]
    la1: list[float]
    ls1: list[float]
    la2: list[float]
    ls2: list[float]
    bought: list[int]
    hi: float

    @classmethod
    def start(cls, e: _Election, b0: float) -> _SmallState:
        st = cls()
        n_types = len(e.mult)
        st.bv, st.bs, st.alive = [b0] * n_types, [1.0] * n_types, [True] * n_types
        cand = e.candidates.tolist()
        votes, costs = e.votes.tolist(), e.costs.tolist()
        st.remaining = list(cand)
        inv = [1.0 / v if ok else _INF for ok, v in zip(cand, votes, strict=True)]
        st.h1 = [c / v if ok else _INF for ok, c, v in zip(cand, costs, votes, strict=True)]
        st.la1, st.ls1 = list(inv), [0.0] * len(inv)
        st.la2, st.ls2 = list(inv), [0.0] * len(inv)
        st.bought, st.hi = [], _INF
        return st

    def copy(self) -> _SmallState:
        st = _SmallState()
        for name in self.__slots__[:-2]:
            setattr(st, name, list(getattr(self, name)))
        st.bought, st.hi = list(self.bought), self.hi
        return st


class _Small:
    """What the plain-Python runs read from an election, as Python lists."""

    __slots__ = ("costs", "mult", "projects", "rank")

    def __init__(self, e: _Election) -> None:
        self.costs = e.costs.tolist()
        self.mult = e.mult.tolist()
        ptr, types = e.p_ptr.tolist(), e.p_types.tolist()
        cand = e.candidates.tolist()
        self.projects: list[list[int]] = [[] for _ in self.mult]  # per type, what MES may buy
        for j in range(len(self.costs)):
            if cand[j]:
                for t in types[ptr[j] : ptr[j + 1]]:
                    self.projects[t].append(j)
        self.rank = e.rank.tolist()


def _small_evaluate(sm: _Small, st: _SmallState, cand: list[int], b0: float, eps: float):
    """``_evaluate_dense`` + ``_update_bounds`` for the projects ``cand``; returns per
    project (alpha, qv, qs, av, as_, supporters poorest first, number of poor ones)."""
    bv, bs, alive, mult = st.bv, st.bs, st.alive, sm.mult
    n_projects = len(st.remaining)
    todo = [False] * n_projects
    for j in cand:
        todo[j] = True
    by_project: list[list[int]] = [[] for _ in range(n_projects)]  # live supporters
    cnts, avs, ass = [0.0] * n_projects, [0.0] * n_projects, [0.0] * n_projects
    for t in sorted((t for t in range(len(bv)) if alive[t]), key=bv.__getitem__):  # poorest first
        m = mult[t]
        mv, ms = m * bv[t], m * bs[t]
        for j in sm.projects[t]:
            if todo[j]:
                by_project[j].append(t)
                cnts[j] += m
                avs[j] += mv
                ass[j] += ms
    out = []
    for j in cand:
        rows = by_project[j]
        c = sm.costs[j]
        cnt, av, as_ = cnts[j], avs[j], ass[j]
        first = -1
        qv = qs = 0.0
        before_m = before_v = before_s = 0.0
        for i, t in enumerate(rows):
            m, v = mult[t], bv[t]
            cnt_from = cnt - before_m  # supporters this poor or richer
            q = (c - before_v) / cnt_from  # the poorer ones pay all they have
            if q <= v + eps:
                first, qv, qs = i, q, -before_s / cnt_from
                break
            before_m += m
            before_v += m * v
            before_s += m * bs[t]
        afford = first >= 0 and av >= c * (1 - _TOL)
        if afford:
            alpha = qv / c
            a_s = qs / c
            st.h1[j] = -_INF
            st.la1[j] = st.la2[j] = alpha - a_s * b0  # tangent: alpha is convex in b
            st.ls1[j] = st.ls2[j] = a_s
        else:
            alpha = _INF
            qv = qs = 0.0
            grows = as_ > 0 and cnt > 0
            h1 = b0 + (c - av) / as_ if grows else _INF
            st.h1[j] = h1
            st.la1[j], st.ls1[j] = (1.0 / cnt if cnt else _INF), 0.0  # rho >= cost / supporters
            st.la2[j], st.ls2[j] = -_INF, 0.0
            if grows:
                # the richest supporters where the project becomes affordable
                d = h1 - b0
                at = [bv[t] + bs[t] * d for t in rows]
                top = max(at)
                floor = top - _TOL * abs(top)
                cr = sv = ss = 0.0
                for t, a in zip(rows, at, strict=True):
                    if a >= floor:
                        m = mult[t]
                        cr += m
                        sv += m * bv[t]
                        ss += m * bs[t]
                lv = (sv - av + c) / cr / c
                ls = (ss - as_) / cr / c
                st.la2[j], st.ls2[j] = lv - ls * b0, ls
        out.append((alpha, qv, qs, av, as_, rows, first))
    return out


def _small_limit(b0: float, fvs, fss, vtol: float, stols) -> float:
    """``_limit`` on lists."""
    end = _INF
    for fv, fs, stol in zip(fvs, fss, stols, strict=True):
        if fs >= 0:
            continue
        if fv <= vtol:
            if fs < -stol:
                return b0
            continue
        end = min(end, b0 + fv / -fs)
    return end


def _small_rivals_limit(st: _SmallState, others, rank_p, rank, b0, aw_v, aw_s, best) -> float:
    """``_rivals_limit`` on lists."""
    vtol = _TOL * abs(best) + 1e-18
    result = _INF
    for j in others:
        h1 = st.h1[j]
        end = h1 if b0 < h1 else b0
        loses = rank[j] > rank_p
        spans = []
        for la, ls in ((st.la1[j], st.ls1[j]), (st.la2[j], st.ls2[j])):
            fv = la + ls * b0 - aw_v
            fs = ls - aw_s
            pos = fv > vtol
            tight = not pos and fv >= -vtol
            above = pos or (tight and loses)
            if abs(fs) <= _TOL * (abs(ls) + abs(aw_s)) + 1e-18:  # flat
                spans.append((-_INF, _INF) if above else (_INF, -_INF))
                continue
            root = b0 - fv / fs
            if fs > 0:  # rising
                lo = (-_INF if loses else b0) if tight else root
                spans.append((lo, _INF))
            else:
                spans.append((-_INF, b0 if tight else root))
        for _ in range(2):  # chain the intervals that overlap
            for lo, hi in spans:
                if lo < end < hi:
                    end = hi
        result = min(result, end)
    return result


def _small_run(sm: _Small, e: _Election, b0: float, trace: list | None = None):
    """``_mes_run`` for small elections (same results, same trace contract)."""
    out: list = []
    if trace:
        margin = 1e-7 * max(1.0, b0)
        for b_ref, snap, hi_before in trace:
            if hi_before <= b0 + margin:
                break
            out.append((b_ref, snap, hi_before))
        b_ref, snap, _ = out[-1]
        st = snap.copy()
        if b0 != b_ref:
            d = b0 - b_ref
            st.bv = [v + s * d for v, s in zip(st.bv, st.bs, strict=True)]
        out[-1] = (b0, st.copy(), st.hi)
    else:
        st = _SmallState.start(e, b0)
    keep = trace is not None
    if keep and not out:
        out.append((b0, st.copy(), st.hi))
    rank, costs = sm.rank, sm.costs
    eps = _TOL * b0

    while True:
        cand = [j for j, left in enumerate(st.remaining) if left]
        if not cand:
            break
        evals = _small_evaluate(sm, st, cand, b0, eps)
        best = min(ev[0] for ev in evals)
        if best == _INF:
            st.hi = min(st.hi, min(st.h1[j] for j in cand))
            break
        limit = best * (1 + _TOL)
        w = min((i for i, ev in enumerate(evals) if ev[0] <= limit), key=lambda i: rank[cand[i]])
        p = cand[w]
        c_p = costs[p]
        alpha_w, qv, qs, av_w, as_w, t_w, n_poor = evals[w]
        aw_s = qs / c_p

        if as_w < 0:
            st.hi = min(st.hi, b0 if av_w - c_p <= _TOL * c_p else b0 + (av_w - c_p) / -as_w)
        bv, bs = st.bv, st.bs
        fvs, fss, stols = [], [], []
        for i, t in enumerate(t_w):
            sign = -1.0 if i < n_poor else 1.0
            fvs.append(sign * (bv[t] - qv))
            fss.append(sign * (bs[t] - qs))
            stols.append(_TOL * (abs(bs[t]) + abs(qs)) + 1e-15)
        st.hi = min(st.hi, _small_limit(b0, fvs, fss, eps, stols))
        others = [j for j in cand if j != p]
        if others:
            st.hi = min(
                st.hi, _small_rivals_limit(st, others, rank[p], rank, b0, alpha_w, aw_s, best)
            )

        st.bought.append(p)
        st.remaining[p] = False
        alive = st.alive
        for t in t_w[:n_poor]:
            bv[t], bs[t], alive[t] = 0.0, 0.0, False
        for t in t_w[n_poor:]:
            nv, ns = bv[t] - qv, bs[t] - qs
            if nv <= eps:
                if abs(ns) > _TOL * (abs(bs[t]) + abs(qs)) + 1e-15:
                    st.hi = b0  # left with exactly nothing here, but not for a nearby b
                nv = ns = 0.0
                alive[t] = False
            bv[t], bs[t] = nv, ns
        if keep:
            out.append((b0, st.copy(), st.hi))
    return st.bought, st.hi, out


def _exhaustive(e: _Election, chosen: list[int], budget: float) -> bool:
    left = budget - float(e.costs[chosen].sum()) if chosen else budget
    others = e.candidates.copy()
    others[chosen] = False
    slack = 1e-12 * max(budget, 1.0)
    return not np.any(e.costs[others] <= left + slack)


def equal_shares(
    approvals: Approvals,
    costs: np.ndarray,
    budget: float,
    tie_order: Sequence[int],
    completion: str | None = "add1",
) -> list[int]:
    """Method of Equal Shares with cost utilities; returns positions in the order bought.

    ``tie_order``: entry positions, preferred first, for breaking exact ties (entries
    not listed come after, by position). ``completion``: ``None`` (plain MES),
    ``"add1"`` (pabulib's ``equalshares/add1``) or ``"add1_greedy"`` (add1, then greedy
    by approval count over whatever still fits). See the module docstring.
    """
    total = _check_budget(budget)
    cost = _check_costs(costs)
    if completion not in COMPLETIONS:
        raise RankingError(
            "unknown_completion",
            f"completion must be one of {COMPLETIONS}, got {completion!r}",
        )
    e = _prepare(approvals, cost, tie_order)
    if e.n_voters == 0:
        return _greedy_fill(e, [], total) if completion == "add1_greedy" else []
    start = total / e.n_voters
    if e.dense is not None and int(e.p_len.sum()) <= _SMALL:
        sm = _Small(e)

        def run(b0: float, trace: list | None = None):
            return _small_run(sm, e, b0, trace)
    else:

        def run(b0: float, trace: list | None = None):
            return _mes_run(e, b0, trace)

    if completion is None:
        return e.free + run(start)[0]
    bought, hi, trace = run(start, [])

    # add1: one more currency unit per voter until exhaustive; keep the last feasible.
    previous = list(e.free)
    step = 0
    max_step = math.ceil(float(cost[e.candidates].sum())) + 2  # everything affordable
    result = previous
    while True:
        spent = float(cost[bought].sum()) if bought else 0.0
        if spent > total + 1e-12 * max(total, 1.0):
            result = previous
            break
        outcome = e.free + bought
        if _exhaustive(e, bought, total) or step >= max_step:
            result = outcome
            break
        previous = outcome
        # outcomes are the same up to hi: go to the first whole step at or past it
        gap = hi - start
        nxt = math.ceil(gap - 1e-7 * max(1.0, abs(gap))) if math.isfinite(gap) else step + 1
        step = max(step + 1, nxt)
        bought, hi, trace = run(start + step, trace)

    if completion == "add1_greedy":
        result = _greedy_fill(e, result, total)
    return result


def _greedy_fill(e: _Election, chosen: list[int], budget: float) -> list[int]:
    """Greedy by approval count (ties by tie rank) over the entries not yet chosen."""
    n_projects = len(e.costs)
    taken = np.zeros(n_projects, dtype=bool)
    taken[chosen] = True
    score = np.where(e.costs > 0, e.votes, 0.0)
    rest = np.flatnonzero(~taken)
    rest = rest[np.lexsort((e.rank[rest], -score[rest]))]
    left = budget - (float(e.costs[chosen].sum()) if chosen else 0.0)
    out = list(chosen)
    for pos in rest.tolist():
        if _fits(e.costs[pos], left, budget):
            out.append(pos)
            left -= e.costs[pos]
    return out
