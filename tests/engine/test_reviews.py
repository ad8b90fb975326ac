"""Per-review rubric scores, calibration and aggregation, against hand-computed values."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import Criterion, RankingError, Review
from engine.reviews import aggregate, calibrate, review_score, review_scores

RUBRIC = [Criterion("impact", 40, 1.0), Criterion("feasibility", 60, 2.0)]
BY_KEY = {c.key: c for c in RUBRIC}


def test_weighted_rubric_score():
    """S = 100·Σw·s/Σw·max: 30/40 and 45/60 with weights 1 and 2 give 75."""
    # (1·30 + 2·45) / (1·40 + 2·60) = 120 / 160
    r = Review("x", 0, {"impact": 30, "feasibility": 45})
    assert review_score(r, BY_KEY) == pytest.approx(75.0)


def test_full_and_empty_marks():
    """Full marks give 100 and zero points give 0."""
    assert review_score(Review("x", 0, {"impact": 40, "feasibility": 60}), BY_KEY) == 100.0
    assert review_score(Review("x", 0, {"impact": 0, "feasibility": 0}), BY_KEY) == 0.0


@pytest.mark.parametrize(
    "scores",
    [
        {"impact": 30, "feasibility": 45, "style": 3},  # unknown criterion
        {"impact": 41, "feasibility": 45},  # above max
        {"impact": -1, "feasibility": 45},  # negative
        {"impact": 30},  # missing criterion
        {"impact": float("nan"), "feasibility": 45},
    ],
)
def test_invalid_review_rejected(scores):
    """A review with an unknown, missing or out-of-range score is refused by name."""
    with pytest.raises(RankingError) as err:
        review_scores([Review("x", 0, scores)], RUBRIC, 1)
    assert err.value.code == "invalid_review"
    assert err.value.details["expert"] == "x"


def test_review_of_unknown_entry_and_duplicate_rejected():
    """Reviews must name a listed entry, once per expert."""
    ok = {"impact": 1, "feasibility": 1}
    with pytest.raises(RankingError, match="unknown entry"):
        review_scores([Review("x", 3, ok)], RUBRIC, 2)
    with pytest.raises(RankingError, match="two live reviews"):
        review_scores([Review("x", 0, ok), Review("x", 0, ok)], RUBRIC, 2)


SCORES5 = [50.0, 60.0, 70.0, 80.0, 100.0]
EXPERTS5 = ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(
    "how,expected,dropped",
    [
        ("mean", 72.0, []),  # 360 / 5
        ("trimmed_mean", 70.0, ["a", "e"]),  # drop 50 and 100: (60+70+80)/3
        ("median", 70.0, []),
    ],
)
def test_aggregate_five_reviews(how, expected, dropped):
    """Each aggregation of five reviews gives the hand value and names dropped reviews."""
    assert aggregate(SCORES5, EXPERTS5, how) == (pytest.approx(expected), dropped)


@pytest.mark.parametrize(
    "how,expected",
    [
        ("mean", 40.0),  # 160 / 4
        ("trimmed_mean", 40.0),  # fewer than 5 reviews: plain mean, nothing dropped
        ("median", 25.0),  # (20+30)/2
    ],
)
def test_aggregate_four_reviews(how, expected):
    """With four reviews the trimmed mean is the plain mean."""
    assert aggregate([10.0, 20.0, 30.0, 100.0], ["a", "b", "c", "d"], how) == (
        pytest.approx(expected),
        [],
    )


def test_trimmed_mean_tied_extremes_drop_stably():
    """Among equal extremes the dropped review is chosen by expert id, so it is stable."""
    e, dropped = aggregate(
        [60.0, 60.0, 70.0, 70.0, 70.0], ["b", "a", "e", "c", "d"], "trimmed_mean"
    )
    assert e == pytest.approx(200.0 / 3)  # (60+70+70)/3
    assert dropped == ["a", "e"]


def test_no_review_is_zero():
    """An entry nobody reviewed has expert score 0."""
    assert aggregate([], [], "trimmed_mean") == (0.0, [])


def test_zscore_maps_onto_panel_scale():
    """A harsh and a lenient expert with the same spread end up on the same scale."""
    # x: 40, 60 (mean 50, std 10); y: 70, 90 (mean 80, std 10): z = -1, +1 for both.
    # Panel: mean 65, std sqrt(((25²+5²)·2)/4) = sqrt(325) = 18.0277564.
    got = calibrate(
        np.array([40.0, 60.0, 70.0, 90.0]), ["x", "x", "y", "y"], [0, 1, 0, 1], "zscore"
    )
    sd = math.sqrt(325.0)
    assert got == pytest.approx([65 - sd, 65 + sd, 65 - sd, 65 + sd])


def test_zscore_single_review_expert_gets_panel_mean():
    """An expert with one review (no spread) is mapped to the panel mean."""
    # Panel: 40, 60, 95 -> mean 65. Expert z has one review: z = 0.
    got = calibrate(np.array([40.0, 60.0, 95.0]), ["x", "x", "z"], [0, 1, 2], "zscore")
    assert got[2] == pytest.approx(65.0)


def test_zscore_clips_to_scale():
    """Calibrated scores never leave 0..100."""
    s = np.array([0.0, 100.0, 99.0, 100.0, 0.0, 1.0])
    got = calibrate(s, ["x", "x", "y", "y", "z", "z"], [0, 1, 0, 1, 0, 1], "zscore")
    assert np.all(got >= 0) and np.all(got <= 100)


def test_additive_recovers_known_bias():
    """With exact data the additive model removes each expert's bias exactly."""
    # True quality v = 50, 70, 60; bias x = +10, y = -10 (sums to 0).
    # x reviews entries 0, 1 -> 60, 80; y reviews entries 1, 2 -> 60, 50 (linked via 1).
    got = calibrate(
        np.array([60.0, 80.0, 60.0, 50.0]), ["x", "x", "y", "y"], [0, 1, 1, 2], "additive"
    )
    assert got == pytest.approx([50.0, 70.0, 70.0, 60.0])


def test_additive_least_squares_with_noise():
    """With noise, an entry's calibrated mean is its fitted quality and biases sum to 0."""
    # x and y both review entries 0 and 1. x: 62, 80; y: 40, 62.
    # Normal equations: b_x - b_y = ((62-40) + (80-62))/2 = 20, Σb = 0 -> b = +10, -10.
    got = calibrate(
        np.array([62.0, 80.0, 40.0, 62.0]), ["x", "x", "y", "y"], [0, 1, 0, 1], "additive"
    )
    assert got == pytest.approx([52.0, 70.0, 50.0, 72.0])


def test_additive_disconnected_graph_names_components():
    """Experts who share no entry cannot be compared; the error says who is split."""
    s = np.array([60.0, 80.0, 50.0])
    with pytest.raises(RankingError) as err:
        calibrate(s, ["x", "x", "y"], [0, 1, 2], "additive", ["A01", "A02", "A03"])
    assert err.value.code == "calibration_graph_disconnected"
    assert err.value.details["components"] == [
        {"experts": ["x"], "entries": ["A01", "A02"]},
        {"experts": ["y"], "entries": ["A03"]},
    ]


def test_calibration_none_is_identity():
    """Without calibration the review scores are used as they are."""
    s = np.array([12.5, 99.0])
    assert calibrate(s, ["x", "y"], [0, 0], "none").tolist() == [12.5, 99.0]


@given(st.lists(st.floats(0, 100), min_size=1, max_size=12))
def test_aggregates_between_min_and_max(scores):
    """Every aggregate lies between the lowest and the highest review."""
    experts = [f"e{k}" for k in range(len(scores))]
    for how in ("mean", "trimmed_mean", "median"):
        e, _ = aggregate(scores, experts, how)
        assert min(scores) - 1e-9 <= e <= max(scores) + 1e-9
