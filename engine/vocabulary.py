"""The method vocabularies and fixed numbers of the ranking engine, defined once.

The campaign schema validates against these tuples, the engine dispatches on them and
the results page puts them into words: a new method is added here first. This module
imports nothing but the standard library, so anything may import it.
"""

from __future__ import annotations

# ranking.vote_score: how a count of approvals becomes a 0..100 public score.
VOTE_SCORES = ("max", "approval_rate", "share", "rank_points", "log")
# review.aggregate: how an entry's expert scores become one expert score.
AGGREGATES = ("mean", "trimmed_mean", "median")
# review.calibration: how expert leniency is corrected before aggregating.
CALIBRATIONS = ("none", "zscore", "additive")
# selection.rule: how winners are picked from the ranking.
RULES = ("top", "greedy_budget", "greedy_budget_no_skip", "equal_shares")
# The rules that spend selection.budget (and need it).
BUDGET_RULES = ("greedy_budget", "greedy_budget_no_skip", "equal_shares")
# ranking.tie_break: the keys that order tied entries; the default chain is all of them.
TIE_RULES = ("votes", "expert", "reviews", "cost", "lot")

# The label of a selected row when the campaign names no award and has no quotas.
DEFAULT_AWARD = "入选"

# A trimmed mean needs enough reviews left after dropping the two extremes to still be
# a panel opinion; DESIGN.md fixes the threshold at five (fewer: the plain mean).
TRIM_MIN_REVIEWS = 5

# Published precision: every score in a result is rounded to this many decimals, once,
# when rows are built. Ranks and ties are decided on full precision (compared after
# rounding to TIE_DECIMALS, so float noise never decides a tie), never on these.
PUBLISHED_DECIMALS = 4
TIE_DECIMALS = 9
# Calibration parameters are published with more decimals than scores, so that a reader
# recomputing a calibrated score from the published raw score meets the engine's value
# to well within the published rounding of the scores themselves.
PARAM_DECIMALS = 9
