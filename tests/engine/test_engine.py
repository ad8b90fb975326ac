"""The rank() entry point: combination, tie-breaking, selection and the result document."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Approvals, Criterion, Entry, Method, RankingError, Review, rank
from engine import budget as budget_module

CRIT = [Criterion("q", 10)]  # one criterion out of 10: S = 10·points


def ent(code, **kw):
    return Entry(code=code, title=f"title {code}", **kw)


def votes(*counts):
    """Single-choice ballots giving entry i exactly counts[i] votes."""
    idx = np.repeat(np.arange(len(counts)), counts)
    return Approvals(indptr=np.arange(len(idx) + 1, dtype=np.int64), indices=idx)


def rv(expert, entry, points):
    return Review(expert, entry, {"q": points})


def panel(entry, *points):
    """One review per point value, by experts p0, p1, ..."""
    return [rv(f"p{k}", entry, p) for k, p in enumerate(points)]


def by_code(result):
    return {r["code"]: r for r in result["rows"]}


def codes(result):
    return [r["code"] for r in result["rows"]]


# --- combination -----------------------------------------------------------------------


def test_combined_score_by_hand():
    """C = 0.3·V + 0.7·E with V relative to the most-voted entry."""
    entries = [ent("A"), ent("B"), ent("C")]
    reviews = panel(0, 8, 6, 7) + panel(1, 9, 9, 9) + panel(2, 10, 10, 10)
    res = rank(entries, votes(10, 5, 0), reviews, CRIT, Method(winners=2))
    rows = by_code(res)
    # V = 100, 50, 0; E = 70, 90, 100; C = 30+49, 15+63, 0+70
    assert [(rows[c]["vote_score"], rows[c]["expert_score"]) for c in "ABC"] == [
        (100.0, 70.0),
        (50.0, 90.0),
        (0.0, 100.0),
    ]
    assert [(rows[c]["public_part"], rows[c]["expert_part"]) for c in "ABC"] == [
        (30.0, 49.0),
        (15.0, 63.0),
        (0.0, 70.0),
    ]
    assert [rows[c]["combined"] for c in "ABC"] == [79.0, 78.0, 70.0]
    assert codes(res) == ["A", "B", "C"]
    assert [r["rank"] for r in res["rows"]] == [1, 2, 3]
    assert [r["selected"] for r in res["rows"]] == [True, True, False]
    assert [r["award"] for r in res["rows"]] == ["入选", "入选", None]
    assert [r["tie_break"] for r in res["rows"]] == [None, None, None]
    assert res["counts"] == {"ballots_counted": 15, "reviews": 9, "entries": 3}


def test_trimmed_mean_reports_dropped_experts():
    """With five reviews the row shows which experts' scores the trimmed mean dropped."""
    reviews = [rv("a", 0, 5), rv("b", 0, 6), rv("c", 0, 7), rv("d", 0, 8), rv("e", 0, 10)]
    row = rank([ent("A")], votes(1), reviews, CRIT, Method())["rows"][0]
    assert row["expert_score"] == 70.0  # (60+70+80)/3
    assert row["dropped_reviews"] == ["a", "e"]
    assert row["review_scores"] == {"a": 50.0, "b": 60.0, "c": 70.0, "d": 80.0, "e": 100.0}


def test_calibrated_scores_feed_the_ranking():
    """Additive calibration removes a lenient expert's bias before aggregation."""
    entries = [ent("A"), ent("B"), ent("C")]
    # v = 50, 70, 60; x is +10 lenient, y is -10 harsh (see test_reviews).
    reviews = [rv("x", 0, 6), rv("x", 1, 8), rv("y", 1, 6), rv("y", 2, 5)]
    m = Method(
        public_weight=0, expert_weight=1, calibration="additive", aggregate="mean", min_reviews=1
    )
    rows = by_code(rank(entries, votes(0, 0, 0), reviews, CRIT, m))
    assert [rows[c]["expert_score"] for c in "ABC"] == [50.0, 70.0, 60.0]
    assert rows["B"]["review_scores"] == {"x": 70.0, "y": 70.0}


def test_disconnected_calibration_is_an_error():
    """A panel that cannot be calibrated stops the run with the groups named."""
    reviews = [rv("x", 0, 6), rv("y", 1, 6)]
    m = Method(calibration="additive", min_reviews=1)
    with pytest.raises(RankingError) as err:
        rank([ent("A"), ent("B")], votes(1, 1), reviews, CRIT, m)
    assert err.value.code == "calibration_graph_disconnected"
    assert err.value.details["components"] == [
        {"experts": ["x"], "entries": ["A"]},
        {"experts": ["y"], "entries": ["B"]},
    ]


def test_vote_only_campaign():
    """With expert weight 0 no review is needed and nothing is flagged for it."""
    m = Method(public_weight=1, expert_weight=0, winners=2)
    res = rank([ent("A"), ent("B"), ent("C")], votes(3, 9, 6), [], [], m)
    assert codes(res) == ["B", "C", "A"]
    assert [r["combined"] for r in res["rows"]] == [100.0, 66.6667, 33.3333]
    assert [r["selected"] for r in res["rows"]] == [True, True, False]
    assert all(r["flags"] == [] and r["expert_score"] == 0.0 for r in res["rows"])


def test_review_only_campaign():
    """With public weight 0 the ranking follows the experts even with no ballots at all."""
    m = Method(public_weight=0, expert_weight=1, winners=1, min_reviews=1)
    empty = Approvals(indptr=np.zeros(1, dtype=np.int64), indices=np.zeros(0, dtype=np.int64))
    res = rank([ent("A"), ent("B")], empty, [rv("x", 0, 4), rv("x", 1, 9)], CRIT, m)
    assert codes(res) == ["B", "A"]
    assert [r["combined"] for r in res["rows"]] == [90.0, 40.0]
    assert res["counts"]["ballots_counted"] == 0


def test_insufficient_reviews_ranked_but_not_selected():
    """An under-reviewed entry keeps its rank but cannot win while experts weigh in."""
    entries = [ent("A"), ent("B"), ent("C")]
    reviews = panel(0, 10) + panel(1, 5, 5) + panel(2, 4, 4)  # A has 1 review, min is 2
    m = Method(public_weight=0.5, expert_weight=0.5, min_reviews=2, winners=1)
    res = rank(entries, votes(10, 1, 1), reviews, CRIT, m)
    rows = by_code(res)
    assert codes(res)[0] == "A"
    assert rows["A"]["flags"] == ["insufficient_reviews"]
    assert not rows["A"]["selected"]
    assert rows["B"]["selected"]
    # A review-less entry is ranked with E = 0.
    res = rank(entries, votes(10, 1, 1), panel(1, 5, 5), CRIT, m)
    assert by_code(res)["A"]["expert_score"] == 0.0
    assert by_code(res)["A"]["reviews"] == 0


# --- ties ------------------------------------------------------------------------------

# A: 10 votes (V 100), E 50 -> C 75; B: 5 votes (V 50), E 100 -> C 75 (w = 0.5/0.5).
VE_ENTRIES = [ent("A"), ent("B")]
VE_VOTES = (10, 5)
VE_REVIEWS = [rv("x", 0, 5), rv("x", 1, 10)]
TIE_DEFAULT = ("votes", "expert", "reviews", "cost", "lot")


def _tie_method(chain, **kw):
    return Method(public_weight=0.5, expert_weight=0.5, min_reviews=1, tie_break=chain, **kw)


def test_tie_votes_rule():
    """On equal combined scores the entry with more votes ranks higher."""
    res = rank(VE_ENTRIES, votes(*VE_VOTES), VE_REVIEWS, CRIT, _tie_method(("votes", "lot")))
    assert codes(res) == ["A", "B"]
    assert [r["tie_break"] for r in res["rows"]] == [None, "votes"]
    assert res["rows"][0]["combined"] == res["rows"][1]["combined"] == 75.0


def test_tie_expert_rule():
    """With expert first in the chain the higher expert score wins the tie."""
    res = rank(VE_ENTRIES, votes(*VE_VOTES), VE_REVIEWS, CRIT, _tie_method(("expert", "votes")))
    assert codes(res) == ["B", "A"]
    assert res["rows"][1]["tie_break"] == "expert"


def test_tie_reviews_rule():
    """Equal votes and expert scores: the entry reviewed more often ranks higher."""
    reviews = [rv("x", 0, 5), rv("x", 1, 5), rv("y", 1, 5)]
    res = rank(VE_ENTRIES, votes(3, 3), reviews, CRIT, _tie_method(TIE_DEFAULT))
    assert codes(res) == ["B", "A"]
    assert res["rows"][1]["tie_break"] == "reviews"


def test_tie_cost_rule_missing_cost_last():
    """All else equal, the cheaper entry ranks higher and an entry without cost last."""
    entries = [ent("A", cost=200.0), ent("B"), ent("C", cost=100.0)]
    m = Method(public_weight=1, expert_weight=0, tie_break=TIE_DEFAULT)
    res = rank(entries, votes(2, 2, 2), [], [], m)
    assert codes(res) == ["C", "A", "B"]
    assert [r["tie_break"] for r in res["rows"]] == [None, "cost", "cost"]


def test_tie_lot_rule_is_seeded_and_published():
    """A full tie is decided by the seeded lot; the same seed redraws the same order."""
    entries = [ent(c) for c in "ABCD"]
    m = Method(public_weight=1, expert_weight=0)
    first = rank(entries, votes(1, 1, 1, 1), [], [], m, lot_seed=0)
    again = rank(entries, votes(1, 1, 1, 1), [], [], m, lot_seed=0)
    assert codes(first) == codes(again)
    # PCG64 is specified bit for bit: this is the draw on every machine.
    assert codes(first) == ["C", "A", "B", "D"]
    assert [r["tie_break"] for r in first["rows"]] == [None, "lot", "lot", "lot"]
    assert first["lot_seed"] == 0


def test_lot_other_seed_can_differ():
    """Another seed may give another order (seed 2 does for these four entries)."""
    entries = [ent(c) for c in "ABCD"]
    m = Method(public_weight=1, expert_weight=0)
    res = rank(entries, votes(1, 1, 1, 1), [], [], m, lot_seed=2)
    assert codes(res) == ["D", "C", "A", "B"]
    assert res["lot_seed"] == 2


def test_lot_does_not_depend_on_input_order():
    """Listing the entries in another order does not change the lot."""
    m = Method(public_weight=1, expert_weight=0)
    fwd = rank([ent(c) for c in "ABCD"], votes(1, 1, 1, 1), [], [], m, lot_seed=3)
    rev = rank([ent(c) for c in "DCBA"], votes(1, 1, 1, 1), [], [], m, lot_seed=3)
    assert codes(fwd) == codes(rev)


def test_tie_chain_exhausted_falls_back_to_code():
    """Without a lot in the chain, a full tie is ordered by entry code and says so."""
    m = Method(public_weight=1, expert_weight=0, tie_break=("votes",))
    res = rank([ent("B"), ent("A")], votes(1, 1), [], [], m)
    assert codes(res) == ["A", "B"]
    assert res["rows"][1]["tie_break"] == "code"


def test_float_noise_is_a_tie():
    """Scores equal up to float noise count as tied and go to the tie-break chain."""
    # C: 10 votes, E 100. A: 0 votes, E 90 -> 0.7·90 = 62.99999999999999 in floats;
    # B: 7 votes, E 60 -> 0.3·70 + 0.7·60 = 63.0. Exactly equal in real numbers.
    entries = [ent("A"), ent("B"), ent("C")]
    reviews = [rv("x", 0, 9), rv("x", 1, 6), rv("x", 2, 10)]
    m = Method(min_reviews=1, tie_break=("expert", "lot"))
    res = rank(entries, votes(0, 7, 10), reviews, CRIT, m)
    assert codes(res) == ["C", "A", "B"]
    assert res["rows"][2]["tie_break"] == "expert"


# --- top selection ---------------------------------------------------------------------


def _quota_entries():
    # Ranked X1 > X2 > X3 > Y1 > Y2 by votes.
    return [
        ent("X1", category="X"),
        ent("X2", category="X"),
        ent("X3", category="X"),
        ent("Y1", category="Y"),
        ent("Y2", category="Y"),
    ]


VOTE_ONLY = {"public_weight": 1, "expert_weight": 0}


def _selected(res):
    return [r["code"] for r in res["rows"] if r["selected"]]


def test_category_minimum_reserved_first():
    """A category minimum gets its seat even where plain top-N would skip that category."""
    plain = rank(_quota_entries(), votes(9, 8, 7, 6, 5), [], [], Method(winners=2, **VOTE_ONLY))
    assert _selected(plain) == ["X1", "X2"]
    m = Method(winners=2, categories={"Y": {"min": 1}}, **VOTE_ONLY)
    res = rank(_quota_entries(), votes(9, 8, 7, 6, 5), [], [], m)
    assert _selected(res) == ["X1", "Y1"]
    # With quotas configured the award is the category.
    assert [r["award"] for r in res["rows"] if r["selected"]] == ["X", "Y"]


def test_category_maximum():
    """A full category is passed over and the next entry takes the seat."""
    m = Method(winners=3, categories={"X": {"max": 1}}, **VOTE_ONLY)
    res = rank(_quota_entries(), votes(9, 8, 7, 6, 5), [], [], m)
    assert _selected(res) == ["X1", "Y1", "Y2"]
    assert by_code(res)["X2"]["flags"] == ["category_max_reached"]


def test_area_cap():
    """No area wins more than max_per_area seats."""
    entries = [ent("A", area="north"), ent("B", area="north"), ent("C", area="south")]
    m = Method(winners=2, max_per_area=1, **VOTE_ONLY)
    res = rank(entries, votes(9, 8, 7), [], [], m)
    assert _selected(res) == ["A", "C"]
    assert by_code(res)["B"]["flags"] == ["area_cap_reached"]


def test_custom_award_label():
    """A configured award label is shown on every selected row."""
    m = Method(winners=1, award="最具人气", categories={"X": {"min": 1}}, **VOTE_ONLY)
    res = rank(_quota_entries(), votes(9, 8, 7, 6, 5), [], [], m)
    assert [r["award"] for r in res["rows"]] == ["最具人气", None, None, None, None]


@pytest.mark.parametrize(
    "method_kw,detail",
    [
        ({"winners": 2, "categories": {"X": {"min": 2}, "Y": {"min": 1}}}, "sum_of_minima"),
        ({"winners": 4, "categories": {"Y": {"min": 3}}}, "eligible"),
        ({"winners": 4, "categories": {"Y": {"min": 2, "max": 1}}}, "max"),
    ],
)
def test_impossible_quotas(method_kw, detail):
    """Quotas that cannot be met stop the run with an explanation, never a partial result."""
    with pytest.raises(RankingError) as err:
        rank(_quota_entries(), votes(9, 8, 7, 6, 5), [], [], Method(**method_kw, **VOTE_ONLY))
    assert err.value.code == "selection_impossible"
    assert detail in err.value.details


def test_area_cap_blocking_minimum_is_impossible():
    """If the area cap leaves a category short of its minimum the run fails clearly."""
    entries = [ent("A", category="X", area="n"), ent("B", category="Y", area="n")]
    m = Method(
        winners=2, max_per_area=1, categories={"X": {"min": 1}, "Y": {"min": 1}}, **VOTE_ONLY
    )
    with pytest.raises(RankingError) as err:
        rank(entries, votes(2, 1), [], [], m)
    assert err.value.code == "selection_impossible"
    assert err.value.details["categories"] == {"Y": {"min": 1, "reserved": 0}}


def test_fewer_eligible_than_winners_selects_all_with_note():
    """With too few eligible entries all are selected and a note records the shortfall."""
    res = rank([ent("A"), ent("B")], votes(2, 1), [], [], Method(winners=5, **VOTE_ONLY))
    assert _selected(res) == ["A", "B"]
    assert res["notes"] == [
        {
            "code": "seats_unfilled",
            "message": "only 2 of 5 seats could be filled",
            "details": {"winners": 5, "selected": 2, "eligible": 2},
        }
    ]


def test_no_winners_means_ranking_only():
    """Without a number of winners the result is a ranking with nothing selected."""
    res = rank([ent("A"), ent("B")], votes(2, 1), [], [], Method(winners=None, **VOTE_ONLY))
    assert _selected(res) == []
    assert [n["code"] for n in res["notes"]] == ["no_selection"]


# --- budget rules: dispatch only (the rules live in budget.py) -------------------------


def test_budget_rule_needs_budget_and_costs():
    """Budget rules refuse to run without a budget or with an entry lacking a cost."""
    entries = [ent("A", cost=5.0), ent("B")]
    for rule in ("greedy_budget", "greedy_budget_no_skip", "equal_shares"):
        with pytest.raises(RankingError) as err:
            rank(entries, votes(1, 1), [], [], Method(rule=rule, **VOTE_ONLY))
        assert err.value.code == "budget_required"
        with pytest.raises(RankingError) as err:
            rank(entries, votes(1, 1), [], [], Method(rule=rule, budget=10, **VOTE_ONLY))
        assert err.value.code == "cost_required"
        assert err.value.details["entries"] == ["B"]


@pytest.fixture
def fake_budget(monkeypatch):
    calls = {}

    def greedy_budget(order, costs, budget, skip=True):
        calls["greedy"] = (list(order), costs.tolist(), budget, skip)
        return list(order)[:1]

    def equal_shares(approvals, costs, budget, tie_order, completion="add1"):
        calls["mes"] = (
            approvals.indptr.tolist(),
            approvals.indices.tolist(),
            costs.tolist(),
            budget,
            list(tie_order),
        )
        return [0]

    monkeypatch.setattr(budget_module, "greedy_budget", greedy_budget)
    monkeypatch.setattr(budget_module, "equal_shares", equal_shares)
    return calls


def test_greedy_dispatch_gets_rank_order_of_eligible(fake_budget):
    """Greedy rules receive eligible entries best-first, the costs and the budget."""
    entries = [ent("A", cost=1.0), ent("B", cost=2.0), ent("C", cost=3.0)]
    reviews = panel(0, 5, 5) + panel(2, 5, 5)  # B is under-reviewed
    m = Method(rule="greedy_budget_no_skip", budget=4, min_reviews=2)
    res = rank(entries, votes(1, 5, 3), reviews, CRIT, m)
    assert fake_budget["greedy"] == ([2, 0], [1.0, 2.0, 3.0], 4.0, False)
    assert _selected(res) == ["C"]


def test_equal_shares_dispatch_drops_ineligible_entries(fake_budget):
    """Equal shares sees only eligible entries, but every counted voter keeps a share."""
    entries = [ent("A", cost=1.0), ent("B", cost=2.0), ent("C", cost=3.0)]
    reviews = panel(0, 5, 5) + panel(2, 5, 5)  # B is under-reviewed
    ballots = Approvals.from_lists([[0, 1], [1], [2]])
    m = Method(rule="equal_shares", budget=6, min_reviews=2)
    res = rank(entries, ballots, reviews, CRIT, m)
    indptr, indices, costs, budget, order = fake_budget["mes"]
    assert (indptr, indices, costs, budget) == ([0, 1, 1, 2], [0, 1], [1.0, 3.0], 6.0)
    assert sorted(order) == [0, 1]
    assert _selected(res) == ["A"]


# --- the result document ---------------------------------------------------------------


def _mixed_case(seed=5):
    rng = np.random.default_rng(seed)
    n = 12
    entries = [
        ent(f"E{i:02d}", category="XY"[i % 2], area=f"a{i % 4}", cost=float(10 + i))
        for i in range(n)
    ]
    ballots = [list(rng.choice(n, size=3, replace=False)) for _ in range(200)]
    crit = [Criterion("impact", 40), Criterion("cost", 60, 2)]
    reviews = [
        Review(f"x{k}", i, {"impact": int(rng.integers(0, 41)), "cost": int(rng.integers(0, 61))})
        for i in range(n)
        for k in range(5)
        if (i + k) % 6
    ]
    return entries, Approvals.from_lists(ballots), reviews, crit


def test_result_is_deterministic_json():
    """The same input gives byte-identical JSON, and every published float has ≤ 4 decimals."""
    entries, ap, reviews, crit = _mixed_case()
    m = Method(
        winners=4, categories={"Y": {"min": 2, "max": 3}}, max_per_area=2, calibration="zscore"
    )
    a = json.dumps(
        rank(entries, ap, reviews, crit, m, lot_seed=11), sort_keys=True, ensure_ascii=False
    )
    b = json.dumps(
        rank(entries, ap, reviews, crit, m, lot_seed=11), sort_keys=True, ensure_ascii=False
    )
    assert a == b
    doc = json.loads(a)
    assert doc["method"]["tie_break"] == list(m.tie_break)
    assert doc["method"]["categories"] == {"Y": {"min": 2, "max": 3}}
    for row in doc["rows"]:
        for key in ("vote_score", "expert_score", "public_part", "expert_part", "combined"):
            assert round(row[key], 4) == row[key]
    assert set(doc["rows"][0]) == {
        "rank",
        "code",
        "title",
        "category",
        "area",
        "cost",
        "votes",
        "vote_score",
        "reviews",
        "expert_score",
        "public_part",
        "expert_part",
        "combined",
        "selected",
        "award",
        "tie_break",
        "flags",
        "dropped_reviews",
        "review_scores",
        "review_detail",
    }


def test_invalid_review_reported():
    """A review with points above the maximum stops the ranking as invalid_review."""
    with pytest.raises(RankingError) as err:
        rank([ent("A")], votes(1), [rv("x", 0, 11)], CRIT, Method())
    assert err.value.code == "invalid_review"


def test_invalid_method_reported():
    """Unknown method names are refused rather than silently defaulted."""
    with pytest.raises(RankingError) as err:
        rank([ent("A")], votes(1), [], [], Method(tie_break=("votes", "age")))
    assert err.value.code == "invalid_method"


def test_million_ballots_counted_exactly():
    """A million three-choice ballots over 40 entries are all counted, entry by entry.

    Speed is measured by `make bench`, not asserted here."""
    n, nb = 40, 1_000_000
    rng = np.random.default_rng(0)
    idx = np.stack(
        [rng.integers(0, n, nb), rng.integers(0, n, nb), rng.integers(0, n, nb)], axis=1
    ).ravel()
    ap = Approvals(indptr=np.arange(0, 3 * nb + 1, 3, dtype=np.int64), indices=idx)
    entries = [ent(f"A{i:02d}", category=f"c{i % 3}", area=f"a{i % 7}") for i in range(n)]
    reviews = [rv(f"e{k}", i, (i * k) % 11) for i in range(n) for k in range(5)]
    m = Method(winners=12, categories={"c0": {"min": 2}}, max_per_area=2)
    res = rank(entries, ap, reviews, CRIT, m)
    assert sum(r["votes"] for r in res["rows"]) == 3 * nb
    by_code = {r["code"]: r["votes"] for r in res["rows"]}
    for i in (0, 17, 39):
        assert by_code[f"A{i:02d}"] == int((idx == i).sum())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 3), st.integers(0, 10)), min_size=1, max_size=14
    ),
    st.integers(0, 16),
    st.integers(0, 3),
    st.integers(0, 2**32),
)
def test_property_ranks_and_selection_count(spec, winners, min_reviews, seed):
    """Ranks are 1..n once each, and top-N selects min(winners, eligible) entries."""
    entries = [ent(f"E{i:02d}") for i in range(len(spec))]
    ap = votes(*[v for v, _, _ in spec])
    reviews = [rv(f"x{k}", i, p) for i, (_, nrev, p) in enumerate(spec) for k in range(nrev)]
    m = Method(winners=winners, min_reviews=min_reviews)
    res = rank(entries, ap, reviews, CRIT, m, lot_seed=seed)
    rows = res["rows"]
    assert [r["rank"] for r in rows] == list(range(1, len(spec) + 1))
    assert sorted(r["code"] for r in rows) == [e.code for e in entries]
    eligible = sum(1 for _, nrev, _ in spec if nrev >= min_reviews)
    assert sum(r["selected"] for r in rows) == min(winners, eligible)
    assert all(a["combined"] >= b["combined"] for a, b in zip(rows, rows[1:], strict=False))
    assert all(
        (r["tie_break"] is None) == (r["combined"] != above["combined"])
        for above, r in zip(rows, rows[1:], strict=False)
    )


def test_min_votes_makes_entries_ineligible():
    """Entries under the participation threshold are ranked but never selected."""
    entries = [ent("A", cost=10), ent("B", cost=10), ent("C", cost=10)]
    ap = Approvals.from_lists([[0, 1]] * 5 + [[2]] * 2)  # A 5, B 5, C 2 votes
    m = Method(public_weight=1, expert_weight=0, rule="greedy_budget", budget=100, min_votes=3)
    res = rank(entries, ap, [], [], m)
    by_code = {r["code"]: r for r in res["rows"]}
    assert [c for c in "ABC" if by_code[c]["selected"]] == ["A", "B"]
    assert by_code["C"]["flags"] == ["below_min_votes"] and by_code["C"]["rank"] == 3


def test_greedy_budget_honours_winners_as_a_cap():
    """'The first batch of 2 projects within the budget': greedy stops at the cap."""
    entries = [ent(c, cost=10) for c in "ABCD"]
    ap = Approvals.from_lists([[0, 1, 2, 3]] * 4 + [[0, 1, 2]] * 3 + [[0, 1]] * 2 + [[0]])
    m = Method(public_weight=1, expert_weight=0, rule="greedy_budget", budget=100, winners=2)
    res = rank(entries, ap, [], [], m)
    assert [r["code"] for r in res["rows"] if r["selected"]] == ["A", "B"]
    # The cap is honoured, not ignored; C and D would have fitted and are told why.
    assert [n["code"] for n in res["notes"]] == ["winners_cap_reached"]
    assert [r["flags"] for r in res["rows"][2:]] == [["winners_cap_reached"]] * 2


def test_entries_passed_over_by_reserved_minima_say_why():
    """When minima take every seat, better-ranked losers are flagged with the reason."""
    entries = [
        ent("A", category="x"),
        ent("B", category="x"),
        ent("C", category="y"),
        ent("D", category="z"),
    ]
    ap = votes(9, 8, 2, 1)
    m = Method(
        public_weight=1,
        expert_weight=0,
        winners=2,
        categories={"x": {"min": 1, "max": 1}, "y": {"min": 1}},
    )
    rows = {r["code"]: r for r in rank(entries, ap, [], [], m)["rows"]}
    assert [c for c in "ABCD" if rows[c]["selected"]] == ["A", "C"]
    assert rows["B"]["flags"] == ["category_max_reached"]
    m = Method(
        public_weight=1, expert_weight=0, winners=2, categories={"y": {"min": 1}, "z": {"min": 1}}
    )
    rows = {r["code"]: r for r in rank(entries, ap, [], [], m)["rows"]}
    assert [c for c in "ABCD" if rows[c]["selected"]] == ["C", "D"]
    assert rows["A"]["flags"] == rows["B"]["flags"] == ["seat_reserved_for_quota"]


# --- what an appeal needs (issue 19) ---------------------------------------------------


def test_rows_publish_raw_and_calibrated_review_scores():
    """With calibration on, each row shows both the score an expert gave and the one
    used, with the expert's bias; the calibration section holds the exact parameters."""
    # Expert "hi" scores everything 30 above "lo": bias ±15 with Σ bias = 0.
    reviews = [rv("lo", 0, 4), rv("hi", 0, 7), rv("lo", 1, 6), rv("hi", 1, 9)]
    doc = rank(
        [ent("A"), ent("B")],
        votes(1, 1),
        reviews,
        CRIT,
        Method(calibration="additive", aggregate="mean", min_reviews=1),
    )
    a = by_code(doc)["A"]
    assert a["review_detail"] == [
        {
            "expert": "hi",
            "raw": 70.0,
            "calibrated": 55.0,
            "dropped": False,
            "bias": 15.0,
            "clipped": False,
        },
        {
            "expert": "lo",
            "raw": 40.0,
            "calibrated": 55.0,
            "dropped": False,
            "bias": -15.0,
            "clipped": False,
        },
    ]
    assert a["review_scores"] == {"hi": 55.0, "lo": 55.0}  # unchanged meaning: calibrated
    assert doc["calibration"]["how"] == "additive"
    assert doc["calibration"]["experts"] == {
        "hi": {"reviews": 2, "bias": 15.0},
        "lo": {"reviews": 2, "bias": -15.0},
    }
    assert doc["calibration"]["values"] == {"A": 55.0, "B": 75.0}
    assert doc["method"]["calibrated_clip"] == [0.0, 100.0]
    assert doc["method"]["additive_formula"] == "calibrated = clip(S - bias_e)"


def test_additive_fit_above_100_is_published_clipped():
    """A calibrated score the fit puts above 100 is published as 100 and marked clipped,
    and the entry score aggregates the clipped value."""
    reviews = [rv("lo", 0, 8), rv("hi", 0, 10), rv("lo", 1, 2), rv("hi", 1, 10)]
    doc = rank(
        [ent("A"), ent("B")],
        votes(1, 1),
        reviews,
        CRIT,
        Method(calibration="additive", aggregate="mean", min_reviews=1),
    )
    bias = doc["calibration"]["experts"]
    assert bias["lo"]["bias"] < 0
    a = {d["expert"]: d for d in by_code(doc)["A"]["review_detail"]}
    assert a["lo"]["raw"] == 80.0 and a["lo"]["calibrated"] == 100.0 and a["lo"]["clipped"]
    assert round(80.0 - bias["lo"]["bias"], 4) > 100
    assert not a["hi"]["clipped"]
    assert by_code(doc)["A"]["expert_score"] == round((100.0 + a["hi"]["calibrated"]) / 2, 4)


def test_zscore_parameters_are_population_and_pooled():
    """z-scores use population standard deviations: per expert, and for the panel over
    all reviews pooled; a one-review expert is flat (z = 0, panel mean)."""
    reviews = [
        rv("x", 0, 2),
        rv("x", 1, 4),
        rv("x", 2, 9),
        rv("y", 0, 5),
        rv("y", 1, 6),
        rv("z", 2, 7),
    ]
    doc = rank(
        [ent("A"), ent("B"), ent("C")],
        votes(1, 1, 1),
        reviews,
        CRIT,
        Method(calibration="zscore", aggregate="mean", min_reviews=1),
    )
    cal = doc["calibration"]
    pooled = np.array([20.0, 40.0, 90.0, 50.0, 60.0, 70.0])
    assert cal["panel"] == {
        "reviews": 6,
        "mean": round(pooled.mean(), 9),
        "std": round(pooled.std(ddof=0), 9),
    }
    x = np.array([20.0, 40.0, 90.0])
    assert cal["experts"]["x"] == {
        "reviews": 3,
        "mean": 50.0,
        "std": round(x.std(ddof=0), 9),
        "flat": False,
    }
    assert cal["experts"]["z"] == {"reviews": 1, "mean": 70.0, "std": 0.0, "flat": True}
    c = {d["expert"]: d for d in by_code(doc)["C"]["review_detail"]}
    assert c["z"]["z"] == 0.0 and c["z"]["calibrated"] == round(pooled.mean(), 4)
    assert doc["method"]["zscore_std"] == "population (ddof=0)"


def test_unreviewed_entry_under_additive_is_not_in_the_graph():
    """An entry nobody reviewed does not split the additive graph: E = 0, flagged."""
    reviews = [rv("lo", 0, 4), rv("hi", 0, 7), rv("lo", 1, 6), rv("hi", 1, 9)]
    doc = rank(
        [ent("A"), ent("B"), ent("C")],
        votes(1, 1, 1),
        reviews,
        CRIT,
        Method(calibration="additive", min_reviews=1),
    )
    c = by_code(doc)["C"]
    assert c["expert_score"] == 0.0 and c["review_detail"] == []
    assert c["flags"] == ["insufficient_reviews"]
    assert "C" not in doc["calibration"]["values"]


def test_raw_scores_are_rounded_before_use():
    """The published raw score (4 decimals) is exactly the input of aggregation."""
    crit = [Criterion("q", 3)]  # S = 100·p/3: 33.3333…
    doc = rank(
        [ent("A")],
        votes(1),
        [Review("x", 0, {"q": 1})],
        crit,
        Method(aggregate="mean", min_reviews=1),
    )
    row = doc["rows"][0]
    assert row["review_detail"][0]["raw"] == 33.3333
    assert row["expert_score"] == 33.3333
    assert doc["method"]["raw_score_decimals"] == 4


# --- the winners cap of greedy budget rules ---------------------------------------------


def test_winners_cap_flags_fitting_entries_left_out():
    """Budget 100, winners 2: C and D would still fit after A and B, but the cap is
    reached; E does not fit the 40 left and is not flagged."""
    entries = [
        ent("A", cost=30),
        ent("B", cost=30),
        ent("C", cost=20),
        ent("D", cost=10),
        ent("E", cost=50),
    ]
    m = Method(rule="greedy_budget", budget=100, winners=2, **VOTE_ONLY)
    res = rank(entries, votes(9, 8, 7, 6, 5), [], [], m)
    rows = by_code(res)
    assert [c for c in codes(res) if rows[c]["selected"]] == ["A", "B"]
    assert rows["C"]["flags"] == ["winners_cap_reached"]
    assert rows["D"]["flags"] == ["winners_cap_reached"]
    assert rows["E"]["flags"] == []
    note = next(n for n in res["notes"] if n["code"] == "winners_cap_reached")
    assert note["details"] == {"winners": 2, "budget_left": 40, "entries": ["C", "D"]}


def test_no_winners_cap_flag_when_the_cap_is_not_what_stopped():
    entries = [ent("A", cost=60), ent("B", cost=60), ent("C", cost=50)]
    m = Method(rule="greedy_budget", budget=100, winners=2, **VOTE_ONLY)
    res = rank(entries, votes(9, 8, 7), [], [], m)
    assert all(r["flags"] == [] for r in res["rows"])
    assert not [n for n in res["notes"] if n["code"] == "winners_cap_reached"]
