"""Expert review: rubric scores, revisions with history, recusal, windows, token limits."""

import threading
from datetime import datetime

import pytest
from sqlalchemy import func, select

from service.extensions import db
from service.models import Score, ScoreHistory
from tests.support import ADMIN, error_code

REVIEWING = datetime.fromisoformat("2026-11-29T10:00:00+08:00")


@pytest.fixture
def campaign(make_campaign, clock):
    make_campaign()
    clock.set(REVIEWING)
    return "c1"


@pytest.fixture
def expert(client, campaign):
    """An expert from an area that has no entries."""
    r = client.post("/api/v1/campaigns/c1/experts", json={"name": "王建华"}, headers=ADMIN)
    assert r.status_code == 201
    return {**r.json, "headers": {"Authorization": f"Bearer {r.json['token']}"}}


def score(client, headers, code="A01", impact=30, novelty=10, **extra):
    body = {"scores": {"impact": impact, "novelty": novelty}, **extra}
    return client.put(f"/api/v1/campaigns/c1/entries/{code}/score", json=body, headers=headers)


def test_register_expert_returns_token_and_link_once(client, expert):
    """The office registers an expert and gets the token and personal link once."""
    assert expert["token"].startswith("exp_")
    assert expert["review_url"] == f"/review/c1/login?token={expert['token']}"
    listed = client.get("/api/v1/campaigns/c1/experts", headers=ADMIN).json
    assert listed[0]["name"] == "王建华" and "token" not in listed[0]


def test_first_score_201_then_revision_200_with_history(client, expert, app):
    """A revision replaces the live score; every version stays in the history."""
    r = score(client, expert["headers"], impact=30, novelty=10, comment="好")
    assert r.status_code == 201, r.json
    # S = 100 * (30 + 10) / (40 + 20)
    assert r.json["total"] == pytest.approx(66.6667) and r.json["revision"] == 1
    r = score(client, expert["headers"], impact=40, novelty=20, comment="修改")
    assert r.status_code == 200 and r.json["total"] == 100 and r.json["revision"] == 2
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Score)) == 1
        assert db.session.scalar(select(func.count()).select_from(ScoreHistory)) == 2
    history = client.get("/api/v1/campaigns/c1/entries/A01/scores/history", headers=ADMIN).json
    assert [(h["revision"], h["total"], h["comment"]) for h in history["history"]] == [
        (1, pytest.approx(66.6667), "好"),
        (2, 100, "修改"),
    ]


def test_weighted_rubric_score(client, make_campaign, clock):
    """Criterion weights enter the review score S = 100·Σw·s / Σw·max."""
    make_campaign(
        review={
            "criteria": [
                {"key": "impact", "max_points": 40, "weight": 3},
                {"key": "novelty", "max_points": 20, "weight": 1},
            ]
        }
    )
    clock.set(REVIEWING)
    token = client.post("/api/v1/campaigns/c1/experts", json={"name": "x"}, headers=ADMIN).json[
        "token"
    ]
    r = score(client, {"Authorization": f"Bearer {token}"}, impact=20, novelty=20)
    # 100 * (3*20 + 1*20) / (3*40 + 1*20) = 8000 / 140
    assert r.json["total"] == pytest.approx(57.1429)


@pytest.mark.parametrize(
    ("scores", "code"),
    [
        ({"impact": 30}, "missing_criterion"),
        ({"impact": 30, "novelty": 10, "beauty": 5}, "unknown_criterion"),
        ({"impact": 41, "novelty": 10}, "out_of_range"),
        ({"impact": -1, "novelty": 10}, "out_of_range"),
        ({"impact": "30", "novelty": 10}, "validation_error"),
        ({"impact": True, "novelty": 10}, "validation_error"),
    ],
)
def test_bad_scores_are_422_and_store_nothing(client, expert, app, scores, code):
    """Every criterion present, no unknown key, 0 <= points <= max, numbers only."""
    r = client.put(
        "/api/v1/campaigns/c1/entries/A01/score", json={"scores": scores}, headers=expert["headers"]
    )
    assert r.status_code == 422 and error_code(r) == code, r.json
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Score)) == 0


def test_recusal_from_own_area(client, campaign):
    """An expert from 海鹰 may not score 海鹰's entry, and does not see it to score."""
    r = client.post(
        "/api/v1/campaigns/c1/experts", json={"name": "张丽萍", "area": "海鹰"}, headers=ADMIN
    )
    headers = {"Authorization": f"Bearer {r.json['token']}"}
    r = score(client, headers, code="A03")
    assert r.status_code == 403 and error_code(r) == "recused"
    codes = [
        e["code"]
        for e in client.get("/api/v1/campaigns/c1/review/assignments", headers=headers).json[
            "entries"
        ]
    ]
    assert codes == ["A01", "A02"]
    assert score(client, headers, code="A01").status_code == 201


def test_no_recusal_when_campaign_does_not_ask(client, make_campaign, clock):
    """With recuse_same_area false, an expert may score entries of their own area."""
    make_campaign(review={"recuse_same_area": False})
    clock.set(REVIEWING)
    token = client.post(
        "/api/v1/campaigns/c1/experts", json={"name": "x", "area": "海鹰"}, headers=ADMIN
    ).json["token"]
    assert score(client, {"Authorization": f"Bearer {token}"}, code="A03").status_code == 201


def test_review_window(client, expert, clock):
    """Before the review window: review_not_open; after: review_closed."""
    clock.set(datetime.fromisoformat("2026-11-21T08:00:00+08:00"))
    r = score(client, expert["headers"])
    assert r.status_code == 403 and error_code(r) == "review_not_open"
    clock.set(datetime.fromisoformat("2026-11-30T18:00:00+08:00"))
    r = score(client, expert["headers"])
    assert r.status_code == 403 and error_code(r) == "review_closed"


def test_assignments_list_own_scores(client, expert):
    """An expert sees every entry to score with their own score filled in."""
    score(client, expert["headers"], code="A02", impact=20, novelty=5)
    body = client.get("/api/v1/campaigns/c1/review/assignments", headers=expert["headers"]).json
    assert [c["key"] for c in body["criteria"]] == ["impact", "novelty"]
    by_code = {e["code"]: e["score"] for e in body["entries"]}
    assert by_code["A01"] is None and by_code["A02"]["scores"] == {"impact": 20, "novelty": 5}


def test_explicit_assignment_limits_what_an_expert_scores(client, expert):
    """With an explicit assignment, an expert scores only the assigned entries."""
    r = client.put(
        f"/api/v1/campaigns/c1/experts/{expert['id']}/assignments",
        json={"entries": ["A02"]},
        headers=ADMIN,
    )
    assert r.status_code == 200
    r = score(client, expert["headers"], code="A01")
    assert r.status_code == 403 and error_code(r) == "not_assigned"
    assert score(client, expert["headers"], code="A02").status_code == 201
    entries = client.get("/api/v1/campaigns/c1/review/assignments", headers=expert["headers"]).json[
        "entries"
    ]
    assert [e["code"] for e in entries] == ["A02"]
    r = client.put(
        f"/api/v1/campaigns/c1/experts/{expert['id']}/assignments",
        json={"entries": ["A99"]},
        headers=ADMIN,
    )
    assert r.status_code == 422 and error_code(r) == "unknown_entry"


def test_progress(client, campaign):
    """The office sees per entry how many reviews exist and per expert done/assigned."""
    tokens = []
    for name, area in (("a", None), ("b", None), ("c", "海鹰")):
        tokens.append(
            client.post(
                "/api/v1/campaigns/c1/experts", json={"name": name, "area": area}, headers=ADMIN
            ).json["token"]
        )
    for token in tokens:
        score(client, {"Authorization": f"Bearer {token}"}, code="A01")
    score(client, {"Authorization": f"Bearer {tokens[0]}"}, code="A03")
    body = client.get("/api/v1/campaigns/c1/review/progress", headers=ADMIN).json
    entries = {e["code"]: (e["reviews"], e["min_reviews_met"]) for e in body["entries"]}
    assert entries == {"A01": (3, True), "A02": (0, False), "A03": (1, False)}
    experts = {e["name"]: (e["done"], e["assigned"]) for e in body["experts"]}
    assert experts == {"a": (2, 3), "b": (1, 3), "c": (1, 2)}
    assert body["entries_complete"] == 1


def test_expert_token_only_scores(client, expert, make_campaign, clock):
    """An expert token is refused everywhere else (403), and in other campaigns."""
    h = expert["headers"]
    assert client.get("/api/v1/kiosks", headers=h).status_code == 403
    assert client.get("/api/v1/campaigns/c1/review/progress", headers=h).status_code == 403
    assert (
        client.post("/api/v1/campaigns/c1/experts", json={"name": "x"}, headers=h).status_code
        == 403
    )
    r = client.post(
        "/api/v1/campaigns/c1/ballots",
        headers=h,
        json={
            "ballot_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
            "voter_id": "13800138000",
            "choices": ["A01"],
        },
    )
    assert r.status_code == 403
    clock.set(datetime.fromisoformat("2026-11-20T10:00:00+08:00"))  # before c2 opens
    make_campaign("c2", entries=[{"code": "A01", "title": "x"}])
    clock.set(REVIEWING)
    r = client.put(
        "/api/v1/campaigns/c2/entries/A01/score",
        headers=h,
        json={"scores": {"impact": 1, "novelty": 1}},
    )
    assert r.status_code == 403 and error_code(r) == "forbidden"


def test_kiosk_and_anonymous_cannot_score(client, expert):
    """Scoring needs an expert token: anonymous 401, kiosk 403."""
    assert score(client, {}).status_code == 401
    token = client.post("/api/v1/kiosks", json={"name": "k"}, headers=ADMIN).json["token"]
    r = score(client, {"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and error_code(r) == "forbidden"


def test_revoked_expert_cannot_score(client, expert):
    """Revoking an expert stops their token; their earlier scores stay."""
    assert score(client, expert["headers"]).status_code == 201
    assert (
        client.delete(f"/api/v1/campaigns/c1/experts/{expert['id']}", headers=ADMIN).status_code
        == 200
    )
    assert score(client, expert["headers"]).status_code == 401
    progress = client.get("/api/v1/campaigns/c1/review/progress", headers=ADMIN).json
    assert progress["entries"][0]["reviews"] == 1


def test_first_score_locks_rules(client, expert):
    """After the first score the rubric cannot change."""
    score(client, expert["headers"])
    r = client.patch(
        "/api/v1/campaigns/c1",
        headers=ADMIN,
        json={"review": {"criteria": [{"key": "impact", "max_points": 10}]}},
    )
    assert r.status_code == 409 and error_code(r) == "rules_locked"


def test_unknown_entry_is_404(client, expert):
    """Scoring an entry that does not exist is 404."""
    r = score(client, expert["headers"], code="A99")
    assert r.status_code == 404 and error_code(r) == "not_found"


def test_simultaneous_first_scores_leave_one_live_score(app, expert):
    """Two (or more) simultaneous first scores of one expert and entry: one live score."""
    n = 8
    barrier = threading.Barrier(n)
    codes = [None] * n

    def run(i):
        barrier.wait()
        codes[i] = score(app.test_client(), expert["headers"], impact=i, novelty=1).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [200] * (n - 1) + [201]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Score)) == 1
        revisions = sorted(db.session.scalars(select(ScoreHistory.revision)))
    assert revisions == list(range(1, n + 1))
