"""The campaign document is specified in the repository: docs/campaign.md names every
field, and the OpenAPI document describes every field."""

from __future__ import annotations

from pathlib import Path

import schemas.campaign as sc

DOC = Path(__file__).resolve().parent.parent / "docs" / "campaign.md"
SCHEMAS = [
    name
    for name in dir(sc)
    if name.endswith("Schema") and name not in ("Schema", "CampaignPatchSchema")
]


def test_every_field_is_in_the_doc_page():
    text = DOC.read_text(encoding="utf-8")
    missing = [
        f"{name}.{field}"
        for name in SCHEMAS
        for field in getattr(sc, name)._declared_fields
        if f"| `{field}` |" not in text
    ]
    assert missing == []
    for template in ("彭邻格项目遴选", "案例评选", "楼组之最", "publish-campaign"):
        assert template in text


def test_every_field_has_a_description_in_openapi(client):
    spec = client.get("/api/openapi.json").json["components"]["schemas"]
    undescribed = [
        f"{schema}.{prop}"
        for schema in (
            "Campaign",
            "Voting",
            "Review",
            "Criterion",
            "Ranking",
            "Selection",
            "Quota",
            "Results",
        )
        for prop, body in spec[schema]["properties"].items()
        if not body.get("description")
    ]
    assert undescribed == []
