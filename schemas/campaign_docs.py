"""Descriptions of every field of the campaign document, for the OpenAPI document
(``metadata["description"]``). docs/campaign.md is the long form; a test keeps both
complete."""

from __future__ import annotations

from marshmallow import Schema

DESCRIPTIONS: dict[str, dict[str, str]] = {
    "CampaignSchema": {
        "slug": "Identifier in URLs: 2-64 lower-case letters, digits, hyphens; fixed once created.",
        "draft": "true: invisible to the public, no voting or scoring whatever the dates, "
        "everything editable, until POST …/publish-campaign. Default false (public at once).",
        "title": "Title shown to voters, 1-300 characters.",
        "description": "Longer text for the voting page (up to 20,000 characters), or null.",
        "timezone": "IANA time zone of the campaign (default Asia/Shanghai): daily limits "
        "and the console's local times use it.",
        "voting": "Public vote: windows, channels, identifiers, limits (VotingSchema).",
        "review": "Expert review: window, rubric and aggregation (ReviewSchema).",
        "ranking": "How votes and expert scores combine into one ranking (RankingSchema).",
        "selection": "Which ranked entries are selected (SelectionSchema); required.",
        "results": "When results are shown and published (ResultsSchema).",
        "status": "Read-only: draft, upcoming, voting, review or closed (from the clock).",
        "rules_locked": "Read-only: true once a ballot or score exists (rules can no longer change).",
        "entries_count": "Read-only: number of entries.",
        "created_at": "Read-only: creation time (RFC 3339).",
        "updated_at": "Read-only: last change (RFC 3339).",
    },
    "VotingSchema": {
        "opens_at": "Voting opens (RFC 3339 with offset, 2000-2100), or null: not scheduled.",
        "closes_at": "Voting closes; must be after opens_at; null: open-ended.",
        "min_choices": "Fewest entries a ballot must choose (1-500, default 1).",
        "max_choices": "Most entries a ballot may choose (1-500, default 1; >= min_choices).",
        "limit": "once (one ballot per voter, default) or daily (one per campaign-local day).",
        "voter_id": "Identifier voters give: cn_mobile (default), cn_resident_id or member_code.",
        "channels": "Where ballots come from: kiosk and/or web (default both, no duplicates).",
        "kiosk_grace_hours": "Hours after closes_at during which kiosks may still upload "
        "ballots cast before closing (0-336, default 24).",
        "eligibility": "open (anyone with a valid identifier, default) or roll (only "
        "identifiers on the campaign's electoral roll).",
        "area_scope": "true: voters choose only entries of their own area/grid (needs "
        "eligibility roll). Default false.",
        "verify": "none (default) or sms: web ballots need an SMS one-time code (needs "
        "voter_id cn_mobile).",
        "verify_kiosk": "true: kiosk ballots need the SMS code too (needs verify sms).",
        "sms_daily_budget": "Most SMS sent per day for this campaign (default 1000).",
    },
    "CriterionSchema": {
        "key": "Criterion key: lower-case letter, then letters, digits, underscores (max 64).",
        "label": "Name shown to experts (max 200 characters).",
        "max_points": "Full marks, > 0 and <= 10,000.",
        "weight": "Weight in the expert score (0-1000, default 1).",
    },
    "ReviewSchema": {
        "opens_at": "Expert review opens (RFC 3339), or null.",
        "closes_at": "Expert review closes; after opens_at; or null.",
        "min_reviews": "Entries with fewer reviews are marked and cannot be selected (default 3).",
        "aggregate": "Combining an entry's reviews: mean, trimmed_mean (default) or median.",
        "calibration": "Correcting reviewers' strictness: none (default), zscore or additive.",
        "recuse_same_area": "true (default): experts do not review entries of their own area.",
        "criteria": "The rubric: a list of criteria with unique keys, at least one weight > 0; "
        "required when ranking.expert_weight > 0.",
    },
    "RankingSchema": {
        "public_weight": "Weight of the vote score (>= 0, default 0.3).",
        "expert_weight": "Weight of the expert score (>= 0, default 0.7); not both zero.",
        "vote_score": "Votes to a 0-100 score: max (default), approval_rate, share, "
        "rank_points or log.",
        "tie_break": "Order of tie-break rules among votes, expert, reviews, cost, lot "
        "(default all, in that order; no duplicates).",
    },
    "QuotaSchema": {
        "min": "Fewest winners of the category (default 0).",
        "max": "Most winners of the category, or null: no maximum; >= min.",
    },
    "SelectionSchema": {
        "rule": "top (default; needs winners), greedy_budget, greedy_budget_no_skip or "
        "equal_shares (these need budget).",
        "winners": "Number of winners (rule top), or a cap on winners; >= 1 or null.",
        "budget": "Budget for the budget rules (> 0), or null.",
        "categories": "Quotas per entry category, {name: {min, max}} (rule top only; the "
        "minima must not exceed winners).",
        "max_per_area": "Most winners from one area, or null.",
        "award": "Name of the award shown on the results (max 100 characters), or null.",
        "min_votes": "Entries with fewer votes cannot be selected (default 0).",
    },
    "ResultsSchema": {
        "live": "true: a provisional ranking is public while voting runs (default false).",
        "auto_publish": "true (default): results are published automatically after closing.",
    },
}


def describe(schemas: dict[str, type[Schema]]) -> None:
    """Attach the descriptions to the schemas' declared fields (before any instance)."""
    for name, fields in DESCRIPTIONS.items():
        declared = schemas[name]._declared_fields
        for field, text in fields.items():
            declared[field].metadata["description"] = text  # type: ignore[index]  # a dict at runtime
