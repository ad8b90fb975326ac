"""A campaign's rules as typed, frozen values (DESIGN.md, "Campaign document").

The five rule sections are stored as JSON documents on the campaign (the schema's
canonical dump: ISO times, every default filled). The domain and the views never read
those dictionaries: they read ``campaign.rules.voting.min_choices`` and so on, built
here. Every default lives in these dataclasses, once: the campaign schema takes its
``load_default`` values from them, and the ranking method's defaults come from the
engine's ``Method`` (the one place the engine defines them).

This module imports only the standard library and the engine's pure types, so the
schemas, the models and the domain can all import it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.types import Method
from engine.vocabulary import BUDGET_RULES

# The identifier kinds a campaign may use (service/voter_ids.py normalises each one).
VOTER_ID_KINDS = ("cn_mobile", "cn_resident_id", "member_code")
VERIFY = ("none", "sms")
CHANNELS = ("kiosk", "web")
ELIGIBILITY = ("open", "roll")
LIMITS = ("once", "daily")


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@dataclass(frozen=True)
class Window:
    """An opening window; either end may be unset (not scheduled yet, or open-ended)."""

    opens_at: datetime | None = None
    closes_at: datetime | None = None

    def state(self, at: datetime) -> str:
        """``unscheduled`` | ``upcoming`` | ``open`` | ``closed`` at ``at``."""
        if self.opens_at is None:
            return "unscheduled"
        if at < self.opens_at:
            return "upcoming"
        if self.closes_at is not None and at >= self.closes_at:
            return "closed"
        return "open"


@dataclass(frozen=True)
class VotingRules(Window):
    min_choices: int = 1
    max_choices: int = 1
    limit: str = "once"  # once | daily
    voter_id: str = "cn_mobile"  # one of VOTER_ID_KINDS
    channels: tuple[str, ...] = CHANNELS
    # Kiosk ballots cast offline before closes_at are accepted this long after it.
    kiosk_grace_hours: float = 24.0
    # Who may vote: anyone with a valid identifier, or only identifiers on the roll;
    # with area_scope a voter chooses only entries of their own area/grid.
    eligibility: str = "open"  # open | roll
    area_scope: bool = False
    # SMS one-time codes for web ballots (kiosks are attended: only with verify_kiosk).
    verify: str = "none"  # none | sms
    verify_kiosk: bool = False
    sms_daily_budget: int = 1000

    @property
    def on_roll(self) -> bool:
        return self.eligibility == "roll"

    @property
    def sms(self) -> bool:
        return self.verify == "sms"


@dataclass(frozen=True)
class ReviewRules(Window):
    min_reviews: int = Method.min_reviews
    aggregate: str = Method.aggregate
    calibration: str = Method.calibration
    # An expert does not score entries of their own area.
    recuse_same_area: bool = True


@dataclass(frozen=True)
class RankingRules:
    public_weight: float = Method.public_weight
    expert_weight: float = Method.expert_weight
    vote_score: str = Method.vote_score
    tie_break: tuple[str, ...] = Method.tie_break


@dataclass(frozen=True)
class Quota:
    min: int = 0
    max: int | None = None


@dataclass(frozen=True)
class SelectionRules:
    rule: str = Method.rule
    winners: int | None = Method.winners
    budget: float | None = Method.budget
    categories: Mapping[str, Quota] = field(default_factory=dict)
    max_per_area: int | None = Method.max_per_area
    award: str | None = Method.award
    # Entries with fewer votes cannot be selected (a participation threshold).
    min_votes: int = Method.min_votes

    @property
    def spends_budget(self) -> bool:
        return self.rule in BUDGET_RULES


@dataclass(frozen=True)
class ResultsRules:
    live: bool = False
    auto_publish: bool = True


def _load(cls: type, data: Mapping[str, Any] | None) -> Any:
    """A rules dataclass from a stored section; absent keys take the defaults."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not data or f.name not in data:
            continue
        value = data[f.name]
        if f.name in ("opens_at", "closes_at"):
            value = _time(value)
        elif f.name == "categories":
            value = {
                str(cat): Quota(min=int(q.get("min") or 0), max=q.get("max"))
                for cat, q in (value or {}).items()
            }
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


@dataclass(frozen=True)
class CampaignRules:
    voting: VotingRules = VotingRules()
    review: ReviewRules = ReviewRules()
    ranking: RankingRules = RankingRules()
    selection: SelectionRules = SelectionRules()
    results: ResultsRules = ResultsRules()

    @classmethod
    def load(
        cls,
        voting: Mapping[str, Any] | None = None,
        review: Mapping[str, Any] | None = None,
        ranking: Mapping[str, Any] | None = None,
        selection: Mapping[str, Any] | None = None,
        results: Mapping[str, Any] | None = None,
    ) -> CampaignRules:
        return cls(
            voting=_load(VotingRules, voting),
            review=_load(ReviewRules, review),
            ranking=_load(RankingRules, ranking),
            selection=_load(SelectionRules, selection),
            results=_load(ResultsRules, results),
        )

    def method(self) -> Method:
        """The engine's view of these rules: ranking, review and selection settings."""
        review, ranking, selection = self.review, self.ranking, self.selection
        return Method(
            public_weight=float(ranking.public_weight),
            expert_weight=float(ranking.expert_weight),
            vote_score=ranking.vote_score,
            aggregate=review.aggregate,
            calibration=review.calibration,
            min_reviews=int(review.min_reviews),
            tie_break=tuple(ranking.tie_break) or Method.tie_break,
            rule=selection.rule,
            winners=selection.winners,
            budget=selection.budget,
            categories={
                cat: {"min": q.min, "max": q.max} for cat, q in selection.categories.items()
            },
            max_per_area=selection.max_per_area,
            award=selection.award,
            min_votes=int(selection.min_votes or 0),
        )


DEFAULTS = CampaignRules()
