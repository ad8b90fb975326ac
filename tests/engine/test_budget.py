"""Budget rules: greedy (skip / no skip) and the Method of Equal Shares, checked by hand
and against pabutools 1.2.3 (exact rational arithmetic) on random small elections."""

from __future__ import annotations

import math
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import budget as budget_module
from engine.budget import equal_shares, greedy_budget
from engine.synth import generate_instance
from engine.types import Approvals, RankingError

pabutools = pytest.importorskip("pabutools")
from pabutools.election import (  # noqa: E402
    ApprovalBallot,
    ApprovalProfile,
    Cost_Sat,
    Instance,
    Project,
)
from pabutools.rules import (  # noqa: E402
    completion_by_rule_combination,
    greedy_utilitarian_welfare,
    method_of_equal_shares,
)

# -- hand-worked examples -------------------------------------------------------------


def test_greedy_skip_takes_what_still_fits():
    """Greedy passes over an entry that does not fit and keeps filling the budget."""
    costs = np.array([60.0, 50.0, 30.0, 10.0])
    assert greedy_budget([0, 1, 2, 3], costs, 100) == [0, 2, 3]


def test_greedy_no_skip_stops_at_first_misfit():
    """Greedy without skipping stops at the first entry that does not fit."""
    costs = np.array([60.0, 50.0, 30.0, 10.0])
    assert greedy_budget([0, 1, 2, 3], costs, 100, skip=False) == [0]


def test_greedy_follows_the_given_order_and_exact_fit():
    """An entry costing exactly the remaining budget is taken; order is respected."""
    costs = np.array([25.0, 75.0, 1.0])
    assert greedy_budget([1, 0, 2], costs, 100) == [1, 0]
    assert greedy_budget([2, 1, 0], costs, 100) == [2, 1]
    assert greedy_budget([2, 1, 0], costs, 100, skip=False) == [2, 1]


def test_greedy_ignores_repeated_positions():
    """A position listed twice in the order is selected at most once."""
    assert greedy_budget([0, 0, 1], np.array([10.0, 10.0]), 100) == [0, 1]


def test_greedy_with_zero_budget_selects_only_free_entries():
    """With a budget of 0 only entries that cost nothing are selected."""
    assert greedy_budget([0, 1], np.array([5.0, 0.0]), 0) == [1]


# Voters 1-6 approve A (60), voters 1-5 approve B (40), voters 7-10 approve C (40); the
# budget is 100, so each voter holds 10. Greedy by votes buys A then B. MES: A costs
# 10 per supporter (rho/cost = 1/6), B 8 (1/5), C 10 (1/4): A first, which empties the
# purses of B's supporters, so C is bought with the money of voters 7-10.
MES_BALLOTS = [[0, 1]] * 5 + [[0]] + [[2]] * 4
MES_COSTS = np.array([60.0, 40.0, 40.0])


def test_equal_shares_hand_example_differs_from_greedy():
    """MES gives the minority's project a seat where greedy spends all on the majority."""
    approvals = Approvals.from_lists(MES_BALLOTS)
    assert equal_shares(approvals, MES_COSTS, 100, [0, 1, 2], completion=None) == [0, 2]
    assert equal_shares(approvals, MES_COSTS, 100, [0, 1, 2]) == [0, 2]  # exhaustive
    assert greedy_budget([0, 1, 2], MES_COSTS, 100) == [0, 1]


def test_equal_shares_add1_buys_what_plain_mes_cannot_afford():
    """add1 raises everyone's money by 1 until the outcome uses the budget up."""
    # 4 voters, 27.5 each: A (60, voters 1-2) and B (30, voter 3) are out of reach;
    # only C (10, voter 4) is bought. At 30.5 each, A, B and C are all affordable.
    approvals = Approvals.from_lists([[0], [0], [1], [2]])
    costs = np.array([60.0, 30.0, 10.0])
    assert equal_shares(approvals, costs, 110, [0, 1, 2], completion=None) == [2]
    assert equal_shares(approvals, costs, 110, [0, 1, 2]) == [0, 1, 2]
    assert equal_shares(approvals, costs, 110, [0, 2, 1]) == [0, 2, 1]  # B/C tie


def test_equal_shares_add1_keeps_last_feasible_outcome():
    """When one more unit per voter would overspend, the previous outcome stays."""
    # 2 voters, 50 each; A (60) by voter 1 and B (60) by voter 2. At 60 each both are
    # bought (120 > 100), so add1 returns the empty outcome of 59 each.
    approvals = Approvals.from_lists([[0], [1]])
    assert equal_shares(approvals, np.array([60.0, 60.0]), 100, [0, 1]) == []


def test_equal_shares_ties_follow_tie_order():
    """Two identical projects: the one earlier in tie_order is bought."""
    approvals = Approvals.from_lists([[0, 1]] * 4)
    costs = np.array([40.0, 40.0])
    assert equal_shares(approvals, costs, 50, [1, 0], completion=None) == [1]
    assert equal_shares(approvals, costs, 50, [0, 1], completion=None) == [0]


def test_equal_shares_add1_greedy_fills_leftover():
    """add1_greedy then takes, by approval count, whatever still fits (even unapproved
    projects, as pabutools' greedy does)."""
    approvals = Approvals.from_lists([[0], [1]])
    costs = np.array([60.0, 60.0, 30.0])
    assert equal_shares(approvals, costs, 100, [0, 1, 2]) == []
    assert equal_shares(approvals, costs, 100, [0, 1, 2], completion="add1_greedy") == [0, 2]
    assert equal_shares(approvals, costs, 100, [1, 0, 2], completion="add1_greedy") == [1, 2]


def test_equal_shares_free_projects_are_selected():
    """An approved project that costs nothing is always selected."""
    approvals = Approvals.from_lists([[0, 1], [1]])
    assert equal_shares(approvals, np.array([0.0, 50.0]), 100, [0, 1]) == [0, 1]


def test_equal_shares_without_ballots_selects_nothing():
    """No ballots, no winners."""
    approvals = Approvals.from_lists([])
    assert equal_shares(approvals, np.array([10.0]), 100, [0]) == []


def test_duplicate_choices_in_a_ballot_count_once():
    """A ballot naming a project twice supports it once."""
    twice = Approvals.from_lists([[0, 0], [1]])
    once = Approvals.from_lists([[0], [1]])
    costs = np.array([30.0, 30.0])
    assert equal_shares(twice, costs, 40, [1, 0], None) == equal_shares(
        once, costs, 40, [1, 0], None
    )


@pytest.mark.parametrize("budget", [None, -1, float("nan"), "lots"])
def test_budget_required(budget):
    """A missing or negative budget is a budget_required error for both rules."""
    approvals = Approvals.from_lists([[0]])
    for call in (
        lambda: greedy_budget([0], np.array([1.0]), budget),
        lambda: equal_shares(approvals, np.array([1.0]), budget, [0]),
    ):
        with pytest.raises(RankingError) as err:
            call()
        assert err.value.code == "budget_required"


@pytest.mark.parametrize("costs", [[1.0, float("nan")], [1.0, -2.0], [1.0, None]])
def test_cost_required(costs):
    """A missing (NaN/None) or negative cost is a cost_required error."""
    approvals = Approvals.from_lists([[0, 1]])
    with pytest.raises(RankingError) as err:
        greedy_budget([0, 1], costs, 10)
    assert err.value.code == "cost_required"
    with pytest.raises(RankingError) as err:
        equal_shares(approvals, costs, 10, [0, 1])
    assert err.value.code == "cost_required"


def test_unknown_completion_is_rejected():
    """Only None, add1 and add1_greedy are completions."""
    with pytest.raises(RankingError) as err:
        equal_shares(Approvals.from_lists([[0]]), np.array([1.0]), 1, [0], "add2")
    assert err.value.code == "unknown_completion"


# -- against pabutools ----------------------------------------------------------------


def _pabutools_election(ballots, costs, budget, tie_order):
    """Projects named so that pabutools' lexicographic tie-breaking follows tie_order."""
    name_rank = {pos: r for r, pos in enumerate(tie_order)}
    projects = [Project(f"p{name_rank[i]:03d}", int(c)) for i, c in enumerate(costs)]
    inst = Instance(projects, budget_limit=int(budget))
    profile = ApprovalProfile([ApprovalBallot([projects[j] for j in b]) for b in ballots])
    back = {p.name: i for i, p in enumerate(projects)}
    return inst, profile, back


def _positions(allocation, back):
    return [back[p.name] for p in allocation]


@st.composite
def elections(draw, max_projects=8, max_voters=30, max_cost=60):
    n_projects = draw(st.integers(1, max_projects))
    costs = draw(st.lists(st.integers(1, max_cost), min_size=n_projects, max_size=n_projects))
    ballots = draw(
        st.lists(
            st.lists(st.integers(0, n_projects - 1), unique=True, max_size=n_projects),
            max_size=max_voters,
        )
    )
    budget = draw(st.integers(0, sum(costs)))
    tie_order = draw(st.permutations(range(n_projects)))
    return ballots, costs, budget, list(tie_order)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(elections())
def test_greedy_matches_pabutools(election):
    """greedy_budget over approval counts picks what pabutools' greedy picks."""
    ballots, costs, budget, tie_order = election
    inst, profile, back = _pabutools_election(ballots, costs, budget, tie_order)
    expected = _positions(greedy_utilitarian_welfare(inst, profile, sat_class=Cost_Sat), back)
    votes = np.bincount([j for b in ballots for j in b], minlength=len(costs))
    rank = {pos: r for r, pos in enumerate(tie_order)}
    order = sorted(range(len(costs)), key=lambda j: (-votes[j], rank[j]))
    assert greedy_budget(order, np.array(costs, dtype=float), budget) == expected


@SETTINGS
@given(elections())
def test_equal_shares_matches_pabutools(election):
    """Plain MES buys the same projects, in the same order, as pabutools."""
    ballots, costs, budget, tie_order = election
    inst, profile, back = _pabutools_election(ballots, costs, budget, tie_order)
    expected = _positions(method_of_equal_shares(inst, profile, sat_class=Cost_Sat), back)
    got = equal_shares(
        Approvals.from_lists(ballots), np.array(costs, float), budget, tie_order, None
    )
    assert got == expected


@SETTINGS
@given(elections())
def test_equal_shares_add1_matches_pabutools(election):
    """MES with add1 selects what pabutools' voter_budget_increment=1 selects."""
    ballots, costs, budget, tie_order = election
    inst, profile, back = _pabutools_election(ballots, costs, budget, tie_order)
    expected = method_of_equal_shares(inst, profile, sat_class=Cost_Sat, voter_budget_increment=1)
    got = equal_shares(Approvals.from_lists(ballots), np.array(costs, float), budget, tie_order)
    assert got == _positions(expected, back)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(elections(max_projects=6, max_voters=20))
def test_equal_shares_add1_greedy_matches_pabutools(election):
    """add1 then greedy completion matches pabutools' rule combination."""
    ballots, costs, budget, tie_order = election
    inst, profile, back = _pabutools_election(ballots, costs, budget, tie_order)
    expected = completion_by_rule_combination(
        inst,
        profile,
        [method_of_equal_shares, greedy_utilitarian_welfare],
        [{"sat_class": Cost_Sat, "voter_budget_increment": 1}, {"sat_class": Cost_Sat}],
    )
    got = equal_shares(
        Approvals.from_lists(ballots), np.array(costs, float), budget, tie_order, "add1_greedy"
    )
    assert sorted(got) == sorted(_positions(expected, back))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(elections(max_projects=5, max_voters=12, max_cost=2000))
def test_equal_shares_add1_large_costs_match_pabutools(election):
    """Many add1 steps (costs far above the per-voter budget) still match pabutools."""
    ballots, costs, budget, tie_order = election
    inst, profile, back = _pabutools_election(ballots, costs, budget, tie_order)
    expected = method_of_equal_shares(inst, profile, sat_class=Cost_Sat, voter_budget_increment=1)
    got = equal_shares(Approvals.from_lists(ballots), np.array(costs, float), budget, tie_order)
    assert got == _positions(expected, back)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(elections(), st.integers(1, 12))
def test_lazy_pricing_matches_pabutools(election, batch):
    """Large elections price only the projects that could win; same winners as pabutools."""
    ballots, costs, budget, tie_order = election
    inst, profile, back = _pabutools_election(ballots, costs, budget, tie_order)
    approvals = Approvals.from_lists(ballots)
    with patch.object(budget_module, "_BATCH", batch):  # force the large-election path
        plain = equal_shares(approvals, np.array(costs, float), budget, tie_order, None)
        add1 = equal_shares(approvals, np.array(costs, float), budget, tie_order)
    assert plain == _positions(method_of_equal_shares(inst, profile, sat_class=Cost_Sat), back)
    expected = method_of_equal_shares(inst, profile, sat_class=Cost_Sat, voter_budget_increment=1)
    assert add1 == _positions(expected, back)


def test_generated_instance_matches_pabutools():
    """A generated 200-voter election: same MES and add1 winners as pabutools."""
    approvals, costs, budget = generate_instance(200, 12, seed=7)
    ballots = [
        approvals.indices[approvals.indptr[b] : approvals.indptr[b + 1]].tolist()
        for b in range(approvals.n_ballots)
    ]
    tie_order = list(range(len(costs)))
    inst, profile, back = _pabutools_election(ballots, costs, budget, tie_order)
    plain = method_of_equal_shares(inst, profile, sat_class=Cost_Sat)
    assert equal_shares(approvals, costs, budget, tie_order, None) == _positions(plain, back)
    add1 = method_of_equal_shares(inst, profile, sat_class=Cost_Sat, voter_budget_increment=1)
    assert equal_shares(approvals, costs, budget, tie_order) == _positions(add1, back)


@pytest.mark.parametrize("n_projects", [30, 70])
def test_many_projects_match_pabutools(n_projects):
    """Elections with more than 20 (one bitset word) and 64 (two words) projects: same
    MES winners as pabutools (add1 is covered above; pabutools is slow here)."""
    approvals, costs, budget = generate_instance(120, n_projects, seed=n_projects)
    ballots = [
        approvals.indices[approvals.indptr[b] : approvals.indptr[b + 1]].tolist()
        for b in range(approvals.n_ballots)
    ]
    tie_order = list(range(n_projects))[::-1]
    inst, profile, back = _pabutools_election(ballots, costs, budget, tie_order)
    plain = method_of_equal_shares(inst, profile, sat_class=Cost_Sat)
    assert equal_shares(approvals, costs, budget, tie_order, None) == _positions(plain, back)


@settings(max_examples=60, deadline=None)
@given(elections(max_projects=70, max_voters=25), st.randoms(use_true_random=False))
def test_ballot_order_and_repeats_do_not_matter(election, rnd):
    """Shuffling ballots, or the choices inside them, or repeating a choice changes nothing."""
    ballots, costs, budget, tie_order = election
    messy = []
    for b in ballots:
        b = b + b[: rnd.randint(0, len(b))]
        rnd.shuffle(b)
        messy.append(b)
    rnd.shuffle(messy)
    costs = np.array(costs, float)
    for completion in (None, "add1"):
        clean = equal_shares(Approvals.from_lists(ballots), costs, budget, tie_order, completion)
        assert (
            equal_shares(Approvals.from_lists(messy), costs, budget, tie_order, completion) == clean
        )


def test_generate_instance_is_deterministic():
    """The same seed gives the same election; costs and budget are whole numbers."""
    a1, c1, b1 = generate_instance(500, 20, seed=3)
    a2, c2, b2 = generate_instance(500, 20, seed=3)
    assert np.array_equal(a1.indptr, a2.indptr) and np.array_equal(a1.indices, a2.indices)
    assert np.array_equal(c1, c2) and b1 == b2
    assert a1.n_ballots == 500 and np.all(np.diff(a1.indptr) >= 1)
    assert np.all(c1 == np.round(c1)) and math.isfinite(b1) and 0 < b1 < c1.sum()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(elections(max_projects=14, max_voters=90, max_cost=3000))
def test_small_python_path_matches_numpy_path(election):
    """Small elections run MES in plain Python (``_small_run``); larger ones with NumPy
    (``_mes_run``). Both give the same outcome, in the same order, for plain MES, add1
    and add1_greedy, on elections up to Assen's size with many add1 steps."""
    ballots, costs, budget, tie_order = election
    approvals, costs = Approvals.from_lists(ballots), np.array(costs, float)
    for completion in (None, "add1", "add1_greedy"):
        small = equal_shares(approvals, costs, budget, tie_order, completion)
        with patch.object(budget_module, "_SMALL", -1):  # force the NumPy path
            vectorised = equal_shares(approvals, costs, budget, tie_order, completion)
        assert small == vectorised


def test_small_path_is_taken_for_small_elections():
    """Assen-sized elections take the plain-Python path, large ones the NumPy path."""
    calls = []
    original = budget_module._small_run

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    with patch.object(budget_module, "_small_run", spy):
        approvals, costs, budget = generate_instance(84, 14, seed=2)
        equal_shares(approvals, costs, budget, list(range(14)))
        assert calls
        calls.clear()
        approvals, costs, budget = generate_instance(3000, 60, seed=2)
        equal_shares(approvals, costs, budget, list(range(60)), None)
        assert not calls
