"""Explicit drafts: invisible to the public, no voting whatever the dates, everything
editable; publish-campaign ends the draft and today's rules apply."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from tests.support import ADMIN, ENTRIES, campaign_doc, error_code

OPEN = datetime.fromisoformat("2026-11-22T10:00:00+08:00")  # inside the voting window


def _ballot(voter="13912345678"):
    return {"ballot_id": str(uuid.uuid4()), "voter_id": voter, "choices": ["A01"]}


@pytest.fixture
def draft(client, clock):
    r = client.post("/api/v1/campaigns", json=campaign_doc("d1", draft=True), headers=ADMIN)
    assert r.status_code == 201 and r.json["draft"] is True and r.json["status"] == "draft"
    r = client.post("/api/v1/campaigns/d1/entries", json=ENTRIES, headers=ADMIN)
    assert r.status_code == 201
    clock.set(OPEN)  # its dates say voting is open
    return clock


def test_a_draft_is_invisible_to_the_public(client, draft):
    for path in (
        "/api/v1/campaigns/d1",
        "/api/v1/campaigns/d1/entries",
        "/api/v1/campaigns/d1/entries/A01",
        "/api/v1/campaigns/d1/results",
        "/api/v1/campaigns/d1/results.csv",
        "/api/v1/campaigns/d1/publications/1",
    ):
        r = client.get(path)
        assert r.status_code == 404 and error_code(r) == "not_found", path
    assert [c["slug"] for c in client.get("/api/v1/campaigns").json] == []
    assert client.get("/vote/d1").status_code == 404
    assert client.get("/results/d1").status_code == 404
    assert "d1" not in client.get("/").text and "优秀案例评选" not in client.get("/").text
    # An admin token still reads it.
    assert client.get("/api/v1/campaigns/d1", headers=ADMIN).json["draft"] is True
    assert [c["slug"] for c in client.get("/api/v1/campaigns", headers=ADMIN).json] == ["d1"]


def test_no_voting_in_a_draft_whatever_its_dates(client, app, draft):
    r = client.post("/api/v1/campaigns/d1/ballots", json=_ballot())
    assert r.status_code == 404
    kiosk = client.post("/api/v1/kiosks", json={"name": "大厅"}, headers=ADMIN).json
    r = client.post(
        "/api/v1/campaigns/d1/ballots",
        json=_ballot(),
        headers={"Authorization": f"Bearer {kiosk['token']}"},
    )
    assert r.status_code == 404
    # The domain refuses too, whoever calls it.
    from service.domain.ballots import cast_ballot
    from service.domain.campaigns import get_campaign
    from service.errors import ApiError

    with app.app_context():
        with pytest.raises(ApiError) as exc:
            cast_ballot(
                get_campaign("d1"),
                ballot_id=str(uuid.uuid4()),
                voter_id="13912345678",
                choices=["A01"],
                channel="web",
                kiosk_id=None,
                cast_at=None,
            )
        assert exc.value.code == "voting_not_open" and exc.value.details == {"draft": True}


def test_everything_stays_editable_in_a_draft(client, draft):
    # Voting "opened" by the dates: entries would be locked in a published campaign.
    r = client.post(
        "/api/v1/campaigns/d1/entries", json={"code": "A04", "title": "新增"}, headers=ADMIN
    )
    assert r.status_code == 201
    r = client.patch("/api/v1/campaigns/d1/entries/A04", json={"cost": 5}, headers=ADMIN)
    assert r.status_code == 200
    assert client.delete("/api/v1/campaigns/d1/entries/A04", headers=ADMIN).status_code == 204
    r = client.patch("/api/v1/campaigns/d1", json={"voting": {"max_choices": 2}}, headers=ADMIN)
    assert r.status_code == 200 and r.json["voting"]["max_choices"] == 2
    assert r.json["rules_locked"] is False


def test_publish_makes_it_public_and_todays_rules_apply(client, app, draft):
    r = client.post("/api/v1/campaigns/d1/publish-campaign")
    assert r.status_code == 401
    r = client.post("/api/v1/campaigns/d1/publish-campaign", headers=ADMIN)
    assert r.status_code == 200 and r.json["draft"] is False and r.json["status"] == "voting"
    assert client.get("/api/v1/campaigns/d1").status_code == 200
    assert client.get("/vote/d1").status_code == 200
    assert "优秀案例评选" in client.get("/").text
    r = client.post("/api/v1/campaigns/d1/ballots", json=_ballot())
    assert r.status_code == 201, r.json
    # Voting has opened: entries are fixed now, and the first ballot locked the rules.
    r = client.post(
        "/api/v1/campaigns/d1/entries", json={"code": "A05", "title": "x"}, headers=ADMIN
    )
    assert r.status_code == 409 and error_code(r) == "entries_locked"
    r = client.patch("/api/v1/campaigns/d1", json={"voting": {"max_choices": 1}}, headers=ADMIN)
    assert r.status_code == 409 and error_code(r) == "rules_locked"
    again = client.post("/api/v1/campaigns/d1/publish-campaign", headers=ADMIN)
    assert again.status_code == 409 and error_code(again) == "not_a_draft"
    from service.extensions import db
    from service.models import AuditEvent

    with app.app_context():
        assert db.session.query(AuditEvent).filter_by(action="campaign.publish").count() == 1


def test_draft_cannot_be_toggled_by_patch(client, draft):
    r = client.patch("/api/v1/campaigns/d1", json={"draft": False}, headers=ADMIN)
    assert r.status_code == 422 and "publish-campaign" in str(r.json)
    # Repeating the current value is harmless.
    assert (
        client.patch("/api/v1/campaigns/d1", json={"draft": True}, headers=ADMIN).status_code == 200
    )


def test_without_draft_a_campaign_behaves_as_before(client, clock):
    r = client.post("/api/v1/campaigns", json=campaign_doc("c1"), headers=ADMIN)
    assert r.status_code == 201 and r.json["draft"] is False and r.json["status"] == "upcoming"
    assert client.get("/api/v1/campaigns/c1").status_code == 200
    r = client.post("/api/v1/campaigns/c1/publish-campaign", headers=ADMIN)
    assert r.status_code == 409 and error_code(r) == "not_a_draft"


def test_experts_cannot_score_in_a_draft(client, draft):
    expert = client.post("/api/v1/campaigns/d1/experts", json={"name": "王"}, headers=ADMIN).json
    client.put(
        f"/api/v1/campaigns/d1/experts/{expert['id']}/assignments",
        json={"codes": ["A01"]},
        headers=ADMIN,
    )
    r = client.put(
        "/api/v1/campaigns/d1/entries/A01/score",
        json={"scores": {"impact": 30, "novelty": 10}},
        headers={"Authorization": f"Bearer {expert['token']}"},
    )
    assert r.status_code == 403 and error_code(r) == "review_not_open", r.json
