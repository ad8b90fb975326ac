"""An office worker sets up a campaign in Chromium after `make run`, with no terminal.

`votes up` runs as `make run` starts it (its own instance folder, SQLite, the embedded
Redis), on a free port instead of 8000 so it never clashes with test_make_run. The test
reads only what `votes up` prints: the first admin's set-password link. Then, in the
browser: set the password, log in, create a 彭邻格 second batch from the template,
upload a GBK CSV with one bad line (the line's error is shown; nothing is saved), fix it
and upload again, register a kiosk and enrol a second browser context through its
one-time link, invite two experts (absolute links), publish. The public then sees the
campaign, and a ballot from the enrolled kiosk is accepted. Screenshots of every step
go to test-artifacts/console/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT, UNSET, descendants, http, stop, wait_until
from tests.support import DESKTOP, browsing, chromium, closed_port

VOTES = str(Path(sys.executable).parent / "votes")
ARTIFACTS = ROOT / "test-artifacts" / "console"
PASSWORD = "彭浦镇 second batch 2024"
SLUG = "pengpu-2024-grids-2"
TITLE = "2024年第二批“彭邻格”自治项目遴选"
TABLET = {
    "viewport": {"width": 820, "height": 1180},
    "has_touch": True,
    "is_mobile": True,
    "locale": "zh-CN",
}
HEADER = "code,title,summary,category,area,grid,cost\n"
LINES = [
    "P01,《楼道亮起来》公共照明改造,更换节能灯,安全治理,海鹰居民区,海鹰二网格,24000",
    "P02,《邻里助餐点》为老助餐,设立助餐点,为老服务,运城居民区,运城一网格,52000",
    "P03,《口袋花园》微更新,闲置空地改造,环境微更新,原平居民区,原平一网格,38000",
]
BAD_LINE = "P04,,缺少名称的一行,安全治理,广中苑居民区,,abc"
FIXED_LINE = "P04,《电动车充电棚》安全改造,新建充电棚,安全治理,广中苑居民区,广中苑一网格,45000"


def resident_id(body: str = "31010819800101002") -> str:
    """A valid 18-character resident ID (ISO 7064 check character)."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def make_run(tmp_path):
    """`votes up` on a free port; yields (base URL, its output so far)."""
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(
        VOTES_INSTANCE=str(tmp_path / "instance"),
        WEB_CONCURRENCY="2",
        PORT=str(port),
        VOTES_DEMO="0",
    )
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [VOTES, "up"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def output() -> str:
        return log_path.read_text(errors="replace")

    tree: set[int] = set()
    try:
        wait_until(
            lambda: "Ctrl-C stops everything" in output() or proc.poll() is not None,
            180,
            0.2,
            "the banner of `votes up`",
        )
        assert proc.poll() is None, output()

        def healthy():
            try:
                return http("GET", f"{base}/healthz", timeout=2)[0] == 200
            except OSError:
                assert proc.poll() is None, output()
                return False

        wait_until(healthy, 60, 0.3, f"{base}/healthz")
        tree.update([proc.pid, *descendants(proc.pid)])
        yield base, output()
    finally:
        stop(proc, tree)


def test_office_worker_sets_up_a_campaign_with_no_terminal(make_run, tmp_path):
    base, printed = make_run
    link = re.search(r"console: set the admin password at (\S+)", printed)
    assert link, printed
    link = link.group(1)
    assert link.startswith(f"{base}/console/set-password/")
    bad_csv = tmp_path / "entries-bad.csv"
    bad_csv.write_bytes((HEADER + "\n".join([*LINES, BAD_LINE]) + "\n").encode("gbk"))
    good_csv = tmp_path / "entries.csv"
    good_csv.write_bytes((HEADER + "\n".join([*LINES, FIXED_LINE]) + "\n").encode("gbk"))

    with chromium() as browser, browsing(browser, base, **DESKTOP) as (page, watch):
        from playwright.sync_api import expect

        # 1. The printed link: set a password, then log in.
        page.goto(link)
        expect(page.locator("h1")).to_have_text("设置密码")
        page.fill("#password", PASSWORD)
        page.fill("#repeat", PASSWORD)
        shot(page, "01-set-password")
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("密码已设置")
        page.click("a.button:has-text('登录')")
        page.fill("#name", "admin")
        page.fill("#password", PASSWORD)
        shot(page, "02-login")
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("评选活动")
        shot(page, "03-home")

        # 2. A 彭邻格 second batch from the template, saved as a draft.
        page.click("text=新建活动")
        shot(page, "04-templates")
        page.click("a.button:has-text('彭邻格项目遴选')")
        page.fill("#f-title", TITLE)
        page.fill("#f-slug", SLUG)
        expect(page.locator("#f-selection\\.budget")).to_have_value(re.compile(r"^300000(\.0)?$"))
        page.fill("#f-selection\\.budget", "450000")
        page.click("button[value=preview]")
        expect(page.locator("#summary")).to_contain_text("在预算")
        shot(page, "05-campaign-form")
        page.click("button[value=save]")
        expect(page.locator("h1")).to_have_text(TITLE)
        expect(page.locator(".badge.draft")).to_be_visible()
        shot(page, "06-campaign-draft")

        # 3. Entries: a GBK CSV with one bad line, then the fixed file.
        page.click("a.button:has-text('参评对象')")
        page.set_input_files("#f-file", str(bad_csv))
        watch.expect(f"/console/campaigns/{SLUG}/entries/upload", 422)
        page.click("text=上传并检查")
        bad = page.locator("tr.bad")
        expect(bad).to_have_count(1)
        expect(bad).to_contain_text("5")
        expect(bad).to_contain_text("title")
        expect(page.locator("#preview")).to_contain_text("《楼道亮起来》")  # decoded from GBK
        shot(page, "07-entries-bad-line")
        page.set_input_files("#f-file", str(good_csv))
        page.click("text=上传并检查")
        expect(page.locator("#preview")).to_contain_text("全部 4 行都正确")
        page.click("text=确认导入 4 个")
        expect(page.locator(".flash")).to_contain_text("已导入 4 个参评对象")
        shot(page, "08-entries-imported")

        # 4. A kiosk, enrolled in a second browser through its one-time link.
        page.click("header >> text=投票终端")
        page.fill("#f-kiosk-name", "彭浦镇社区事务受理中心")
        page.click("text=登记并生成链接")
        enrol_link = page.locator("#enrol-url").input_value()
        assert enrol_link.startswith(f"{base}/kiosk/enrol/")
        shot(page, "09-kiosk-link")
        kiosk_context = browser.new_context(**TABLET)
        kiosk = kiosk_context.new_page()
        kiosk.goto(enrol_link)
        expect(kiosk.locator("body")).to_contain_text("彭浦镇社区事务受理中心")
        assert kiosk.locator("input[name=token]").count() == 0  # nothing to type
        kiosk.click("text=确认登记")
        expect(kiosk.locator("h1")).to_have_text("登记成功")
        shot(kiosk, "10-kiosk-enrolled")

        # 5. Two experts, each with an absolute personal link.
        page.goto(f"{base}/console/campaigns/{SLUG}/experts")
        links = []
        for name in ("赵文军", "黄佩琴"):
            page.fill("#f-expert-name", name)
            page.click("text=邀请并生成链接")
            links.append(page.locator("#invite-link").input_value())
            expect(page.locator("#invite-message")).to_contain_text(name)
        assert all(u.startswith(f"{base}/review/{SLUG}/login?token=exp_") for u in links)
        shot(page, "11-experts")

        # 6. The public cannot see the draft; publish it.
        anonymous = browser.new_context(**DESKTOP).new_page()
        anonymous.goto(base + "/")
        expect(anonymous.locator("main")).not_to_contain_text(TITLE)
        page.goto(f"{base}/console/campaigns/{SLUG}")
        page.click("text=发布活动")
        expect(page.locator(".flash")).to_contain_text("活动已发布")
        shot(page, "12-published")
        anonymous.goto(base + "/")
        expect(anonymous.locator("main")).to_contain_text(TITLE)
        shot(anonymous, "13-public-home")

        # 7. A ballot from the enrolled kiosk is accepted.
        kiosk.goto(f"{base}/vote/{SLUG}")
        expect(kiosk.locator(".kiosk-badge")).to_contain_text("彭浦镇社区事务受理中心")
        kiosk.check("#choice-P01")
        kiosk.check("#choice-P04")
        kiosk.fill("#voter_id", resident_id())
        shot(kiosk, "14-kiosk-ballot")
        kiosk.click("#submit-ballot")
        expect(kiosk.locator("#receipt-code")).to_have_text(
            re.compile(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}")
        )
        shot(kiosk, "15-kiosk-receipt")
        kiosk_context.close()

        # The console counts it for the kiosk today.
        page.goto(f"{base}/console/kiosks")
        row = page.locator("tr", has_text="彭浦镇社区事务受理中心")
        expect(row.locator("td.num")).to_have_text("1")
        shot(page, "16-kiosk-list")
        page.goto(f"{base}/console/?lang=en")
        expect(page.locator("h1")).to_have_text("Campaigns")
        shot(page, "17-home-english")


# --- part 2: running the campaign (issue 16) --------------------------------------------
# Part 2 of the office worker's day, in Chromium, with no terminal: running a campaign.
#
# Continues tests/test_console_browser.py's scenario (run first, on the same `votes up`,
# which also runs a real RQ worker): a second kiosk is enrolled, residents vote on the web
# and at the kiosk, the kiosk sends a burst that gets flagged (`BURST_MAX_BALLOTS=3` for the
# server), an expert from P01's 居民区 is invited and the dashboard warns that P01 can no
# longer get its 3 reviews, the office invites another expert and the warning goes away,
# the experts score through their links, the office ranks and publishes version 1,
# excludes the burst with a reason, ranks again, reads the preview and its differences
# against version 1, publishes version 2; the public results page shows version 2, and the
# audit log lists every action with the staff member's name. Screenshots of each step go
# to test-artifacts/console/ (prefixed `run-`).

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

    test_office_worker_sets_up_a_campaign_with_no_terminal(
        make_run, tmp_path
    )  # part 1: the campaign is public, voting open
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
