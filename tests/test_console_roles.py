"""The role matrix over every console route that changes something.

Routes are read from ``app.url_map`` (every non-GET rule of the console blueprint), so a
route added later is covered without editing this file. Every refused request must
leave the database as it was.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from service.console.auth import OPEN_ENDPOINTS
from tests.console_support import console_token, csrf, login, make_staff
from tests.support import ADMIN, ENTRIES, campaign_doc

# Routes a manager may use outside any campaign: creating a campaign (they are then
# assigned to it) and registering a kiosk (kiosks serve every campaign).
MANAGER_GLOBAL = {"console.campaign_create", "console.kiosk_register"}


def changing_routes(app) -> list[tuple[str, str]]:
    """(endpoint, rule) of every console route that accepts a method other than GET."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or rule.endpoint in OPEN_ENDPOINTS:
            continue
        if set(rule.methods) - {"GET", "HEAD", "OPTIONS"}:
            routes.append((rule.endpoint, rule.rule))
    return sorted(routes)


def url(rule: str, slug: str) -> str:
    return (
        rule.replace("<slug>", slug)
        .replace("<int:staff_id>", "1")
        .replace("<int:kiosk_id>", "1")
        .replace("<int:expert_id>", "1")
        .replace("<code>", "A01")
        .replace("<run_id>", "no-such-run")
    )


def snapshot(app) -> dict[str, int]:
    from service.extensions import db

    with app.app_context():
        counts = {}
        for table in db.metadata.sorted_tables:
            if table.name in ("staff_sessions",):
                continue
            counts[table.name] = db.session.scalar(select(func.count()).select_from(table))
        return counts


@pytest.fixture
def world(app, client, clock):
    """Two campaigns (drafts, with entries), a kiosk, an expert in each, and staff."""
    for slug in ("mine", "other"):
        r = client.post("/api/v1/campaigns", json=campaign_doc(slug, draft=True), headers=ADMIN)
        assert r.status_code == 201
        client.post(f"/api/v1/campaigns/{slug}/entries", json=ENTRIES, headers=ADMIN)
        client.post(f"/api/v1/campaigns/{slug}/experts", json={"name": "王"}, headers=ADMIN)
    client.post("/api/v1/kiosks", json={"name": "大厅"}, headers=ADMIN)
    make_staff(app, "boss", "admin")
    make_staff(app, "mgr", "manager", campaigns=["mine"])
    make_staff(app, "watcher", "observer")
    return app


def post_all(app, client, slug, with_csrf=True):
    token = None
    if with_csrf:
        page = client.get("/console/")
        if page.status_code != 200:  # no session: the log-in page has the form token
            page = client.get("/console/login")
        token = csrf(page.data)
    answers = {}
    for endpoint, rule in changing_routes(app):
        data = {"csrf_token": token} if token else {}
        data.update(name="x", code="Z9", title="x", slug="other", role="admin", text="")
        answers[endpoint] = client.post(url(rule, slug), data=data).status_code
    return answers


def test_the_matrix_covers_the_console(app):
    endpoints = {e for e, _ in changing_routes(app)}
    assert {
        "console.campaign_create",
        "console.campaign_update",
        "console.campaign_publish",
        "console.entries_upload",
        "console.entries_import",
        "console.entry_add",
        "console.entry_edit",
        "console.entry_delete",
        "console.kiosk_register",
        "console.kiosk_revoke",
        "console.expert_invite",
        "console.expert_assignments",
        "console.staff_add",
        # part 2: running a campaign
        "console.close_voting",
        "console.change_windows",
        "console.results_live",
        "console.anomalies_exclude",
        "console.exclusions_restore",
        "console.ranking_start",
        "console.publish",
    } <= endpoints


def test_observer_changes_nothing(world, client):
    login(client, "watcher")
    before = snapshot(world)
    answers = post_all(world, client, "mine")
    assert answers and set(answers.values()) == {403}, answers
    assert snapshot(world) == before
    # …but sees everything.
    for path in (
        "/console/",
        "/console/campaigns/other",
        "/console/campaigns/mine/entries",
        "/console/campaigns/other/experts",
        "/console/kiosks",
        "/console/campaigns/mine/dashboard",
        "/console/campaigns/mine/anomalies",
        "/console/campaigns/mine/ranking",
        "/console/campaigns/mine/export.pb",
        "/console/audit",
    ):
        assert client.get(path).status_code == 200, path
    # …and no button that changes anything.
    for path in ("/console/campaigns/mine/dashboard", "/console/campaigns/mine/ranking"):
        assert 'method="post"' not in client.get(path).text.replace(
            'method="post" action="/console/logout"', ""
        ), path


def test_manager_changes_nothing_outside_their_campaigns(world, client):
    login(client, "mgr")
    answers = post_all(world, client, "other")
    refused = {e: s for e, s in answers.items() if e not in MANAGER_GLOBAL}
    assert set(refused.values()) == {403}, refused
    for path in (
        "/console/campaigns/other",
        "/console/campaigns/other/entries",
        "/console/campaigns/other/experts",
        "/console/staff",
    ):
        assert client.get(path).status_code == 403, path
    home = client.get("/console/")
    assert "/console/campaigns/mine" in home.text and "/console/campaigns/other" not in home.text


def test_manager_global_routes_touch_no_other_campaign(world, client):
    login(client, "mgr")
    before = snapshot(world)
    post_all(world, client, "other")
    after = snapshot(world)
    changed = {t for t in before if before[t] != after[t]}
    # A kiosk may have been registered (and its link and audit events written); no
    # campaign, entry, expert or assignment changed.
    assert changed <= {"kiosks", "api_tokens", "one_time_links", "audit_events"}, changed


def test_manager_may_change_their_own_campaign(world, client):
    login(client, "mgr")
    token = console_token(client, "/console/campaigns/mine/entries")
    r = client.post(
        "/console/campaigns/mine/entries", data={"csrf_token": token, "code": "A09", "title": "新"}
    )
    assert r.status_code == 303


@pytest.mark.parametrize("session", ["none", "forged", "expired", "logged_out"])
def test_no_valid_session_changes_nothing(world, client, clock, session):
    if session == "forged":
        client.set_cookie("votes_console", "stf_forged", path="/console")
    elif session == "expired":
        login(client, "boss")
        clock.set(clock.at + timedelta(minutes=31))
    elif session == "logged_out":
        login(client, "boss")
        client.post("/console/logout", data={"csrf_token": console_token(client)})
    before = snapshot(world)
    answers = post_all(world, client, "mine")
    assert set(answers.values()) == {401}, answers
    assert snapshot(world) == before
    r = client.get("/console/campaigns/mine")
    assert r.status_code == 302 and r.location.startswith("/console/login")


def test_csrf_is_enforced_on_every_console_post(world, client):
    login(client, "boss")
    before = snapshot(world)
    answers = post_all(world, client, "mine", with_csrf=False)
    assert set(answers.values()) == {400}, answers
    assert snapshot(world) == before
    # A token from another session does not work either.
    other = world.test_client()
    stolen = csrf(other.get("/console/login").data)
    r = client.post("/console/campaigns/mine/publish", data={"csrf_token": stolen})
    assert r.status_code == 400


def test_staff_admin_is_for_admins_only(world, client):
    login(client, "mgr")
    assert client.get("/console/staff").status_code == 403
    client.post("/console/logout", data={"csrf_token": console_token(client)})
    login(client, "boss")
    assert client.get("/console/staff").status_code == 200
