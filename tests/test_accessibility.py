"""Accessibility (WCAG 2.1 AA, the basis of GB/T 37668-2019 and of the 适老化 guidance).

Every public page type is opened in Debian's Chromium at a phone size (390×844) and a
desktop size (1280×800), axe-core (axe-playwright-python) checks it against the WCAG
2.0/2.1 A and AA rules, and the test asserts zero violations, naming each violation's id
and targets. The keyboard alone completes a ballot (Tab, Space, Enter) and every focused
control shows a visible outline. The 大字版 switch enlarges the text, with no script,
and the choice persists from page to page.

Screenshots of each page at both sizes go to ``test-artifacts/a11y/`` (git-ignored).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from rq import Queue, SimpleWorker

from service.queues import RANKINGS
from service.redis_conn import get_redis
from tests.console_support import make_staff
from tests.support import ADMIN, CHROMIUM, CHROMIUM_ARGS

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "a11y"
SIZES = {
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
        "locale": "zh-CN",
    },
    "desktop": {"viewport": {"width": 1280, "height": 800}, "locale": "zh-CN"},
}
# axe-core's tags for WCAG 2.0 and 2.1, levels A and AA.
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
OPEN = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # voting and review both open
PHONE = "13912345678"
TIMEOUT_MS = 10_000


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium under Playwright; a missing piece fails the test, with the fix."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `.venv/bin/pip install -e '.[dev]'`")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: `apt-get install chromium`")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def server(app):
    """The app on a real socket on 127.0.0.1, in a thread (the test clock applies)."""
    from werkzeug.serving import make_server

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(timeout=5)


def _drain(app) -> None:
    conn = get_redis(app.config["REDIS_URL"])
    SimpleWorker([Queue(RANKINGS, connection=conn)], connection=conn).work(burst=True)


@pytest.fixture
def site(app, client, clock, make_campaign, monkeypatch) -> dict:
    """A normal campaign with published (interim) results and an expert, a budget
    campaign, a cast ballot's receipt and a kiosk's enrolment token."""
    from workers import jobs

    monkeypatch.setattr(jobs, "_app", app)
    make_campaign("c1", title="优秀案例评选 / Best cases")
    make_campaign("b1", title="微网格项目遴选", selection={"rule": "greedy_budget", "budget": 5000})
    clock.set(OPEN)
    cast = client.post(
        "/api/v1/campaigns/c1/ballots",
        json={"ballot_id": str(uuid.uuid4()), "voter_id": PHONE, "choices": ["A01", "A02"]},
    )
    assert cast.status_code == 201, cast.json
    assert client.post("/api/v1/campaigns/c1/rankings", headers=ADMIN).status_code == 202
    _drain(app)
    published = client.post("/api/v1/campaigns/c1/publications", json={}, headers=ADMIN)
    assert published.status_code == 202, published.json
    _drain(app)
    expert = client.post("/api/v1/campaigns/c1/experts", json={"name": "王建华"}, headers=ADMIN)
    assert expert.status_code == 201, expert.json
    kiosk = client.post("/api/v1/kiosks", json={"name": "街道大厅 1 号机"}, headers=ADMIN)
    assert kiosk.status_code == 201, kiosk.json
    return {
        "receipt": cast.json["receipt"],
        "review_url": expert.json["review_url"],
        "kiosk_token": kiosk.json["token"],
    }


def violations(page, name: str) -> list[str]:
    """axe-core's WCAG 2.0/2.1 A and AA violations on the page: id, impact, targets."""
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_AA}})
    found = [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(" ".join(n["target"]) for n in v["nodes"][:5])
        for v in results.response["violations"]
    ]
    return [f"{name} ({page.url.split('/', 3)[-1]}): {line}" for line in found]


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def page_types(base: str, site: dict) -> list[tuple[str, str, int]]:
    """(name, path, expected status) of every page type a resident or expert meets."""
    return [
        ("home", "/", 200),
        ("vote", "/vote/c1", 200),
        ("vote-budget", "/vote/b1", 200),
        ("receipt-lookup", "/receipt", 200),
        ("receipt-lookup-found", f"/receipt?code={site['receipt']}", 200),
        ("results", "/results/c1", 200),
        ("review-login", site["review_url"].removeprefix(base), 200),
        ("kiosk-enrol", f"/kiosk/enrol?token={site['kiosk_token']}", 200),
        ("error-404", "/no-such-page", 404),
    ]


PASSWORD_CONSOLE = "axe-console-password-1"
CONSOLE_PAGES = [
    ("console-home", "/console/"),
    ("console-campaign", "/console/campaigns/c1"),
    ("console-dashboard", "/console/campaigns/c1/dashboard"),
    ("console-new-campaign", "/console/campaigns/new"),
    ("console-ranking", "/console/campaigns/c1/ranking"),
]


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_every_page_type_has_no_axe_violations(server, app, client, site, size):
    make_staff(app, "axe-admin", "admin", PASSWORD_CONSOLE)
    found: list[str] = []
    with chromium() as browser:
        context = browser.new_context(**SIZES[size])
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        for name, path, status in page_types(server, site):
            assert page.goto(server + path).status == status, name
            shot(page, f"{name}-{size}")
            found += violations(page, f"{name} at {size}")
        # The review page proper: the expert confirms the personal link first.
        page.goto(server + site["review_url"].removeprefix(server))
        with page.expect_navigation():
            page.click("form button[type=submit]")
        assert page.url.endswith("/review/c1")
        shot(page, f"review-{size}")
        found += violations(page, f"review at {size}")
        # The office console: its log-in page, then its main pages as an administrator.
        page.goto(server + "/console/login")
        shot(page, f"console-login-{size}")
        found += violations(page, f"console login at {size}")
        page.fill("#name", "axe-admin")
        page.fill("#password", PASSWORD_CONSOLE)
        with page.expect_navigation():
            page.click("form button[type=submit]")
        for name, path in CONSOLE_PAGES:
            assert page.goto(server + path).status == 200, name
            assert page.url == server + path, f"{name}: not signed in ({page.url})"
            shot(page, f"{name}-{size}")
            found += violations(page, f"{name} at {size}")
        # The receipt page, after a ballot cast with the browser.
        page.goto(server + "/vote/c1")
        page.check("input[name=choices][value=A01]")
        page.fill("#voter_id", "13912345600")
        with page.expect_navigation():
            page.click("#submit-ballot")
        assert "/receipt/" in page.url
        shot(page, f"receipt-{size}")
        found += violations(page, f"receipt at {size}")
        # The same pages in 大字版 stay free of violations (nothing overlaps or clips).
        page.goto(server + "/?size=large")
        for name, path, status in page_types(server, site)[:4]:
            assert page.goto(server + path).status == status
            shot(page, f"{name}-{size}-large")
            found += violations(page, f"{name} at {size}, large text")
        context.close()
    assert found == [], "axe violations:\n" + "\n".join(found)


def test_keyboard_alone_completes_a_ballot_with_a_visible_focus(server, site):
    """Tab to an entry, Space to choose it, Tab to the phone field and type, Tab to the
    submit button and press Enter: the receipt appears; every focused control draws an
    outline."""
    with chromium() as browser:
        context = browser.new_context(**SIZES["desktop"])
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(server + "/vote/c1")
        seen = []
        for _ in range(40):
            page.keyboard.press("Tab")
            focused = page.evaluate(
                """() => { const e = document.activeElement; const s = getComputedStyle(e);
                return {tag: e.tagName, name: e.name || '', value: e.value || '',
                        type: e.type || '', outline: s.outlineStyle, width: s.outlineWidth,
                        shadow: s.boxShadow}; }"""
            )
            seen.append(focused)
            visible = (focused["outline"] not in ("none", "") and focused["width"] != "0px") or (
                focused["shadow"] not in ("none", "")
            )
            assert visible, f"no visible focus on {focused}"
            if focused["name"] == "choices" and focused["value"] == "A01":
                page.keyboard.press("Space")
                assert page.is_checked("input[name=choices][value=A01]")
            if focused["name"] == "voter_id":
                page.keyboard.type(PHONE[:-2] + "77")
            # Enter on the submit button casts the ballot (Enter in a text field presses
            # the form's first button, the filter: the number is kept, nothing is cast).
            if (
                focused["tag"] == "BUTTON"
                and page.evaluate("() => document.activeElement.id") == "submit-ballot"
            ):
                with page.expect_navigation():
                    page.keyboard.press("Enter")
                break
        else:
            raise AssertionError(f"the submit button was never reached by Tab: {seen}")
        assert "/receipt/" in page.url, page.url
        assert re.search(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", page.locator("main").inner_text())
        context.close()


def test_large_text_switch_works_without_script_and_persists(server, site):
    with chromium() as browser:
        context = browser.new_context(java_script_enabled=False, **SIZES["phone"])
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(server + "/")
        assert "large" not in (page.get_attribute("html", "class") or "")
        normal = page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
        switch = page.locator("header a.size-switch")
        assert switch.inner_text().strip() == "大字版"
        with page.expect_navigation():
            switch.click()
        assert "large" in page.get_attribute("html", "class").split()
        large = page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
        assert large >= normal * 1.25
        # It survives navigation to other pages, and the switch now offers the way back.
        for path in ("/vote/c1", "/receipt", "/results/c1"):
            page.goto(server + path)
            assert "large" in page.get_attribute("html", "class").split(), path
        back = page.locator("header a.size-switch")
        assert back.inner_text().strip() == "标准字"
        with page.expect_navigation():
            back.click()
        assert "large" not in (page.get_attribute("html", "class") or "")
        page.goto(server + "/")
        assert "large" not in (page.get_attribute("html", "class") or "")
        context.close()
