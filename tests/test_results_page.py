"""The public results page /results/<slug> and the campaign list on /."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from service.domain import rankings
from service.domain.campaigns import get_campaign
from service.domain.publications import publish_run
from service.extensions import db
from service.models import Publication
from tests.support import add_ballots, add_scores, closed_port, exclude

VOTING = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # inside c1's voting window
CLOSED = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # after voting and review

# Six entries whose order is set by the votes alone (every review is 30 + 15 points), so
# that each selection rule leaves its mark: A05 lacks reviews, A04 hits the quota of
# 关怀疏导, A02 the cap of its area (海鹰, taken by A01).
ENTRIES = [
    {"code": "A01", "title": "24小时热线", "category": "党建引领", "area": "海鹰"},
    {"code": "A02", "title": "团购管理", "category": "团购管理", "area": "海鹰"},
    {"code": "A03", "title": "便民配药", "category": "关怀疏导", "area": "龙馨嘉园"},
    {"code": "A04", "title": "心理疏导热线", "category": "关怀疏导", "area": "运城"},
    {"code": "A05", "title": "楼道微更新", "category": "党建引领", "area": "彭一"},
    {"code": "A06", "title": "邻里互助群", "category": "邻里同心", "area": "平顺"},
]
VOTES = {"A05": 6, "A03": 5, "A04": 4, "A01": 3, "A02": 2, "A06": 1}
SELECTION = {
    "rule": "top",
    "winners": 3,
    "categories": {"关怀疏导": {"min": 0, "max": 1}},
    "max_per_area": 1,
}


def compute_run(app, slug: str) -> str:
    with app.app_context():
        run = rankings.create_run(get_campaign(slug), "test")
        db.session.commit()
        rankings.compute(run)
        db.session.commit()
        return run.id


def publish(app, slug: str) -> None:
    run_id = compute_run(app, slug)
    with app.app_context():
        publish_run(get_campaign(slug).id, run_id, actor="test")
        db.session.commit()


def cast(app, slug: str, votes: dict[str, int]) -> list:
    return add_ballots(app, slug, [[code] for code, n in votes.items() for _ in range(n)])


@pytest.fixture
def cases(app, make_campaign):
    """Campaign c1 (public 30% + experts 70%, quotas and an area cap) with one excluded
    ballot and 17 reviews, not yet published."""
    make_campaign("c1", entries=ENTRIES, selection=SELECTION)
    ballots = cast(app, "c1", {**VOTES, "A06": 2})
    exclude(app, "c1", ballots[-1][0])
    add_scores(app, "c1", {code: [(30, 15)] * (2 if code == "A05" else 3) for code in VOTES})
    return "c1"


@pytest.fixture
def published(app, cases):
    publish(app, cases)
    return cases


class Page(HTMLParser):
    """Table rows by entry code, every attribute seen, and the inline SVG's source."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: dict[str, dict] = {}
        self.attrs: list[tuple[str, str, str | None]] = []
        self._row: dict | None = None
        self._col: str | None = None
        self.feed(html)
        svg = re.search(r"<svg class=\"chart\".*?</svg>", html, re.S)
        self.svg = svg.group(0) if svg else None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs.extend((tag, k, v) for k, v in attrs)
        if tag == "tr" and "data-code" in a:
            self._row = {"class": a.get("class") or "", "flags": [], "cells": {}}
            self.rows[a["data-code"]] = self._row
        elif tag == "td" and self._row is not None:
            self._col = a.get("data-col")
            self._row["cells"][self._col] = ""
        elif tag == "span" and self._row is not None and "data-flag" in a:
            self._row["flags"].append(a["data-flag"])

    def handle_endtag(self, tag):
        if tag == "td":
            self._col = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._row is not None and self._col is not None:
            self._row["cells"][self._col] += data


def cells(page: Page, code: str) -> dict[str, str]:
    return {k: " ".join(v.split()) for k, v in page.rows[code]["cells"].items()}


def svg_bars(svg: str) -> list[dict]:
    root = ET.fromstring(svg)
    bars = []
    for g in root.iter("g"):
        if "bar" not in (g.get("class") or "").split():
            continue
        rects = {r.get("class"): r for r in g.iter("rect")}
        bars.append(
            {
                "code": g.get("data-code"),
                "selected": "selected" in g.get("class").split(),
                "public": float(rects["part-public"].get("width")),
                "expert": float(rects["part-expert"].get("width")),
                "expert_x": float(rects["part-expert"].get("x")),
                "public_x": float(rects["part-public"].get("x")),
            }
        )
    return bars


def test_results_page_shows_the_ranked_table_in_chinese(client, published):
    """A resident sees every entry in rank order with its scores, winners marked with
    their award and highlighted, and the reasons an entry was passed over in words."""
    r = client.get("/results/c1")
    assert r.status_code == 200 and "text/html" in r.content_type
    html = r.text
    page = Page(html)
    assert list(page.rows) == ["A05", "A03", "A04", "A01", "A02", "A06"]
    assert "排名" in html and "综合得分" in html and "专家得分" in html
    for code, award in (("A03", "关怀疏导"), ("A01", "党建引领"), ("A06", "邻里同心")):
        assert "winner" in page.rows[code]["class"]
        assert cells(page, code)["award"] == f"★ {award}"
    for code in ("A05", "A04", "A02"):
        assert "winner" not in page.rows[code]["class"] and cells(page, code)["award"] == "未入选"
    assert page.rows["A05"]["flags"] == ["insufficient_reviews"]
    assert cells(page, "A05")["flags"] == "评审数不足"
    assert cells(page, "A04")["flags"] == "所在类别名额已满"
    assert cells(page, "A02")["flags"] == "所在居民区名额已满"
    assert "insufficient_reviews" not in re.sub(r'data-flag="[a-z_]+"', "", html)
    assert "结果尚未公示" not in html and "暂定结果" not in html


def test_results_page_in_english(client, published):
    """With ?lang=en the headings, flags, awards' wording and the method are English."""
    html = client.get("/results/c1?lang=en").text
    page = Page(html)
    assert '<html lang="en">' in html
    for words in ("Rank", "Combined score", "Expert score", "Tie broken by", "Ballots counted"):
        assert words in html
    assert cells(page, "A05")["flags"] == "Too few reviews"
    assert cells(page, "A04")["flags"] == "Category quota already filled"
    assert cells(page, "A02")["flags"] == "Area quota already filled"
    assert "Combined score = public vote 30% + expert review 70%" in html
    assert "排名" not in html and "评审数不足" not in html
    # The session remembers the language; ?lang=zh switches back.
    assert "Too few reviews" in client.get("/results/c1").text
    assert "评审数不足" in client.get("/results/c1?lang=zh").text


def test_the_method_is_explained_in_plain_words(client, published):
    """The weights, the vote score formula, the expert aggregation, min_reviews,
    calibration, the tie-break chain with the lot seed and the selection rule are all
    written out, taken from the published document."""
    doc = client.get("/api/v1/campaigns/c1/results").json
    html = client.get("/results/c1").text
    assert "公众投票 30% + 专家评审 70%" in html
    assert "100 × 该项目票数 ÷ 最高票数" in html
    assert "去掉一个最高分和一个最低分" in html
    assert "评审少于 3 份" in html
    assert "不对评委的宽严程度做校正" in html
    assert "票数较多 → 专家得分较高 → 评审数较多 → 所需经费较少 → 抽签" in html
    assert str(doc["lot_seed"]) in html
    assert "选出 3 个入选项目" in html and "关怀疏导 0–1 个" in html
    assert "每个居民区最多入选 1 个项目" in html


def test_numbers_on_the_page_match_the_json_results(client, published):
    """Every number in the table, the counts, version, digest and Merkle root are the
    ones of GET /api/v1/campaigns/c1/results."""
    doc = client.get("/api/v1/campaigns/c1/results").json
    html = client.get("/results/c1").text
    page = Page(html)
    assert [int(cells(page, c)["rank"]) for c in page.rows] == [r["rank"] for r in doc["rows"]]
    for row in doc["rows"]:
        shown = cells(page, row["code"])
        assert shown["title"] == row["title"] and shown["category"] == row["category"]
        assert shown["area"] == row["area"]
        assert int(shown["votes"]) == row["votes"] and int(shown["reviews"]) == row["reviews"]
        for key in ("vote_score", "expert_score", "combined"):
            # Two decimals on the page; the JSON keeps the published precision.
            assert shown[key] == f"{row[key]:.2f}", key
    for key in ("ballots_counted", "ballots_excluded", "reviews"):
        assert re.search(rf'data-count="{key}">{doc[key]}<', html), key
    assert doc["ballots_excluded"] == 1 and doc["reviews"] == 17
    assert f'data-hash="digest">{doc["digest"]}<' in html
    assert f'data-hash="ballots_root">{doc["ballots_root"]}<' in html
    assert "第 1 版公示" in html
    # Published time in the campaign's time zone (Asia/Shanghai is UTC+8).
    local = datetime.fromisoformat(doc["published_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert local.strftime("%Y-%m-%d %H:%M") in html and "(Asia/Shanghai)" in html
    assert 'href="/api/v1/campaigns/c1/results.csv"' in html
    assert 'href="/api/v1/campaigns/c1/results"' in html
    assert 'action="/receipt"' in html and 'name="code"' in html


def test_chart_has_one_bar_per_entry_proportional_to_the_parts(client, published):
    """The SVG chart draws, in rank order, one bar per entry whose public and expert
    segments are as long as the published parts (one scale for all), with a legend and
    an accessible title and description."""
    doc = client.get("/api/v1/campaigns/c1/results").json
    page = Page(client.get("/results/c1").text)
    assert page.svg is not None
    root = ET.fromstring(page.svg)
    assert root.get("role") == "img"
    assert root.find("title") is not None and root.find("desc") is not None
    assert "公众投票" in page.svg and "专家评审" in page.svg
    bars = svg_bars(page.svg)
    assert [b["code"] for b in bars] == [r["code"] for r in doc["rows"]]
    rows = {r["code"]: r for r in doc["rows"]}
    scale = bars[0]["public"] / rows[bars[0]["code"]]["public_part"]
    assert scale > 0
    for bar in bars:
        row = rows[bar["code"]]
        assert row["public_part"] > 0 and row["expert_part"] > 0
        assert bar["public"] == pytest.approx(row["public_part"] * scale, abs=0.01)
        assert bar["expert"] == pytest.approx(row["expert_part"] * scale, abs=0.01)
        assert bar["expert_x"] == pytest.approx(bar["public_x"] + bar["public"], abs=0.01)
        assert bar["selected"] == row["selected"]
    # The best possible score (100) fits: no bar runs past the drawing.
    width = float(root.get("width"))
    assert all(b["public_x"] + 100 * scale <= width for b in bars)


def test_chart_stays_readable_with_ninety_entries(client, app, make_campaign):
    """A 楼组之最-sized campaign (90 building groups, vote only) gets 90 bars of the same
    height, none overlapping, and no expert segment."""
    entries = [
        {"code": f"B{i:03d}", "title": f"楼组{i}", "category": "最具人气" if i % 2 else "最具活力"}
        for i in range(1, 91)
    ]
    make_campaign(
        "groups",
        entries=entries,
        ranking={"public_weight": 1, "expert_weight": 0},
        review={"min_reviews": 0, "criteria": []},
        selection={"rule": "top", "winners": 41},
    )
    cast(app, "groups", {e["code"]: 1 + i % 7 for i, e in enumerate(entries)})
    publish(app, "groups")
    html = client.get("/results/groups").text
    page = Page(html)
    root = ET.fromstring(page.svg)
    bars = svg_bars(page.svg)
    assert len(bars) == 90 and sum(b["selected"] for b in bars) == 41
    assert all(b["expert"] == 0 for b in bars)
    ys = [float(g.find("rect").get("y")) for g in root.iter("g") if g.get("data-code")]
    assert all(b - a >= 12 for a, b in zip(ys, ys[1:], strict=False))
    assert float(root.get("height")) < 90 * 40 + 100
    assert "只按公众投票排名" in html
    # A vote-only campaign has no expert columns.
    assert "expert_score" not in cells(page, "B007") and "votes" in cells(page, "B007")


def test_results_page_has_no_script_no_inline_style_and_no_external_url(client, published):
    """The page works under the strict CSP: no script, no style attribute or element,
    nothing loaded from another site."""
    for lang in ("zh", "en"):
        r = client.get(f"/results/c1?lang={lang}")
        html = r.text.lower()
        assert "<script" not in html and "<style" not in html
        assert not re.search(r"\sstyle\s*=", html)
        assert not re.search(r"\son[a-z]+\s*=", html)  # no event handler attributes
        for _tag, name, value in Page(r.text).attrs:
            if name in ("href", "src", "action", "xlink:href"):
                assert not re.match(r"^\s*(?:[a-z][a-z0-9+.-]*:|//)", value or "", re.I), value
        assert "script-src" not in r.headers["Content-Security-Policy"]


def test_tie_break_rule_is_named_in_words(client, app, make_campaign):
    """Two entries with equal scores show which rule put one above the other."""
    make_campaign(
        "c2",
        ranking={"public_weight": 1, "expert_weight": 0},
        selection={"rule": "top", "winners": 2},
    )
    cast(app, "c2", {"A01": 2, "A02": 2, "A03": 1})
    publish(app, "c2")
    page = Page(client.get("/results/c2").text)
    assert list(page.rows) == ["A01", "A02", "A03"]
    assert (
        cells(page, "A01")["tie_break"] == "" and cells(page, "A02")["tie_break"] == "所需经费较少"
    )
    assert cells(page, "A01")["award"] == "★ 入选"
    page = Page(client.get("/results/c2?lang=en").text)
    assert (
        cells(page, "A02")["tie_break"] == "Lower cost"
        and cells(page, "A02")["award"] == "★ Selected"
    )


def test_live_campaign_shows_a_provisional_banner(client, app, cases):
    """While a live campaign runs, its results page shows the latest computation under a
    clear 暂定 banner, without a CSV (only publications have one) or a version."""
    with app.app_context():
        campaign = get_campaign("c1")
        campaign.results = {"live": True, "auto_publish": True}
        db.session.commit()
    assert client.get("/results/c1").status_code == 404  # nothing computed yet
    compute_run(app, "c1")
    r = client.get("/results/c1")
    assert r.status_code == 200
    assert 'class="provisional-banner"' in r.text and "暂定结果" in r.text
    assert "results.csv" not in r.text and "版公示" not in r.text
    assert len(Page(r.text).rows) == 6
    assert "Provisional results" in client.get("/results/c1?lang=en").text
    publish(app, "c1")
    assert "provisional-banner" not in client.get("/results/c1?lang=zh").text


def test_before_publication_the_page_is_a_friendly_404(client, cases, clock):
    """Before results are published the page says so, in words and with the code
    not_published, with status 404; an unknown campaign is an ordinary 404."""
    clock.set(VOTING)
    r = client.get("/results/c1")
    assert r.status_code == 404 and "text/html" in r.content_type
    assert "结果尚未公示" in r.text and "not_published" in r.text
    assert 'href="/vote/c1"' in r.text  # voting is open: the way to take part
    assert "<table" not in r.text and "<svg" not in r.text
    r = client.get("/results/c1?lang=en")
    assert r.status_code == 404 and "Results have not been published yet" in r.text
    r = client.get("/results/nope")
    assert r.status_code == 404 and "not_found" in r.text


def test_index_lists_campaigns_with_their_phase_and_links(client, app, make_campaign, clock):
    """The home page lists each campaign with its phase; a vote link only while voting,
    a results link once results are published (or shown live)."""
    make_campaign("c1")
    make_campaign(
        "later",
        voting={"opens_at": "2026-12-10T09:00:00+08:00", "closes_at": "2026-12-20T18:00:00+08:00"},
        review={"opens_at": "2026-12-10T09:00:00+08:00", "closes_at": "2026-12-30T18:00:00+08:00"},
    )
    clock.set(datetime(2026, 10, 1, tzinfo=UTC))  # entries are added before voting opens
    make_campaign(
        "done",
        voting={"opens_at": "2026-11-01T09:00:00+08:00", "closes_at": "2026-11-10T18:00:00+08:00"},
        review={"opens_at": "2026-11-01T09:00:00+08:00", "closes_at": "2026-11-12T18:00:00+08:00"},
    )
    clock.set(datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    make_campaign("live", results={"live": True})
    cast(app, "done", {"A01": 2, "A02": 1})
    publish(app, "done")
    compute_run(app, "live")
    clock.set(VOTING)

    html = client.get("/").text
    items = dict(re.findall(r'data-slug="([\w-]+)" data-status="(\w+)"', html))
    assert items == {"c1": "voting", "later": "upcoming", "done": "closed", "live": "voting"}
    assert "投票中" in html and "即将开始" in html and "已结束" in html
    assert 'href="/vote/c1"' in html and 'href="/vote/live"' in html
    assert 'href="/vote/later"' not in html and 'href="/vote/done"' not in html
    assert 'href="/results/done"' in html and 'href="/results/live"' in html
    assert 'href="/results/c1"' not in html and 'href="/results/later"' not in html
    assert "暂定结果" in html  # the live campaign's link says provisional

    english = client.get("/?lang=en").text
    assert "Campaigns" in english and "Voting open" in english and "Upcoming" in english
    assert "View results" in english and "投票中" not in english

    clock.set(CLOSED)
    items = dict(re.findall(r'data-slug="([\w-]+)" data-status="(\w+)"', client.get("/").text))
    assert items["c1"] == "closed"


# --- the appeal breakdown and the method's fine print (issue 19) -------------------------


class Breakdown(HTMLParser):
    """The review-detail section: per entry, per expert, the shown raw/adjust/calibrated."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.entries: dict[str, dict[str, dict[str, str]]] = {}
        self.params: dict[str, dict[str, str]] = {}
        self._entry = self._review = self._field = self._expert = self._param = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "details" and "data-entry" in a:
            self._entry = self.entries.setdefault(a["data-entry"], {})
        elif tag == "tr" and "data-review" in a and self._entry is not None:
            self._review = self._entry.setdefault(a["data-review"], {})
        elif tag == "tr" and "data-expert" in a:
            self._expert = self.params.setdefault(a["data-expert"], {})
        elif tag == "td" and self._review is not None and "data-field" in a:
            self._field = a["data-field"]
            self._review[self._field] = ""
        elif tag == "td" and self._expert is not None and "data-param" in a:
            self._param = a["data-param"]
            self._expert[self._param] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self._field = self._param = None
        elif tag == "tr":
            self._review = self._expert = None
        elif tag == "details":
            self._entry = None

    def handle_data(self, data):
        if self._field:
            self._review[self._field] += data.strip()
        elif self._param:
            self._expert[self._param] += data.strip()


@pytest.mark.parametrize("calibration", ["additive", "zscore"])
def test_review_breakdown_shows_raw_adjustment_and_calibrated(
    client, app, make_campaign, calibration
):
    """Each review appears with the score the expert gave, the expert's bias or z, and
    the calibrated score; each expert's parameters are listed; all from the JSON."""
    from tests.support import APPEAL_ENTRIES, APPEAL_SHEETS, APPEAL_VOTES

    make_campaign(
        "c3",
        entries=APPEAL_ENTRIES,
        review={"calibration": calibration, "aggregate": "median", "min_reviews": 2},
    )
    add_ballots(app, "c3", APPEAL_VOTES)
    add_scores(app, "c3", APPEAL_SHEETS)
    publish(app, "c3")
    doc = client.get("/api/v1/campaigns/c3/results").json
    page = Breakdown(client.get("/results/c3").text)
    assert set(page.entries) == {r["code"] for r in doc["rows"] if r["reviews"]}
    for row in doc["rows"]:
        for d in row["review_detail"]:
            shown = page.entries[row["code"]][d["expert"]]
            assert shown["raw"] == f"{d['raw']:.2f}"
            assert shown["calibrated"] == f"{d['calibrated']:.2f}"
            if calibration == "additive":
                assert shown["adjust"] == f"偏差 {d['bias']:.2f}"
            else:
                assert shown["adjust"] == f"z = {d['z']:.2f}"
    clipped = [d for d in doc["rows"][0]["review_detail"] if d.get("clipped")]
    for expert, p in doc["calibration"]["experts"].items():
        if calibration == "additive":
            assert float(page.params[expert]["bias"]) == pytest.approx(p["bias"], abs=0.005)
        else:
            assert float(page.params[expert]["mean"]) == pytest.approx(p["mean"], abs=0.005)
            std = float(page.params[expert]["std"].split("(")[0])
            assert std == pytest.approx(p["std"], abs=0.005)
            assert ("z 取 0" in page.params[expert]["std"]) == p["flat"]
    html = client.get("/results/c3").text
    assert "校正后的评审分限制在 0 到 100 之间" in html
    assert "公布的原始分就是计算所用的分数" in html
    if calibration == "additive":
        assert clipped or any(d.get("clipped") for r in doc["rows"] for d in r["review_detail"])
        assert "校正后超出范围，已截断" in html
        assert "没有任何评审的项目不参加拟合" in html
        assert "不是直接取拟合出的项目水平" in html
    else:
        assert "标准差都是总体标准差" in html and "所有评审分合在一起" in html
    english = client.get("/results/c3?lang=en").text
    assert "Review details" in english and "Raw score" in english
    assert "clipped to 0–100" in english
    if calibration == "additive":
        assert "an entry nobody reviewed is left out of it" in english
        assert "not the fitted entry level" in english
    else:
        assert "population ones" in english and "all reviews pooled" in english
    assert "评审明细" not in english


# --- interim publications (issue 17) ------------------------------------------------------

VOTING = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # voting open (Asia/Shanghai 10:00)
AFTER_CLOSE = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # voting and review closed


def csv_rows(client, slug: str) -> list[dict]:
    r = client.get(f"/api/v1/campaigns/{slug}/results.csv")
    assert r.status_code == 200
    return list(csv.DictReader(io.StringIO(r.data.decode("utf-8-sig"))))


def test_publication_while_voting_is_open_is_interim_everywhere(client, clock, cases):
    """Published while voting is open: the document says interim (digest over it), the
    page says 中期结果（投票进行中） in Chinese and English, the CSV has interim=true.
    Published again after voting and review closed: final, no interim wording."""
    clock.set(VOTING)
    publish(client.application, cases)
    doc = client.get("/api/v1/campaigns/c1/results").json
    assert doc["interim"] is True and doc["phase_at_publication"] == "voting"
    assert "derived_fields" not in doc
    assert doc["digest"] == rankings.digest(doc)
    html = client.get("/results/c1").text
    assert "中期结果（投票进行中）" in html and 'data-interim="true"' in html
    assert '第 1 版公示<span class="interim-tag">（中期结果）</span>' in html
    assert "不是最终结果。" in html
    en = client.get("/results/c1?lang=en").text
    assert "Interim results (voting is still open)" in en and "中期结果" not in en
    assert {row["interim"] for row in csv_rows(client, "c1")} == {"true"}

    clock.set(AFTER_CLOSE)
    publish(client.application, cases)
    doc = client.get("/api/v1/campaigns/c1/results").json
    assert doc["version"] == 2 and doc["interim"] is False
    assert doc["phase_at_publication"] == "closed"
    html = client.get("/results/c1?lang=zh").text
    assert "中期结果" not in html and "第 2 版公示" in html
    assert {row["interim"] for row in csv_rows(client, "c1")} == {"false"}
    # Version 1 stays as published: interim.
    assert client.get("/api/v1/campaigns/c1/publications/1").json["interim"] is True


def _strip_interim(app, slug: str) -> None:
    """A publication as stored before the interim field existed (digest recomputed)."""
    with app.app_context():
        publication = db.session.scalar(select(Publication).order_by(Publication.id.desc()))
        doc = {
            k: v
            for k, v in publication.document.items()
            if k not in ("interim", "phase_at_publication")
        }
        doc["digest"] = rankings.digest(doc)
        publication.document = doc
        publication.digest = doc["digest"]
        db.session.commit()


@pytest.mark.parametrize(("at", "interim"), [(VOTING, True), (AFTER_CLOSE, False)])
def test_older_publication_without_the_field_is_derived_not_rewritten(
    client, app, clock, cases, at, interim
):
    """A stored document without ``interim``: derived from published_at and the windows,
    named in derived_fields (so its digest still checks without them), never written
    back to the database."""
    clock.set(at)
    publish(app, cases)
    _strip_interim(app, cases)
    doc = client.get("/api/v1/campaigns/c1/results").json
    assert doc["interim"] is interim and doc["derived_fields"] == [
        "interim",
        "phase_at_publication",
    ]
    stored = {k: v for k, v in doc.items() if k not in ["derived_fields", *doc["derived_fields"]]}
    assert rankings.digest(stored) == doc["digest"]
    assert ("中期结果" in client.get("/results/c1").text) is interim
    assert {row["interim"] for row in csv_rows(client, "c1")} == {"true" if interim else "false"}
    with app.app_context():
        publication = db.session.scalar(select(Publication))
        assert "interim" not in publication.document


# --- caching the published representations (issue 18) ---------------------------------


def test_results_page_json_and_csv_have_etag_cache_control_and_304(client, published):
    """Strong ETags, a short max-age with revalidation for the latest version, a year and
    immutable for a numbered one; If-None-Match gives 304 without a body."""
    for url in ("/results/c1", "/api/v1/campaigns/c1/results", "/api/v1/campaigns/c1/results.csv"):
        r = client.get(url)
        assert r.status_code == 200
        etag = r.headers["ETag"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag), url
        assert r.headers["Cache-Control"] == "public, max-age=5, must-revalidate"
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
        assert again.headers["Cache-Control"] == r.headers["Cache-Control"]
    assert client.get("/results/c1").headers["Vary"] == "Cookie, Accept-Encoding"
    # Each language is its own representation.
    zh = client.get("/results/c1?lang=zh").headers["ETag"]
    en = client.get("/results/c1?lang=en").headers["ETag"]
    assert zh != en
    r = client.get("/api/v1/campaigns/c1/publications/1")
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert (
        client.get(
            "/api/v1/campaigns/c1/publications/1", headers={"If-None-Match": r.headers["ETag"]}
        ).status_code
        == 304
    )
    # Served from the cache the second time, the same bytes.
    first, second = client.get("/results/c1?lang=zh"), client.get("/results/c1?lang=zh")
    assert second.headers["X-Cache"] in ("memory", "redis") and first.data == second.data


def test_a_new_publication_is_served_at_once(client, app, published):
    """The latest version is looked up on every request: a cached page of version 1 is
    never served after version 2 is out, and the old ETag no longer matches."""
    r1 = client.get("/results/c1")
    assert client.get("/results/c1").headers["X-Cache"] in ("memory", "redis")
    publish(app, published)
    r2 = client.get("/results/c1", headers={"If-None-Match": r1.headers["ETag"]})
    assert r2.status_code == 200 and "第 2 版公示" in r2.text
    assert r2.headers["ETag"] != r1.headers["ETag"]
    assert client.get("/api/v1/campaigns/c1/results").json["version"] == 2


def test_a_campaign_without_a_publication_is_never_served_from_the_cache(client, app, published):
    """Once its publications are gone (a hidden campaign), the page says not_published,
    uncached, even to a client holding the old ETag; provisional pages are no-cache. (The
    latest version is kept per process for HOT_CACHE_SECONDS: time is stepped past it.)"""
    ticks = [1000.0]
    app.config["HOT_CACHE_CLOCK"] = lambda: ticks[0]
    r = client.get("/results/c1")
    assert r.status_code == 200
    with app.app_context():
        db.session.execute(Publication.__table__.delete())
        db.session.commit()
    ticks[0] += 1.0
    gone = client.get("/results/c1", headers={"If-None-Match": r.headers["ETag"]})
    assert gone.status_code == 404 and gone.headers["Cache-Control"] == "no-cache"
    assert "ETag" not in gone.headers and "结果尚未公示" in gone.text
    gone = client.get("/api/v1/campaigns/c1/results", headers={"If-None-Match": "*"})
    assert gone.status_code == 404 and "ETag" not in gone.headers
    assert client.get("/results/nope").status_code == 404


def test_live_provisional_page_is_not_cached(client, app, make_campaign):
    make_campaign("live", results={"live": True})
    cast(app, "live", {"A01": 2})
    compute_run(app, "live")
    r = client.get("/results/live")
    assert r.status_code == 200 and "暂定结果" in r.text
    assert r.headers["Cache-Control"] == "no-cache" and "ETag" not in r.headers
    assert client.get("/api/v1/campaigns/live/results").headers["Cache-Control"] == "no-cache"


def test_results_are_rendered_when_redis_is_down(client, app, published, monkeypatch):
    """Redis refusing connections costs the shared copy only: pages, JSON and CSV are
    rendered (200, same ETag), and the failure is remembered instead of retried per
    request."""
    from service import http_cache

    expected = client.get("/results/c1").headers["ETag"]
    http_cache.clear_local()
    monkeypatch.setitem(app.config, "REDIS_URL", f"redis://127.0.0.1:{closed_port()}/0")
    monkeypatch.setattr(http_cache, "_redis_down_until", 0.0)
    r = client.get("/results/c1")
    assert r.status_code == 200 and r.headers["X-Cache"] == "render"
    assert r.headers["ETag"] == expected
    assert http_cache._redis_down_until > 0
    assert client.get("/api/v1/campaigns/c1/results").status_code == 200
    assert client.get("/api/v1/campaigns/c1/results.csv").status_code == 200
