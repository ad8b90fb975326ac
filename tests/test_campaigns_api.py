"""Campaign set-up through the JSON API."""

import uuid

import pytest

from service.extensions import db
from service.models import AuditEvent
from tests.support import ADMIN, campaign_doc, error_code


def test_create_campaign_returns_document_with_defaults(client, clock):
    """An office creates a campaign and gets the full document back, defaults filled in."""
    r = client.post("/api/v1/campaigns", json=campaign_doc(), headers=ADMIN)
    assert r.status_code == 201
    body = r.json
    assert body["slug"] == "c1"
    assert body["voting"]["limit"] == "once"
    assert body["voting"]["kiosk_grace_hours"] == 24
    assert body["review"]["aggregate"] == "trimmed_mean"
    assert [c["key"] for c in body["review"]["criteria"]] == ["impact", "novelty"]
    assert body["ranking"]["tie_break"] == ["votes", "expert", "reviews", "cost", "lot"]
    assert body["results"] == {"live": False, "auto_publish": True}
    assert body["status"] == "upcoming"
    assert body["rules_locked"] is False
    assert body["created_at"].endswith("+00:00")


def test_campaign_status_follows_the_clock(client, clock, make_campaign):
    """Status moves from upcoming to voting to review to closed as time passes."""
    from datetime import datetime

    make_campaign()
    seen = []
    for at in (
        "2026-11-20T09:00:00+08:00",
        "2026-11-22T09:00:00+08:00",
        "2026-11-29T09:00:00+08:00",
        "2026-12-01T09:00:00+08:00",
    ):
        clock.set(datetime.fromisoformat(at))
        seen.append(client.get("/api/v1/campaigns/c1").json["status"])
    assert seen == ["upcoming", "voting", "review", "closed"]


def test_list_and_get_campaigns_are_public(client, make_campaign):
    """Anyone can list campaigns and read one; an unknown slug is 404 not_found."""
    make_campaign("c1")
    make_campaign("c2", entries=None)
    r = client.get("/api/v1/campaigns")
    assert r.status_code == 200
    assert [c["slug"] for c in r.json] == ["c1", "c2"]
    assert r.json[0]["entries_count"] == 3
    assert client.get("/api/v1/campaigns/c2").json["title"] == "优秀案例评选"
    r = client.get("/api/v1/campaigns/nope")
    assert r.status_code == 404 and error_code(r) == "not_found"


def test_duplicate_slug_is_409_slug_taken(client, make_campaign):
    """A second campaign with the same slug is refused with slug_taken."""
    make_campaign()
    r = client.post("/api/v1/campaigns", json=campaign_doc(), headers=ADMIN)
    assert r.status_code == 409 and error_code(r) == "slug_taken"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"voting": {"min_choices": 4, "max_choices": 3}}, "voting"),
        ({"ranking": {"public_weight": 0, "expert_weight": 0}}, "ranking"),
        ({"ranking": {"public_weight": -1}}, "ranking"),
        (
            {
                "voting": {
                    "opens_at": "2026-11-28T09:00:00+08:00",
                    "closes_at": "2026-11-21T09:00:00+08:00",
                }
            },
            "voting",
        ),
        ({"voting": {"opens_at": "2026-11-21T09:00:00"}}, "voting"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        (
            {
                "review": {
                    "criteria": [{"key": "a", "max_points": 10}, {"key": "a", "max_points": 5}]
                }
            },
            "review",
        ),
        ({"selection": {"rule": "greedy_budget"}}, "selection"),
        (
            {
                "selection": {
                    "rule": "top",
                    "winners": 2,
                    "categories": {"x": {"min": 2}, "y": {"min": 1}},
                }
            },
            "selection",
        ),
        (
            {"selection": {"rule": "top", "winners": 3, "categories": {"x": {"min": 2, "max": 1}}}},
            "selection",
        ),
        ({"review": {"criteria": []}}, "review"),
        ({"voting": {"voter_id": "email"}}, "voting"),
        ({"voting": {"channels": []}}, "voting"),
        ({"surprise": 1}, "surprise"),
        ({"slug": "Not A Slug"}, "slug"),
    ],
)
def test_invalid_campaigns_are_422_with_fields(client, clock, overrides, field):
    """Rules a user could not run are refused with 422 and the offending field named."""
    r = client.post("/api/v1/campaigns", json=campaign_doc(**overrides), headers=ADMIN)
    assert r.status_code == 422, r.json
    assert error_code(r) == "validation_error"
    assert field in r.json["error"]["details"]["fields"]
    assert client.get("/api/v1/campaigns").json == []


def test_vote_only_campaign_needs_no_rubric(client, clock):
    """A vote-only campaign (expert weight 0) is valid without criteria."""
    doc = campaign_doc(review={"criteria": []}, ranking={"public_weight": 1, "expert_weight": 0})
    assert client.post("/api/v1/campaigns", json=doc, headers=ADMIN).status_code == 201


def test_patch_changes_texts_and_rules_before_lock(client, make_campaign, app):
    """Before any ballot, every field can change; the change is audited."""
    make_campaign()
    r = client.patch(
        "/api/v1/campaigns/c1",
        json={"title": "新标题", "voting": {"max_choices": 2}},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.json
    assert r.json["title"] == "新标题" and r.json["voting"]["max_choices"] == 2
    assert r.json["voting"]["voter_id"] == "cn_mobile"  # untouched fields kept
    with app.app_context():
        actions = [e.action for e in db.session.query(AuditEvent)]
    assert "campaign.update" in actions


def test_patch_invalid_merge_is_422_and_changes_nothing(client, make_campaign):
    """A patch that makes the document invalid is refused whole."""
    make_campaign()
    r = client.patch(
        "/api/v1/campaigns/c1", json={"title": "x", "voting": {"min_choices": 9}}, headers=ADMIN
    )
    assert r.status_code == 422
    assert client.get("/api/v1/campaigns/c1").json["title"] == "优秀案例评选"


def test_patch_cannot_change_slug(client, make_campaign):
    """The slug is the campaign's identity: changing it is a 422."""
    make_campaign()
    r = client.patch("/api/v1/campaigns/c1", json={"slug": "c9"}, headers=ADMIN)
    assert r.status_code == 422 and "slug" in r.json["error"]["details"]["fields"]


def _lock(app, slug="c1"):
    """Accept a ballot the way the ballot path will: lock and insert in one transaction."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from engine import merkle
    from service.domain.campaigns import lock_rules
    from service.models import Ballot, Campaign

    with app.app_context():
        c = db.session.scalar(select(Campaign).where(Campaign.slug == slug))
        lock_rules(c)
        db.session.add(
            Ballot(
                id="00000000-0000-4000-8000-000000000001",
                campaign_id=c.id,
                voter_key="k" * 64,
                dedup_slot="once",
                channel="web",
                cast_at=datetime.now(UTC),
                content_digest="d" * 64,
                receipt="R1",
                nonce="n",
                leaf=merkle.leaf_hash(b"R1"),
                choice_ids=b"",  # no choices
            )
        )
        db.session.commit()


@pytest.mark.parametrize(
    "patch",
    [
        {"voting": {"max_choices": 2}},
        {"voting": {"limit": "daily"}},
        {"voting": {"voter_id": "member_code"}},
        {"voting": {"channels": ["kiosk"]}},
        {"review": {"criteria": [{"key": "impact", "max_points": 50}]}},
        {"ranking": {"public_weight": 0.5}},
        {"selection": {"winners": 1}},
        {"timezone": "UTC"},
    ],
)
def test_rules_lock_after_first_ballot(client, make_campaign, app, patch):
    """Once a ballot exists, rule changes get 409 rules_locked naming the fields."""
    make_campaign()
    _lock(app)
    r = client.patch("/api/v1/campaigns/c1", json=patch, headers=ADMIN)
    assert r.status_code == 409 and error_code(r) == "rules_locked"
    assert r.json["error"]["details"]["fields"]
    assert client.get("/api/v1/campaigns/c1").json["rules_locked"] is True


def test_texts_and_closing_times_stay_editable_after_lock(client, make_campaign, app):
    """After the lock the title and the windows can still change, and extensions are audited."""
    make_campaign()
    _lock(app)
    r = client.patch(
        "/api/v1/campaigns/c1",
        json={"title": "延长投票", "voting": {"closes_at": "2026-12-05T18:00:00+08:00"}},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.json
    assert r.json["voting"]["closes_at"] == "2026-12-05T18:00:00+08:00"
    with app.app_context():
        event = db.session.query(AuditEvent).filter_by(action="campaign.update").one()
    assert event.details["windows"]["voting.closes_at"]["to"] == "2026-12-05T18:00:00+08:00"


OUT_OF_RANGE = [
    "9999-12-31T23:59:59+08:00",
    "9999-12-31T23:59:59-12:00",
    "0001-01-01T00:00:00+08:00",
    "0001-01-01T00:00:00+00:00",
    "1999-12-31T23:59:59+00:00",
    "2101-01-01T00:00:00+00:00",
]


@pytest.mark.parametrize("when", OUT_OF_RANGE)
@pytest.mark.parametrize(
    "section,field",
    [
        ("voting", "opens_at"),
        ("voting", "closes_at"),
        ("review", "opens_at"),
        ("review", "closes_at"),
    ],
)
def test_window_times_outside_2000_2100_are_422_naming_the_field(
    client, clock, make_campaign, section, field, when
):
    """Year 9999 or year 1 (which made /vote/<slug> answer 500) is refused with 422 on
    create and on PATCH, naming the field; nothing changes."""
    doc = campaign_doc("far")
    doc[section] = {**doc[section], field: when}
    if field == "opens_at":
        doc[section]["closes_at"] = "2100-12-31T00:00:00+00:00"
    r = client.post("/api/v1/campaigns", json=doc, headers=ADMIN)
    assert r.status_code == 422 and error_code(r) == "validation_error", r.json
    assert field in r.json["error"]["details"]["fields"][section]
    assert client.get("/api/v1/campaigns/far").status_code == 404

    make_campaign("c1")
    before = client.get("/api/v1/campaigns/c1").json
    r = client.patch("/api/v1/campaigns/c1", json={section: {field: when}}, headers=ADMIN)
    assert r.status_code == 422, r.json
    assert field in r.json["error"]["details"]["fields"][section]
    assert client.get("/api/v1/campaigns/c1").json == before


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_extreme_accepted_windows_never_make_the_pages_fail(client, clock, tz):
    """The widest accepted windows (2000-01-01 to 2100-12-31, UTC) with the longest kiosk
    grace, in the timezones furthest east and west: the vote page, campaign, receipt and
    results pages answer without a 500, and a kiosk cast_at at either end is no 500."""
    from datetime import datetime

    doc = campaign_doc(
        "wide",
        timezone=tz,
        voting={
            "opens_at": "2000-01-01T00:00:00+00:00",
            "closes_at": "2100-12-31T23:59:59Z",
            "kiosk_grace_hours": 24 * 14,
        },
        review={"opens_at": "2000-01-01T00:00:00+00:00", "closes_at": "2100-12-31T23:59:59Z"},
    )
    assert client.post("/api/v1/campaigns", json=doc, headers=ADMIN).status_code == 201
    entries = [{"code": "A01", "title": "热线"}]
    assert client.post(
        "/api/v1/campaigns/wide/entries", json=entries, headers=ADMIN
    ).status_code in (201, 409)
    kiosk = client.post("/api/v1/kiosks", json={"name": "k"}, headers=ADMIN).json["token"]
    for at in ("2000-01-01T00:00:01+00:00", "2100-12-31T23:00:00+00:00"):
        clock.set(datetime.fromisoformat(at))
        for path in ("/vote/wide", "/vote/wide?lang=en", "/", "/results/wide"):
            assert client.get(path).status_code < 500, (path, at)
        assert client.get("/api/v1/campaigns/wide").status_code == 200
        for cast_at in (
            "2000-01-01T00:00:00+00:00",
            "2100-12-31T22:59:00+00:00",
            "0001-01-01T00:00:00+00:00",
            "9999-12-31T23:59:59+08:00",
        ):
            body = {
                "ballot_id": str(uuid.uuid4()),
                "voter_id": "13912345678",
                "choices": ["A01"],
                "cast_at": cast_at,
            }
            r = client.post(
                "/api/v1/campaigns/wide/ballots",
                json=body,
                headers={"Authorization": f"Bearer {kiosk}"},
            )
            assert r.status_code < 500, (cast_at, r.json)
            if cast_at[:4] in ("0001", "9999"):
                assert r.status_code == 422 and "cast_at" in r.json["error"]["details"]["fields"]
