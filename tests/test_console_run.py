"""Running a campaign in the console (issue 16): review feasibility (domain, API, console),
the dashboard, anomalies and exclusions, ranking and publishing, windows, the audit log."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from service.extensions import db
from service.models import AuditEvent, Ballot, Exclusion, Kiosk
from tests.console_support import console_token, login, make_staff
from tests.support import ADMIN, add_ballots, drain

# Two experts and min_reviews 2; 王 lives in A01's 居民区 and is recused from it.
AREA = "江场西路1366弄"


@pytest.fixture
def gap(make_campaign, clock, client):
    """A published campaign whose A01 cannot reach min_reviews: 2 experts, one recused."""
    make_campaign("c1", review={"min_reviews": 2})
    experts = []
    for name, area in (("王", AREA), ("李", "彭浦新村")):
        r = client.post(
            "/api/v1/campaigns/c1/experts", json={"name": name, "area": area}, headers=ADMIN
        )
        assert r.status_code == 201
        experts.append(r.json)
    return experts


def test_recusal_makes_an_entry_infeasible_and_the_api_says_so(gap, client):
    # The second registration left A01 short: its answer carries the warning.
    warning = gap[1]["warnings"]
    assert [(w["entry"], w["reason"], w["reviewers_possible"]) for w in warning] == [
        ("A01", "recusal", 1)
    ]
    progress = client.get("/api/v1/campaigns/c1/review/progress", headers=ADMIN).json
    assert progress["infeasible"] == [
        {
            "code": "A01",
            "title": "24小时热线",
            "area": AREA,
            "reason": "recusal",
            "reviewers_possible": 1,
            "reviews": 0,
            "min_reviews": 2,
            "blocked": {"recused": ["王"]},
        }
    ]
    # A third expert from elsewhere fixes it…
    third = client.post("/api/v1/campaigns/c1/experts", json={"name": "赵"}, headers=ADMIN).json
    assert third["warnings"] == []
    assert (
        client.get("/api/v1/campaigns/c1/review/progress", headers=ADMIN).json["infeasible"] == []
    )
    # …until the assignments leave A01 out of the third expert's list.
    r = client.put(
        f"/api/v1/campaigns/c1/experts/{third['id']}/assignments",
        json={"entries": ["A02"]},
        headers=ADMIN,
    )
    assert r.status_code == 200
    assert [(w["entry"], w["reason"]) for w in r.json["warnings"]] == [("A01", "recusal")]
    client.put(
        f"/api/v1/campaigns/c1/experts/{third['id']}/assignments",
        json={"entries": []},
        headers=ADMIN,
    )
    # Withdrawing 李 leaves A01 short again; withdrawing 赵 too leaves every entry short.
    r = client.delete(f"/api/v1/campaigns/c1/experts/{gap[1]['id']}", headers=ADMIN)
    assert r.status_code == 200
    assert {w["entry"]: w["reason"] for w in r.json["warnings"]} == {"A01": "recusal"}
    r = client.delete(f"/api/v1/campaigns/c1/experts/{third['id']}", headers=ADMIN)
    reasons = {w["entry"]: w["reason"] for w in r.json["warnings"]}
    assert reasons == {"A01": "recusal", "A02": "withdrawal", "A03": "withdrawal"}


def test_vote_only_campaigns_have_no_review_gaps(make_campaign, client):
    make_campaign("v1", ranking={"public_weight": 1, "expert_weight": 0})
    r = client.post("/api/v1/campaigns/v1/experts", json={"name": "王"}, headers=ADMIN)
    assert r.json["warnings"] == []
    assert (
        client.get("/api/v1/campaigns/v1/review/progress", headers=ADMIN).json["infeasible"] == []
    )


def test_console_warns_on_the_dashboard_and_the_fix_removes_it(app, gap, client):
    make_staff(app, "boss", "admin")
    login(client, "boss")
    page = client.get("/console/campaigns/c1/dashboard")
    assert page.status_code == 200
    assert 'id="review-gaps"' in page.text and "不属于“江场西路1366弄”的专家" in page.text
    token = console_token(client, "/console/campaigns/c1/experts")
    r = client.post(
        "/console/campaigns/c1/experts", data={"csrf_token": token, "name": "赵", "area": ""}
    )
    assert r.status_code == 200 and "flash warning" not in r.text
    page = client.get("/console/campaigns/c1/dashboard")
    assert 'id="review-gaps"' not in page.text
    # Withdrawing an expert from the console flashes the warning.
    with app.app_context():
        from service.models import Expert

        li = db.session.scalar(select(Expert).where(Expert.name == "李"))
        zhao = db.session.scalar(select(Expert).where(Expert.name == "赵"))
    client.post(f"/console/campaigns/c1/experts/{zhao.id}/withdraw", data={"csrf_token": token})
    r = client.post(
        f"/console/campaigns/c1/experts/{li.id}/withdraw",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    assert "flash warning" in r.text and "评审数不足" in r.text


def test_ranking_result_and_results_page_name_the_gap(workers_app, gap, client, clock):
    add_ballots(workers_app, "c1", [["A01"], ["A01", "A02"]])
    r = client.post("/api/v1/campaigns/c1/rankings", headers=ADMIN)
    drain(workers_app)
    run = client.get(f"/api/v1/rankings/{r.json['run_id']}", headers=ADMIN).json
    note = next(n for n in run["result"]["notes"] if n["code"] == "reviews_infeasible")
    assert note["details"]["entries"][0] == {
        "code": "A01",
        "reason": "recusal",
        "reviewers_possible": 1,
        "min_reviews": 2,
    }
    client.post("/api/v1/campaigns/c1/publications", json={"run_id": run["id"]}, headers=ADMIN)
    drain(workers_app)
    page = client.get("/results/c1")
    assert "A01 最多只能得到 1 份评审" in page.text and "须回避" in page.text


def _staff(app, client, role="admin", name="boss"):
    make_staff(app, name, role)
    login(client, name)
    return console_token(client)


def test_rank_preview_and_publish_in_the_console(workers_app, make_campaign, client, clock):
    make_campaign("c1", ranking={"public_weight": 1, "expert_weight": 0})
    add_ballots(workers_app, "c1", [["A01"], ["A01"], ["A02"]])
    token = _staff(workers_app, client)
    r = client.post("/console/campaigns/c1/ranking", data={"csrf_token": token})
    assert r.status_code == 303 and "run=" in r.location
    page = client.get(r.location)
    assert '<meta http-equiv="refresh" content="2">' in page.text  # follows the job
    assert 'data-status="queued"' in page.text
    drain(workers_app)
    page = client.get(r.location)
    assert 'data-status="finished"' in page.text and "http-equiv" not in page.text
    assert "这将是第一次公示" in page.text
    run_id = r.location.split("run=")[1]
    preview = client.get(f"/console/campaigns/c1/runs/{run_id}/preview")
    assert preview.status_code == 200 and "尚未公示" in preview.text
    confirm = client.get(f"/console/campaigns/c1/runs/{run_id}/publish")
    assert "公示第 1 版？" in confirm.text
    # A stale confirmation (another version) publishes nothing.
    stale = client.post(
        f"/console/campaigns/c1/runs/{run_id}/publish",
        data={"csrf_token": token, "version": "2"},
        follow_redirects=True,
    )
    assert "请重新确认" in stale.text
    done = client.post(
        f"/console/campaigns/c1/runs/{run_id}/publish",
        data={"csrf_token": token, "version": "1"},
        follow_redirects=True,
    )
    assert "已公示第 1 版" in done.text
    assert 'data-version="1"' in done.text and "/api/v1/campaigns/c1/publications/1" in done.text
    with workers_app.app_context():
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "publication.create")
        )
        assert event.actor == "staff:boss" and event.details["version"] == 1
        start = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "ranking.start"))
        assert start.actor == "staff:boss"
    assert client.get("/results/c1").status_code == 200

    # More ballots for A02: a second run shows the differences against version 1.
    add_ballots(workers_app, "c1", [["A02"], ["A02"], ["A03"]])
    r = client.post("/console/campaigns/c1/ranking", data={"csrf_token": token})
    drain(workers_app)
    page = client.get(r.location)
    assert "与第 1 版公示相比" in page.text
    assert re.search(r"A02 团购管理：第 2 名 → 第 1 名（上升 1）", page.text)
    assert "新入选：A02" not in page.text or "不再入选" in page.text
    pb = client.get("/console/campaigns/c1/export.pb")
    assert pb.status_code == 200 and pb.text.startswith("META")


def test_a_failed_run_shows_the_error_in_chinese(workers_app, make_campaign, client, clock):
    entries = [{"code": "A01", "title": "无经费"}]
    make_campaign(
        "c1",
        entries=entries,
        ranking={"public_weight": 1, "expert_weight": 0},
        selection={"rule": "greedy_budget", "budget": 1000, "winners": None},
    )
    token = _staff(workers_app, client)
    r = client.post("/console/campaigns/c1/ranking", data={"csrf_token": token})
    drain(workers_app)
    page = client.get(r.location)
    assert 'data-status="failed"' in page.text
    assert "需要每个项目的经费：A01 没有经费" in page.text and "cost_required" in page.text


def test_windows_close_early_extend_and_live_switch(app, make_campaign, client, clock):
    make_campaign("c1")
    clock.set(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))  # voting is open
    token = _staff(app, client)
    page = client.get("/console/campaigns/c1/dashboard")
    assert "现在结束投票" in page.text
    r = client.post("/console/campaigns/c1/windows/close-voting", data={"csrf_token": token})
    assert r.status_code == 303
    assert client.get("/api/v1/campaigns/c1").json["status"] == "review"
    # Extend again; a closing time before the opening is refused with the PATCH's rule.
    bad = client.post(
        "/console/campaigns/c1/windows",
        data={"csrf_token": token, "voting.closes_at": "2026-11-01T10:00"},
        follow_redirects=True,
    )
    assert "没有修改" in bad.text
    client.post(
        "/console/campaigns/c1/windows",
        data={"csrf_token": token, "voting.closes_at": "2026-12-05T18:00"},
    )
    doc = client.get("/api/v1/campaigns/c1").json
    assert doc["voting"]["closes_at"] == "2026-12-05T18:00:00+08:00"
    assert doc["status"] == "voting"
    client.post("/console/campaigns/c1/results-live", data={"csrf_token": token, "live": "1"})
    assert client.get("/api/v1/campaigns/c1").json["results"]["live"] is True
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "campaign.update")
        ).all()
        assert [e.actor for e in events] == ["staff:boss"] * 3
        assert "voting.closes_at" in events[0].details["windows"]


def _flagged(app, slug, n, flag="burst"):
    with app.app_context():
        kiosk = Kiosk(name="大厅 1 号机")
        db.session.add(kiosk)
        db.session.commit()
        kiosk_id = kiosk.id
    ids = [b for b, _ in add_ballots(app, slug, [["A01"]] * n)]
    with app.app_context():
        for ballot_id in ids:
            ballot = db.session.get(Ballot, ballot_id)
            ballot.kiosk_id, ballot.channel, ballot.flagged = kiosk_id, "kiosk", flag
        db.session.commit()
    return ids


def test_anomalies_exclude_a_group_and_restore(app, make_campaign, client, clock):
    make_campaign("c1")
    ids = _flagged(app, "c1", 4)
    token = _staff(app, client)
    page = client.get("/console/campaigns/c1/anomalies")
    assert "大厅 1 号机" in page.text and "4 张选票" in page.text
    nothing = client.post(
        "/console/campaigns/c1/anomalies/exclude",
        data={"csrf_token": token, "ballot_id": ids, "reason": ""},
        follow_redirects=True,
    )
    assert "请写明排除的理由" in nothing.text
    r = client.post(
        "/console/campaigns/c1/anomalies/exclude",
        data={"csrf_token": token, "ballot_id": ids, "reason": "同一终端一分钟内 4 票"},
        follow_redirects=True,
    )
    assert "已排除 4 张选票" in r.text
    with app.app_context():
        rows = db.session.scalars(select(Exclusion)).all()
        assert len(rows) == 4 and {x.actor for x in rows} == {"staff:boss"}
        exclusion_ids = [x.id for x in rows]
    r = client.post(
        "/console/campaigns/c1/exclusions/restore",
        data={"csrf_token": token, "exclusion_id": exclusion_ids[:1]},
        follow_redirects=True,
    )
    assert "已恢复 1 张选票" in r.text
    with app.app_context():
        assert db.session.scalar(select(Exclusion).where(Exclusion.active.is_(False)))


def test_anomaly_groups_of_other_kinds_show_their_key(app, make_campaign, client, monkeypatch):
    """A group keyed by something other than a kiosk (e.g. a client subnet) is listed
    with its key, without changes to the console."""
    from service.domain import exclusions

    make_campaign("c1")
    monkeypatch.setattr(
        exclusions,
        "anomalies",
        lambda campaign: [
            {
                "subnet": "203.0.113.0/24",
                "flag": "web_subnet_burst",
                "count": 7,
                "first": "2026-11-22T02:00:00+00:00",
                "last": "2026-11-22T02:01:00+00:00",
                "ballots": [{"ballot_id": "b1", "excluded": False}],
            }
        ],
    )
    _staff(app, client)
    page = client.get("/console/campaigns/c1/anomalies")
    assert "subnet: 203.0.113.0/24" in page.text and "web_subnet_burst" in page.text


def test_audit_log_filters(app, gap, client):
    token = _staff(app, client)
    client.post("/console/campaigns/c1/experts", data={"csrf_token": token, "name": "赵"})
    page = client.get("/console/audit?actor=staff:boss&action=expert.add")
    rows = re.findall(
        r'<tr data-action="([^"]+)"><td>[^<]*</td><td>[^<]*</td><td class="actor">([^<]*)',
        page.text,
    )
    assert rows == [("expert.add", "staff:boss")]
    everything = client.get("/console/audit?campaign=c1")
    assert everything.text.count('data-action="expert.add"') == 3


def test_dashboard_counts_and_chart(app, make_campaign, client, clock):
    make_campaign("c1")
    add_ballots(app, "c1", [["A01"]] * 3, at=datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    add_ballots(app, "c1", [["A02"]] * 2, at=datetime(2026, 11, 22, 5, 0, tzinfo=UTC))
    _flagged(app, "c1", 2)
    clock.set(datetime(2026, 11, 22, 6, 0, tzinfo=UTC))
    _staff(app, client, "observer", "watcher")
    page = client.get("/console/campaigns/c1/dashboard")
    assert page.status_code == 200
    assert re.search(r'id="ballots-total">7<', page.text)
    assert re.search(r'id="ballots-today">7<', page.text)
    assert re.search(r'id="channel-kiosk">2<', page.text)
    assert re.search(r'id="channel-web">5<', page.text)
    assert "<svg" in page.text and page.text.count('class="bar"') == 4  # 10:00 … 13:00
    assert "现在结束投票" not in page.text  # an observer gets no buttons
