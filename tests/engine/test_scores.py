"""Vote counts and vote scores, against tables computed by hand."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Approvals, RankingError
from engine.scores import vote_counts, vote_scores

# Five ballots over four entries: entry 0 on 4 ballots, 1 and 3 on 2, entry 2 on none;
# the last ballot is empty (still counted: it is in the approval-rate denominator).
BALLOTS = [[0, 1], [0], [0, 3], [0, 1, 3], []]
COUNTS = [4, 2, 0, 2]

# Expected V per kind, by hand:
#   max:           100·v/4            -> 100, 50, 0, 50
#   approval_rate: 100·v/5            -> 80, 40, 0, 40
#   share:         100·v/8            -> 50, 25, 0, 25
#   rank_points:   ranks 1,2,4,2 (competition); 100·(4-rank)/3 -> 100, 66.667, 0, 66.667
#   log:           100·ln(1+v)/ln 5; ln 3/ln 5 = 1.0986123/1.6094379 = 0.6826062
HAND = {
    "max": [100.0, 50.0, 0.0, 50.0],
    "approval_rate": [80.0, 40.0, 0.0, 40.0],
    "share": [50.0, 25.0, 0.0, 25.0],
    "rank_points": [100.0, 200.0 / 3, 0.0, 200.0 / 3],
    "log": [100.0, 68.26062, 0.0, 68.26062],
}


def test_counts_from_ballots():
    """Each entry's vote count is the number of ballots approving it."""
    counts = vote_counts(Approvals.from_lists(BALLOTS), 4)
    assert counts.tolist() == COUNTS
    assert counts.dtype == np.int64


@pytest.mark.parametrize("kind", sorted(HAND))
def test_vote_score_table(kind):
    """Every vote-score formula gives the hand-computed 0..100 values."""
    got = vote_scores(np.array(COUNTS), 5, kind)
    assert got == pytest.approx(HAND[kind], abs=1e-5)


@pytest.mark.parametrize("kind", sorted(HAND))
def test_no_votes_scores_zero(kind):
    """With no vote at all, no entry gets vote points (not even rank points)."""
    assert vote_scores(np.zeros(3, dtype=np.int64), 0, kind).tolist() == [0.0, 0.0, 0.0]
    assert vote_scores(np.zeros(3, dtype=np.int64), 7, kind).tolist() == [0.0, 0.0, 0.0]


def test_rank_points_single_entry():
    """A lone entry with votes gets the full 100 rank points."""
    assert vote_scores(np.array([3]), 3, "rank_points").tolist() == [100.0]


def test_rank_points_all_tied():
    """Entries with equal votes share first place and all get 100 rank points."""
    assert vote_scores(np.array([2, 2, 2]), 3, "rank_points").tolist() == [100.0] * 3


def test_unknown_vote_score_rejected():
    """An unknown vote-score name is an invalid method, not a silent default."""
    with pytest.raises(RankingError) as err:
        vote_scores(np.array([1]), 1, "borda")
    assert err.value.code == "invalid_method"


@pytest.mark.parametrize("bad", [[[0, 4]], [[-1]]])
def test_out_of_range_approval_rejected(bad):
    """A ballot naming an entry outside the list is refused, never dropped silently."""
    with pytest.raises(RankingError) as err:
        vote_counts(Approvals.from_lists(bad), 4)
    assert err.value.code == "invalid_approvals"


def test_inconsistent_indptr_rejected():
    """CSR arrays whose ends disagree are refused instead of miscounting."""
    ap = Approvals(indptr=np.array([0, 2]), indices=np.array([0, 1, 2]))
    with pytest.raises(RankingError) as err:
        vote_counts(ap, 3)
    assert err.value.code == "invalid_approvals"


@given(st.lists(st.lists(st.integers(0, 5), max_size=6, unique=True), max_size=40))
def test_counts_match_naive_count(ballots):
    """The vectorised count equals counting ballots one by one."""
    expected = [sum(1 for b in ballots if i in b) for i in range(6)]
    assert vote_counts(Approvals.from_lists(ballots), 6).tolist() == expected


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=30), st.sampled_from(sorted(HAND)))
def test_scores_stay_in_range(counts, kind):
    """Every vote score lies between 0 and 100 and respects the vote order."""
    n_ballots = max(counts)
    v = vote_scores(np.array(counts), n_ballots, kind)
    assert np.all(v >= 0) and np.all(v <= 100 + 1e-9)
    order = np.argsort(counts, kind="stable")
    assert np.all(np.diff(v[order]) >= -1e-9)
