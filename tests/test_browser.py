"""A real browser: Debian's Chromium, driven by Playwright, against the app over HTTP.

The other form tests read the HTML; these tap it. A resident votes on a phone-sized
touch screen (tap targets measured), double-taps the submit button, reads errors in
Chinese and then in English, reads the receipt and waits for the kiosk's meta refresh to
bring back a fresh form; an expert opens the personal link and scores an entry; the
published results page is read.

Every page is photographed into ``test-artifacts/browser/`` (git-ignored) for a human to
look at. No page may log a console error or ask any host but the test server.

Chromium and Playwright are required, not optional: without them these tests fail and
say how to install them (CI installs both, see ``.ci/run``).
"""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from tests.support import (
    ADMIN,
    DESKTOP,
    OPEN,
    PHONE,
    PHONE_SCREEN,
    RECEIPT_RE,
    assert_touch_size,
    ballot_count,
    ballots,
    browsing,
    checked,
    chromium,
    shot,
    submit,
)

pytestmark = pytest.mark.slow  # a real Chromium against the app

# --- the browser and the server -------------------------------------------------------


def error_beside(page, code: str, field: str) -> str:
    """The text of the error shown next to a field (templates/vote.html)."""
    error = page.locator(f"[data-code={code}]")
    assert error.count() == 1, page.content()
    assert error.get_attribute("data-field") == field
    if field == "choices":
        assert page.locator("fieldset.choices").get_attribute("aria-describedby") == (
            "choices-error"
        )
    else:
        described = page.locator("#voter_id").get_attribute("aria-describedby").split()
        assert error.get_attribute("id") in described
    assert error.is_visible()
    return error.inner_text()


# --- voting ---------------------------------------------------------------------------


def test_vote_by_touch_with_errors_a_double_tap_a_receipt_and_a_fresh_form(
    server, app, clock, make_campaign
):
    """A resident on a touch screen: taps the entries, is told in Chinese and then in
    English what is wrong, double-taps the submit button (counted once), reads the receipt
    and is back at a fresh, empty form after the refresh."""
    base, recorder = server
    make_campaign("c1", voting={"max_choices": 2})
    clock.set(OPEN)

    with chromium() as browser, browsing(browser, base, **PHONE_SCREEN) as (page, watch):
        from playwright.sync_api import expect

        response = page.goto(f"{base}/vote/c1")
        assert response.status == 200
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert page.locator("label[for=voter_id]").inner_text() == "手机号"
        watch.expect("/vote/c1", 422)  # a refused ballot: the form again, with the reason
        shot(page, "01-vote-form-zh")
        # Big enough for a finger: every entry, the language link and the submit button.
        assert_touch_size(page, "label.entry")
        assert_touch_size(page, "a.lang-switch")
        assert_touch_size(page, "form.ballot button[type=submit]")
        assert_touch_size(page, "form.ballot select")
        assert_touch_size(page, "#voter_id")

        # Three taps where two are allowed: the error is beside the entries, in Chinese.
        for code in ("A01", "A02", "A03"):
            page.tap(f"label[for=choice-{code}]")
        assert checked(page) == ["A01", "A02", "A03"]
        page.tap("#voter_id")
        page.fill("#voter_id", PHONE)
        assert submit(page).status == 422
        text = error_beside(page, "too_many_choices", "choices")
        assert "最多只能选择 2 项" in text, text
        assert checked(page) == ["A01", "A02", "A03"]
        assert page.input_value("#voter_id") == PHONE  # a personal device: kept
        shot(page, "02-error-too-many-zh")

        # One tap off, but a short phone number: the error is beside the number field.
        page.tap("label[for=choice-A03]")
        page.tap("#voter_id")
        page.fill("#voter_id", "1391234")
        assert submit(page).status == 422
        text = error_beside(page, "invalid_voter_id", "voter_id")
        assert "请输入正确的 11 位手机号" in text, text
        assert page.locator("#voter_id").get_attribute("aria-invalid") == "true"
        shot(page, "03-error-phone-zh")

        # The language link: the same page in English, and English errors from then on.
        with page.expect_navigation():
            page.tap("a.lang-switch")
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.locator("label[for=voter_id]").inner_text() == "Mobile number"
        assert "Submit my ballot" in page.locator("#submit-ballot").inner_text()
        assert "手机号" not in page.locator("main").inner_text()
        page.tap("label[for=choice-A01]")
        page.tap("#voter_id")
        page.fill("#voter_id", "1391234")
        assert submit(page).status == 422
        text = error_beside(page, "invalid_voter_id", "voter_id")
        assert "valid 11-digit mobile" in text, text
        assert "请输入" not in page.locator("main").inner_text()
        shot(page, "04-error-phone-en")
        with page.expect_navigation():
            page.tap("a.lang-switch")  # back to Chinese, as the kiosk's next voter expects
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert ballot_count(app) == 0

        # A valid ballot, and a double tap on the submit button.
        page.goto(f"{base}/vote/c1")
        ballot_id = page.locator("input[name=ballot_id]").input_value()
        page.tap("label[for=choice-A01]")
        page.tap("label[for=choice-A02]")
        page.tap("#voter_id")
        page.fill("#voter_id", PHONE)
        button = page.locator("#submit-ballot")
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.touchscreen.tap(x, y)
        page.wait_for_timeout(150)  # a quick second tap, while the first is on its way
        page.touchscreen.tap(x, y)
        # The second tap aborts the first tap's navigation (page.wait_for_url would report
        # that abort), so poll for where the page ends up instead.
        expect(page).to_have_url(re.compile(rf"/vote/c1/receipt/{RECEIPT_RE}$"))
        expect(page.locator("#receipt-code")).to_be_visible()
        # Both taps reached the server; the second one replayed the first one's answer.
        assert recorder.posts("/vote/c1") == ["422"] * 3 + ["303"] * 2, recorder.seen
        [ballot] = ballots(app)
        assert ballot.id == ballot_id and ballot.channel == "web"

        # The receipt: the code in words and as a QR code, nothing about the voter.
        assert page.locator("#receipt-code").inner_text() == ballot.receipt
        assert page.url.endswith(f"/vote/c1/receipt/{ballot.receipt}")
        qr = page.locator("div.qr svg.qr")
        assert qr.count() == 1 and qr.is_visible()
        qr_box = qr.bounding_box()
        assert qr_box["width"] >= 120 and qr_box["height"] >= 120, qr_box
        assert PHONE not in page.content()
        assert_touch_size(page, ".receipt .next a.button")
        shot(page, "05-receipt-zh")

        # A personal device stays on the receipt (no meta refresh: only kiosks return by
        # themselves); the button brings back a fresh form.
        assert page.locator("meta[http-equiv=refresh]").count() == 0
        lookup = page.locator("#lookup-url").inner_text()
        assert lookup == f"{base}/receipt/{ballot.receipt}"
        with page.expect_navigation():
            page.tap(".receipt .next a.button")
        fresh = page.locator("input[name=ballot_id]").input_value()
        assert uuid.UUID(fresh).version == 4 and fresh != ballot_id
        assert page.input_value("#voter_id") == ""
        assert checked(page) == []
        assert page.locator("[data-code]").count() == 0
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        shot(page, "06-fresh-form-zh")
        assert ballot_count(app) == 1


# --- a long ballot (issue 17): filter, count, the submit area always at hand --------------

# 90 buildings in six 居民区 (as 楼组之最); a few carry a grid and a cost (as 彭邻格).
BUILDINGS = [
    {
        "code": f"B{i:03d}",
        "title": f"{area}{i}号楼",
        "category": ("最具人气", "最具活力", "最具特色")[i % 3],
        "area": f"{area}居民区",
        **({"grid": f"{area}一网格", "cost": 12000 + 1000 * i} if i % 10 == 0 else {}),
    }
    for i, area in enumerate(["龙馨嘉园", "场中", "阳城", "望景苑", "塘南", "洪泉"] * 15, start=1)
]


def submit_area_on_screen(page) -> dict:
    """The submit button's box, asserted to lie inside the viewport."""
    viewport = page.viewport_size
    box = page.locator("#submit-ballot").bounding_box()
    assert box is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], (box, viewport)
    return box


@pytest.mark.parametrize("screen", ["phone", "desktop"])
def test_long_ballot_filters_counts_and_keeps_the_submit_area_in_reach(
    server, app, clock, make_campaign, screen
):
    """90 entries: scrolled to the middle of the list the count, the number field and the
    submit button are on screen (sticky); a 居民区 filter keeps the ticked entries; the
    count follows the taps; an error is named at the top."""
    base, _recorder = server
    make_campaign("c1", entries=BUILDINGS, voting={"max_choices": 3})
    clock.set(OPEN)
    options = PHONE_SCREEN if screen == "phone" else DESKTOP
    with chromium() as browser, browsing(browser, base, **options) as (page, watch):
        watch.expect("/vote/c1", 409)
        page.goto(f"{base}/vote/c1")
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height > 5 * page.viewport_size["height"]  # a long page
        page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight / 2)")
        page.wait_for_timeout(50)
        submit_area_on_screen(page)
        assert page.locator("#voter_id").is_visible()
        assert page.locator("#chosen-count").is_visible()
        page.locator("label[for=choice-B045]").click()
        # The count on screen follows the taps with a CSS counter (no script; see the
        # screenshots); the server's count, read by screen readers, follows each post.
        assert page.locator("#chosen-count").get_attribute("data-count") == "0"
        shot(page, f"ballot-{screen}-01-middle", full_page=False)  # what the voter sees

        # Filter by 居民区: B045 (洪泉) stays ticked, shown apart; the list is short.
        page.select_option("#filter-area", "场中居民区")
        with page.expect_navigation():
            page.click("#filter-button")
        assert page.locator("input[name=choices]").count() == 15 + 1
        assert checked(page) == ["B045"]
        assert "显示 15 项（共 90 项）" in page.locator("#filter-status").inner_text()
        assert page.locator("#chosen-count .count-static").text_content() == "已选 1 项"
        page.locator("label[for=choice-B002]").click()
        submit_area_on_screen(page)
        shot(page, f"ballot-{screen}-02-filtered")

        # A budget entry shows its grid and cost.
        page.fill("#filter-q", "B010")
        page.select_option("#filter-area", "")
        with page.expect_navigation():
            page.press("#filter-q", "Enter")  # Enter in the search box filters
        facts = page.locator("label[for=choice-B010] .entry-facts").inner_text()
        assert "微网格：" in facts and "预算：22,000 元" in facts, facts
        assert sorted(checked(page)) == ["B002", "B045"]

        # Voted before: the reason is at the top of the page, where the voter looks.
        cast = app.test_client().post(
            "/api/v1/campaigns/c1/ballots",
            json={"ballot_id": str(uuid.uuid4()), "voter_id": PHONE, "choices": ["B001"]},
        )
        assert cast.status_code == 201
        page.fill("#voter_id", PHONE)
        with page.expect_navigation() as nav:
            page.click("#submit-ballot")
        assert nav.value.status == 409
        summary = page.locator("#error-summary")
        assert "您已经投过票了" in summary.inner_text()
        top = summary.bounding_box()
        assert top["y"] < page.viewport_size["height"]
        assert page.input_value("#voter_id") == PHONE
        submit_area_on_screen(page)
        page.evaluate("window.scrollTo(0, 0)")
        shot(page, f"ballot-{screen}-03-already-voted", full_page=False)


# --- the expert form and the results page ---------------------------------------------


def publish_results(client, app, monkeypatch) -> None:
    """A ballot, a ranking run and its publication, worked by an in-process RQ worker
    (as in test_jobs)."""
    from tests.support import drain
    from workers import jobs

    monkeypatch.setattr(jobs, "_app", app)
    cast = client.post(
        "/api/v1/campaigns/c1/ballots",
        json={"ballot_id": str(uuid.uuid4()), "voter_id": PHONE, "choices": ["A01", "A02"]},
    )
    assert cast.status_code == 201, cast.json
    run = client.post("/api/v1/campaigns/c1/rankings", headers=ADMIN)
    assert run.status_code == 202, run.json
    drain(app)
    published = client.post("/api/v1/campaigns/c1/publications", json={}, headers=ADMIN)
    assert published.status_code == 202, published.json
    drain(app)
    assert client.get("/api/v1/campaigns/c1/results").status_code == 200


def test_expert_scores_in_the_browser_and_results_render(
    server, app, client, clock, make_campaign, monkeypatch
):
    """An expert opens the personal link, confirms, scores one entry and sees it saved;
    the published results page renders with its chart."""
    from service.extensions import db
    from service.models import Score

    base, _ = server
    make_campaign("c1")
    clock.set(OPEN)  # voting and review are both open
    registered = client.post("/api/v1/campaigns/c1/experts", json={"name": "王建华"}, headers=ADMIN)
    assert registered.status_code == 201, registered.json
    review_url = registered.json["review_url"]

    with chromium() as browser, browsing(browser, base, **DESKTOP) as (page, watch):
        assert page.goto(base + review_url).status == 200
        assert "王建华" in page.locator("main").inner_text()
        shot(page, "07-review-login-zh")
        with page.expect_navigation():
            page.click("form button[type=submit]")
        assert page.url == f"{base}/review/c1"
        assert "评审专家：王建华" in page.locator(".review-expert").inner_text()
        assert page.locator(".review-entry").count() == 3
        shot(page, "08-review-page-zh")

        page.fill("#A01-impact", "32.5")
        page.fill("#A01-novelty", "15")
        page.fill("#A01-comment", "群众反映好,可推广。")
        with page.expect_navigation() as nav:
            page.click("#entry-A01 button[type=submit]")
        assert nav.value.status == 200
        assert page.url == f"{base}/review/c1?saved=A01#entry-A01"
        assert "已保存：A01 24小时热线（第 1 版）" in page.locator(".saved").inner_text()
        assert "已评分 · 第 1 版" in page.locator("#entry-A01").inner_text()
        assert "已评 1 项，共 3 项" in page.locator(".review-progress").inner_text()
        shot(page, "09-review-saved-zh")
        with app.app_context():
            [score] = db.session.scalars(select(Score)).all()
            assert (score.revision, score.comment) == (1, "群众反映好,可推广。")

        # The public results page, once published: the ranking and its SVG chart.
        publish_results(client, app, monkeypatch)
        assert page.goto(f"{base}/results/c1").status == 200
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert "第 1 版公示" in page.locator(".result-meta").inner_text()
        assert "24小时热线" in page.locator("main").inner_text()
        chart = page.locator("svg.chart")
        assert chart.count() == 1 and chart.is_visible()
        bars = chart.locator("g.bar")
        assert [bars.nth(i).get_attribute("data-code") for i in range(bars.count())] == [
            "A01",
            "A02",
            "A03",
        ]
        # Published while voting is open: an interim version, and it says so.
        assert "中期结果（投票进行中）" in page.locator(".interim-banner").inner_text()
        shot(page, "10-results-zh")
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        # Readable on a phone: no horizontal scroll of the page, one card per entry with
        # its result (award or 未入选) inside the screen, the chart labelled by titles.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for code in ("A01", "A02", "A03"):
            award = page.locator(f"#entry-{code} td[data-col=award]")
            assert award.is_visible()
            box = award.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (code, box)
            assert award.inner_text().strip() in ("★ 入选", "未入选") or "★" in award.inner_text()
        chart_box = chart.bounding_box()
        assert chart_box["x"] >= 0 and chart_box["x"] + chart_box["width"] <= 390
        labels = chart.locator("text.bar-label").all_text_contents()
        assert any("24小时热线" in label for label in labels), labels
        # Two decimals on the page; the JSON keeps the published four.
        combined = page.locator("#entry-A01 td[data-col=combined]").inner_text().strip()
        assert re.fullmatch(r"\d+\.\d{2}", combined), combined
        shot(page, "11-results-phone-zh")
