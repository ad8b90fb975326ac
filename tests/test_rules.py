"""Typed campaign rules (schemas/rules.py): defaults once, attributes not dictionary keys."""

from __future__ import annotations

from datetime import datetime

from marshmallow import fields

from engine import Method
from engine import vocabulary as vocab
from schemas.campaign import (
    CampaignSchema,
    RankingSchema,
    ResultsSchema,
    ReviewSchema,
    SelectionSchema,
    VotingSchema,
)
from schemas.rules import DEFAULTS, CampaignRules
from service.domain.campaigns import get_campaign

SECTIONS = {
    "voting": VotingSchema,
    "review": ReviewSchema,
    "ranking": RankingSchema,
    "selection": SelectionSchema,
    "results": ResultsSchema,
}


def test_every_schema_default_is_the_rules_default():
    """The schema's load_default of each rule field is the dataclass default, and every
    stored field has a typed attribute."""
    for section, schema in SECTIONS.items():
        rules = getattr(DEFAULTS, section)
        for name, field in schema().fields.items():
            if name == "criteria":  # stored as rows, not in the section
                continue
            default = field.load_default
            default = default() if callable(default) else default
            typed = getattr(rules, name)
            if isinstance(field, fields.List):
                typed = list(typed)
            assert default == typed, f"{section}.{name}"


def test_the_schema_uses_the_engine_vocabularies():
    ranking, review, selection = RankingSchema(), ReviewSchema(), SelectionSchema()
    assert tuple(ranking.fields["vote_score"].validators[0].choices) == vocab.VOTE_SCORES
    assert tuple(review.fields["aggregate"].validators[0].choices) == vocab.AGGREGATES
    assert tuple(review.fields["calibration"].validators[0].choices) == vocab.CALIBRATIONS
    assert tuple(selection.fields["rule"].validators[0].choices) == vocab.RULES
    assert tuple(ranking.fields["tie_break"].inner.validators[0].choices) == vocab.TIE_RULES
    assert Method().tie_break == vocab.TIE_RULES


def test_stored_sections_load_as_typed_rules():
    doc = CampaignSchema().load(
        {
            "slug": "r1",
            "title": "t",
            "voting": {
                "opens_at": "2026-11-20T09:00:00+08:00",
                "channels": ["web"],
                "max_choices": 3,
                "eligibility": "roll",
            },
            "review": {"criteria": [{"key": "a", "max_points": 10}]},
            "selection": {"rule": "top", "winners": 2, "categories": {"x": {"min": 1}}},
        }
    )
    stored = CampaignSchema().dump(doc)
    rules = CampaignRules.load(*(stored[s] for s in SECTIONS))
    assert rules.voting.opens_at == datetime.fromisoformat("2026-11-20T09:00:00+08:00")
    assert rules.voting.opens_at.tzinfo is not None
    assert rules.voting.channels == ("web",) and rules.voting.max_choices == 3
    assert rules.voting.on_roll and not rules.voting.sms
    assert rules.selection.categories["x"].min == 1 and rules.selection.categories["x"].max is None
    method = rules.method()
    assert method.winners == 2 and method.categories == {"x": {"min": 1, "max": None}}
    assert CampaignRules.load() == DEFAULTS


def test_campaign_rules_follow_an_update(client, app, make_campaign):
    """campaign.rules is rebuilt when a section is replaced (a PATCH)."""
    make_campaign("c1")
    from tests.support import ADMIN

    r = client.patch("/api/v1/campaigns/c1", json={"voting": {"max_choices": 4}}, headers=ADMIN)
    assert r.status_code == 200, r.json
    with app.app_context():
        campaign = get_campaign("c1")
        assert campaign.rules.voting.max_choices == 4
        assert campaign.rules is campaign.rules  # built once per stored documents
