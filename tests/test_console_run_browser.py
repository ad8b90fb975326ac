"""Part 2 of the office worker's day, in Chromium, with no terminal: running a campaign.

Continues tests/test_console_browser.py's scenario (run first, on the same `votes up`,
which also runs a real RQ worker): a second kiosk is enrolled, residents vote on the web
and at the kiosk, the kiosk sends a burst that gets flagged (`BURST_MAX_BALLOTS=3` for the
server), an expert from P01's 居民区 is invited and the dashboard warns that P01 can no
longer get its 3 reviews, the office invites another expert and the warning goes away,
the experts score through their links, the office ranks and publishes version 1,
excludes the burst with a reason, ranks again, reads the preview and its differences
against version 1, publishes version 2; the public results page shows version 2, and the
audit log lists every action with the staff member's name. Screenshots of each step go
to test-artifacts/console/ (prefixed `run-`).
"""

from __future__ import annotations

import re

import pytest

from tests.test_browser import DESKTOP, browsing, chromium
from tests.test_console_browser import (
    PASSWORD,
    SLUG,
    TABLET,
    TITLE,
    make_run,
    resident_id,
    shot,
)
from tests.test_console_browser import (
    test_office_worker_sets_up_a_campaign_with_no_terminal as set_up_the_campaign,
)

SHARED_FIXTURES = (make_run,)
# Scores per expert: (urgency /40, feasibility /30, benefit /30) for every entry listed.
SCORES = {
    "赵文军": (36, 27, 27),
    "黄佩琴": (30, 20, 25),
    "王建华": (20, 15, 15),
    "陈立新": (32, 22, 24),
}


@pytest.fixture
def burst_env(monkeypatch):
    """A low burst threshold for the server `votes up` starts (read from the environment)."""
    monkeypatch.setenv("BURST_MAX_BALLOTS", "3")


def ids(n: int, start: int = 200) -> list[str]:
    return [resident_id(f"310108198001{start + k:03d}01"[:17]) for k in range(n)]


def vote(page, base, choices, voter_id):
    page.goto(f"{base}/vote/{SLUG}")
    for code in choices:
        page.check(f"#choice-{code}")
    page.fill("#voter_id", voter_id)
    page.click("#submit-ballot")
    page.wait_for_selector("#receipt-code")


def invite(page, base, name, area=""):
    page.goto(f"{base}/console/campaigns/{SLUG}/experts")
    page.fill("#f-expert-name", name)
    if area:
        page.fill("#f-expert-area", area)
    page.click("text=邀请并生成链接")
    return page.locator("#invite-link").input_value()


def new_link(page, base, name):
    page.goto(f"{base}/console/campaigns/{SLUG}/experts")
    page.locator("tr", has_text=name).locator("text=生成新链接").click()
    return page.locator("#invite-link").input_value()


def score_all(browser, link, points):
    from playwright.sync_api import expect

    context = browser.new_context(**DESKTOP)
    page = context.new_page()
    page.goto(link)
    with page.expect_navigation():
        page.click("form button[type=submit]")
    expect(page.locator(".review-expert")).to_be_visible()
    sections = page.locator("section.review-entry")
    assert sections.count() >= 3
    for k in range(sections.count()):
        section = page.locator("section.review-entry").nth(k)
        for key, value in zip(("urgency", "feasibility", "benefit"), points, strict=True):
            section.locator(f"input[name=score-{key}]").fill(str(value))
        section.locator("button[type=submit]").click()
        expect(page.locator("section.review-entry").nth(k)).to_have_class(re.compile("scored"))
    return context, page


def rank(page, base, name):
    from playwright.sync_api import expect

    page.goto(f"{base}/console/campaigns/{SLUG}/ranking")
    page.click("#start-run")
    expect(page.locator("#run-status")).to_have_attribute(
        "data-status", re.compile("queued|running|finished")
    )
    shot(page, f"{name}-following")
    # The page reloads itself every 2 s while the worker computes.
    expect(page.locator("#run-status")).to_have_attribute("data-status", "finished", timeout=90_000)


def test_office_worker_runs_the_campaign_to_its_publication(burst_env, make_run, tmp_path):
    from playwright.sync_api import expect

    set_up_the_campaign(make_run, tmp_path)  # part 1: the campaign is public, voting open
    base, _printed = make_run

    with chromium() as browser, browsing(browser, base, **DESKTOP) as (page, watch):
        page.goto(f"{base}/console/login")
        page.fill("#name", "admin")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("评选活动")

        # 1. A second kiosk, enrolled through its link.
        page.goto(f"{base}/console/kiosks")
        page.fill("#f-kiosk-name", "街道大厅 2 号机")
        page.click("text=登记并生成链接")
        kiosk_context = browser.new_context(**TABLET)
        kiosk = kiosk_context.new_page()
        kiosk.goto(page.locator("#enrol-url").input_value())
        kiosk.click("text=确认登记")
        expect(kiosk.locator("h1")).to_have_text("登记成功")

        # 2. Residents vote on the web…
        web = browser.new_context(**DESKTOP).new_page()
        for voter, choices in zip(
            ids(3, 100), (["P01", "P02"], ["P01"], ["P03", "P01"]), strict=True
        ):
            vote(web, base, choices, voter)
        shot(web, "run-01-web-receipt")
        # …and the kiosk sends a burst: more than 3 ballots within a minute.
        for voter in ids(6, 300):
            vote(kiosk, base, ["P02"], voter)
        shot(kiosk, "run-02-kiosk-burst")

        # 3. An expert from P01's 居民区: P01 can no longer get its 3 reviews.
        wang = invite(page, base, "王建华", "海鹰居民区")
        expect(page.locator(".flash.warning")).to_contain_text("P01")
        shot(page, "run-03-warning-on-invite")
        page.goto(f"{base}/console/campaigns/{SLUG}/dashboard")
        expect(page.locator("#review-gaps")).to_contain_text("须回避")
        expect(page.locator("#ballots-total")).to_have_text("10")  # 1 + 3 web + 6 kiosk
        expect(page.locator("svg.ballot-chart")).to_be_visible()
        shot(page, "run-04-dashboard-warning")
        # The fix: another expert, from elsewhere.
        chen = invite(page, base, "陈立新")
        expect(page.locator(".flash.warning")).to_have_count(0)
        page.goto(f"{base}/console/campaigns/{SLUG}/dashboard")
        expect(page.locator("#review-gaps")).to_have_count(0)
        shot(page, "run-05-dashboard-fixed")

        # 4. The experts score through their links (new links for part 1's experts).
        links = {
            "赵文军": new_link(page, base, "赵文军"),
            "黄佩琴": new_link(page, base, "黄佩琴"),
            "王建华": wang,
            "陈立新": chen,
        }
        for name, link in links.items():
            context, expert_page = score_all(browser, link, SCORES[name])
            if name == "王建华":
                assert expert_page.locator("#entry-P01").count() == 0  # recused
                shot(expert_page, "run-06-expert-scored")
            context.close()

        # 5. Rank and publish version 1.
        rank(page, base, "run-07")
        # 4 experts × 4 entries, less 王建华's recusal from P01.
        expect(page.locator("#run")).to_contain_text("评审 15 份")
        expect(page.locator("#differences")).to_contain_text("第一次公示")
        shot(page, "run-08-first-run")
        page.click("#publish-link")
        expect(page.locator("h1")).to_have_text("公示第 1 版？")
        page.click("#confirm-publish")
        expect(page.locator(".flash")).to_contain_text("已公示第 1 版")

        # 6. The burst: flagged, excluded with a reason.
        page.goto(f"{base}/console/campaigns/{SLUG}/anomalies")
        group = page.locator(".anomaly", has_text="街道大厅 2 号机").first
        expect(group).to_contain_text("短时间内大量投票")
        shot(page, "run-09-anomalies")
        group.locator("input[name=reason]").first.fill("同一终端一分钟内连续投票，现场核实为测试")
        group.locator("button.danger").click()
        expect(page.locator(".flash")).to_contain_text("已排除 3 张选票")
        shot(page, "run-10-excluded")

        # 7. Rank again: the preview and its differences against version 1, then publish.
        rank(page, base, "run-11")
        expect(page.locator("#differences")).to_contain_text("与第 1 版公示相比")
        expect(page.locator("#preview")).to_contain_text("P01")
        shot(page, "run-12-preview-differences")
        page.click("#preview-link")
        expect(page.locator(".provisional-banner")).to_contain_text("尚未公示")
        shot(page, "run-13-public-preview")
        page.go_back()
        page.click("#publish-link")
        expect(page.locator("#confirm-publish")).to_have_text("确认公示第 2 版")
        shot(page, "run-14-confirm")
        page.click("#confirm-publish")
        expect(page.locator("#publications tr[data-version='2']")).to_be_visible()
        shot(page, "run-15-publications")

        # 8. The public sees version 2.
        web.goto(f"{base}/results/{SLUG}")
        expect(web.locator(".result-meta")).to_contain_text("第 2 版公示")
        expect(web.locator("[data-count=ballots_excluded]")).to_have_text("3")
        shot(web, "run-16-public-results")

        # 9. The audit log names the staff member for every action.
        page.goto(f"{base}/console/audit?campaign={SLUG}&actor=staff:admin")
        table = page.locator("#audit-table")
        for action in (
            "expert.add",
            "expert.new_link",
            "ballots.exclude",
            "ranking.start",
            "publication.create",
        ):
            expect(table.locator(f"tr[data-action='{action}']").first).to_contain_text(
                "staff:admin"
            )
        shot(page, "run-17-audit-log")
        kiosk_context.close()
    assert TITLE
