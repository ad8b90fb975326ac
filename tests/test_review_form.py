"""The expert scoring pages: the personal link, the session, the form, errors, revocation.

CSRF stays on: every post carries the token read from the rendered page, as a browser's
would.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from sqlalchemy import select

from tests.support import ADMIN, Page, page_code

REVIEWING = datetime.fromisoformat("2026-11-29T10:00:00+08:00")
CLOSED = datetime.fromisoformat("2026-11-30T18:00:00+08:00")
BEFORE = datetime.fromisoformat("2026-11-21T08:00:00+08:00")


@pytest.fixture
def campaign(make_campaign, clock):
    make_campaign()
    clock.set(REVIEWING)
    return "c1"


def register(client, name="王建华", area=None, slug="c1") -> dict:
    r = client.post(
        f"/api/v1/campaigns/{slug}/experts", json={"name": name, "area": area}, headers=ADMIN
    )
    assert r.status_code == 201, r.json
    return r.json


def login(client, expert: dict, slug: str = "c1"):
    """Open the personal link, then press the button on the confirmation page."""
    confirm = client.get(expert["review_url"])
    assert confirm.status_code == 200, confirm.text
    page = Page(confirm.text)
    return client.post(
        f"/review/{slug}/login",
        data={"token": page.value("token"), "csrf_token": page.value("csrf_token")},
    )


@pytest.fixture
def expert(client, campaign) -> dict:
    """An expert from an area without entries, signed in."""
    found = register(client)
    assert login(client, found).status_code == 303
    return found


def review_page(client, query: str = "", status: int = 200) -> Page:
    response = client.get(f"/review/c1{query}")
    assert response.status_code == status, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return Page(response.text)


def form_action(page: Page, code: str) -> str:
    """The entry's form action without its #fragment (which only scrolls the page)."""
    [action] = [u for u in page.urls if u.startswith(f"/review/c1/{code}#")]
    return action.split("#", 1)[0]


def post_score(client, page: Page, code="A01", comment="", **points):
    data = {"csrf_token": page.value("csrf_token"), "comment": comment}
    data.update({f"score-{key}": str(value) for key, value in points.items()})
    return client.post(form_action(page, code), data=data)


def entry_inputs(page: Page, code: str) -> dict[str, dict]:
    return {i["id"].split("-", 1)[1]: i for i in page.inputs if i.get("id", "").startswith(code)}


def own_scores(client, expert: dict) -> dict:
    """The expert's live scores as the JSON API reports them."""
    headers = {"Authorization": f"Bearer {expert['token']}"}
    body = client.get("/api/v1/campaigns/c1/review/assignments", headers=headers).json
    return {e["code"]: e["score"] for e in body["entries"] if e["score"]}


# --- the link and the session --------------------------------------------------------


def test_link_confirms_then_starts_a_session_and_lists_entries_in_chinese(client, campaign):
    """The link only asks to confirm; the button starts a session showing the entries in Chinese."""
    found = register(client)
    confirm = client.get(found["review_url"])
    assert confirm.status_code == 200
    assert confirm.headers["Cache-Control"] == "no-store"
    assert "王建华" in confirm.text and "优秀案例评选" in confirm.text
    # The header's same-origin policy applies: a page-level no-referrer would make the
    # confirming post fail the CSRF referrer check over HTTPS (tests/test_https.py).
    assert confirm.headers["Referrer-Policy"] == "same-origin"
    assert 'name="referrer"' not in confirm.text
    assert client.get("/review/c1").status_code == 303  # the GET changed nothing
    done = login(client, found)
    assert done.status_code == 303
    assert done.headers["Location"] == "/review/c1"
    cookie = client.get_cookie("session")
    assert cookie.http_only and cookie.same_site == "Lax"
    page = review_page(client)
    html = page.html
    assert '<html lang="zh-CN">' in html
    for text in ("评审专家：王建华", "实效性", "创新性", "评审进度：已评 0 项，共 3 项"):
        assert text in html
    assert "评审时间：2026-11-21 09:00 至 2026-11-30 18:00（Asia/Shanghai 时间）" in html
    for text in ("24小时热线", "类别：党建引领", "居民区：江场西路1366弄", "未评分"):
        assert text in html
    assert html.index("A01") < html.index("A02") < html.index("A03")
    impact = entry_inputs(page, "A01")["impact"]
    assert (impact["type"], impact["min"], impact["max"], impact["step"]) == (
        "number",
        "0",
        "40",
        "any",
    )
    assert impact["inputmode"] == "decimal" and impact["name"] == "score-impact"
    assert entry_inputs(page, "A02")["novelty"]["max"] == "20"


def test_page_in_english_with_lang_en(client, expert):
    """?lang=en shows the scoring page in English, the entries' own texts unchanged."""
    html = review_page(client, "?lang=en").html
    assert '<html lang="en">' in html
    for text in ("Expert: 王建华", "Progress: 0 of 3 entries scored", "Rubric", "Save score"):
        assert text in html
    assert "Review window: 2026-11-21 09:00 to 2026-11-30 18:00 (Asia/Shanghai time)" in html
    assert "24小时热线" in html
    assert "评分细则" not in html and "保存评分" not in html


def test_token_can_be_typed_instead_of_opened_as_a_link(client, campaign):
    """An expert can paste the token on the login page, keeping it out of URLs."""
    found = register(client)
    typed = Page(client.get("/review/c1/login").text)
    assert typed.input("token")["value"] == ""
    response = client.post(
        "/review/c1/login",
        data={"token": f" {found['token']} ", "csrf_token": typed.value("csrf_token")},
    )
    assert response.status_code == 303
    assert "评审专家：王建华" in client.get("/review/c1").text


def test_page_without_a_session_sends_to_the_login(client, campaign):
    """Without a session the page and the form send the browser to the login page."""
    response = client.get("/review/c1")
    assert response.status_code == 303
    assert response.headers["Location"] == "/review/c1/login"


def test_invalid_or_revoked_token_cannot_log_in(client, campaign, make_campaign):
    """A wrong, revoked or other campaign's link is refused with a clear page, no session."""
    refused = client.get("/review/c1/login?token=exp_not-a-token")
    assert refused.status_code == 403
    assert page_code(refused) == "invalid_expert_token"
    assert "评审链接无效" in refused.text
    csrf = Page(client.get("/review/c1/login").text).value("csrf_token")
    posted = client.post("/review/c1/login", data={"token": "exp_nope", "csrf_token": csrf})
    assert posted.status_code == 403

    gone = register(client, "李明")
    assert client.delete(f"/api/v1/campaigns/c1/experts/{gone['id']}", headers=ADMIN).status_code
    assert client.get(gone["review_url"]).status_code == 403
    posted = client.post("/review/c1/login", data={"token": gone["token"], "csrf_token": csrf})
    assert posted.status_code == 403

    make_campaign("c2", entries=None)
    other = register(client, "赵敏", slug="c2")
    wrong = client.get(f"/review/c1/login?token={other['token']}")
    assert wrong.status_code == 403 and page_code(wrong) == "wrong_campaign"
    posted = client.post("/review/c1/login", data={"token": other["token"], "csrf_token": csrf})
    assert posted.status_code == 403
    kiosk = client.post("/api/v1/kiosks", json={"name": "k"}, headers=ADMIN).json["token"]
    assert client.get(f"/review/c1/login?token={kiosk}").status_code == 403
    assert client.get("/review/c1").status_code == 303


def test_revoked_expert_session_is_refused(client, app, expert):
    """Revoking an expert ends the sessions already open in their browsers."""
    other_browser = app.test_client()
    assert login(other_browser, expert).status_code == 303
    page = review_page(other_browser)
    assert client.delete(f"/api/v1/campaigns/c1/experts/{expert['id']}", headers=ADMIN)
    refused = client.get("/review/c1")
    assert refused.status_code == 403
    assert page_code(refused) == "expert_revoked"
    assert "评审资格已被撤销" in refused.text
    posted = post_score(other_browser, page, impact=30, novelty=10)
    assert posted.status_code == 403 and page_code(posted) == "expert_revoked"
    assert client.get("/review/c1").status_code == 303  # the session was cleared
    from service.extensions import db
    from service.models import Score

    with app.app_context():
        assert db.session.scalars(select(Score)).all() == []


def test_logout_ends_the_session(client, expert):
    """Signing out returns to the login page; the scoring page then asks to log in again."""
    page = review_page(client)
    [logout] = [u for u in page.urls if u.endswith("/logout")]
    response = client.post(logout, data={"csrf_token": page.value("csrf_token")})
    assert response.status_code == 303 and response.headers["Location"] == "/review/c1/login"
    assert client.get("/review/c1").status_code == 303


# --- scoring -------------------------------------------------------------------------


def test_score_through_the_form_is_stored_and_shown(client, expert):
    """A score saved through the form is stored, and the entry then shows it as revision 1."""
    response = post_score(
        client, review_page(client), "A02", comment="很好", impact=32.5, novelty=10
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/review/c1?saved=A02#entry-A02"
    stored = own_scores(client, expert)["A02"]
    assert stored["scores"] == {"impact": 32.5, "novelty": 10}
    assert stored["comment"] == "很好" and stored["revision"] == 1
    page = review_page(client, "?saved=A02")
    assert "已保存：A02 团购管理（第 1 版）。" in page.html
    assert "已评分 · 第 1 版" in page.html
    assert "评审进度：已评 1 项，共 3 项" in page.html
    inputs = entry_inputs(page, "A02")
    assert (inputs["impact"]["value"], inputs["novelty"]["value"]) == ("32.5", "10")
    assert ">很好</textarea>" in page.html


def test_revision_through_the_form_updates_and_shows_the_revision(client, expert):
    """Saving again replaces the score, shows revision 2 and keeps both in the history."""
    assert post_score(client, review_page(client), impact=30, novelty=10).status_code == 303
    page = review_page(client)
    assert "保存修改" in page.html
    assert post_score(client, page, comment="修改", impact=40, novelty=20).status_code == 303
    stored = own_scores(client, expert)["A01"]
    assert stored["revision"] == 2 and stored["total"] == 100
    assert "已评分 · 第 2 版 · 折合 100 分（满分 100）" in review_page(client).html
    history = client.get("/api/v1/campaigns/c1/entries/A01/scores/history", headers=ADMIN).json
    assert [h["revision"] for h in history["history"]] == [1, 2]


def test_full_width_digits_are_accepted(client, expert):
    """Points typed with a Chinese input method (full-width digits) are read as numbers."""
    page = review_page(client)
    data = {"csrf_token": page.value("csrf_token"), "score-impact": "３２", "score-novelty": " 8 "}
    assert client.post("/review/c1/A01", data=data).status_code == 303
    assert own_scores(client, expert)["A01"]["scores"] == {"impact": 32, "novelty": 8}


ERRORS = {
    # case: (points, status, code, fields with the error, Chinese text)
    "out_of_range": ({"impact": 41, "novelty": 10}, 422, "out_of_range", ["impact"], "0 到 40"),
    "not_a_number": (
        {"impact": "三十", "novelty": 10},
        422,
        "validation_error",
        ["impact"],
        "请输入数字",
    ),
    "missing": (
        {"impact": "", "novelty": ""},
        422,
        "missing_criterion",
        ["impact", "novelty"],
        "请填写",
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_are_shown_next_to_the_criterion(client, app, expert, case):
    """A refused score shows the reason beside the criterion in Chinese, keeping what was typed."""
    points, status, code, fields, text = ERRORS[case]
    response = post_score(client, review_page(client), "A02", comment="草稿", **points)
    assert response.status_code == status
    assert response.headers["Cache-Control"] == "no-store"
    page = Page(response.text)
    errors = [e for e in page.errors if e.get("data-code") == code]
    assert sorted(e["data-field"] for e in errors) == sorted(fields)
    for error in errors:
        assert text in error["text"]
        assert error["id"] == f"A02-{error['data-field']}-error"
        assert page.described[f"A02-{error['data-field']}"] == error["id"]
    assert "评分未保存，请查看 A02 下方的提示。" in page.html
    inputs = entry_inputs(page, "A02")
    typed = {k: str(v) for k, v in points.items()}
    assert {k: inputs[k]["value"] for k in typed} == typed
    assert ">草稿</textarea>" in page.html
    assert own_scores(client, expert) == {}


def test_error_in_english(client, expert):
    """With English chosen, the error next to the criterion is in English."""
    page = review_page(client, "?lang=en")
    response = post_score(client, page, "A01", impact=10, novelty=25)
    assert response.status_code == 422
    error = Page(response.text).error("out_of_range")
    assert error["data-field"] == "novelty"
    assert "Points must be between 0 and 20." in error["text"]
    assert "分数须在" not in response.text


def test_recused_entries_are_absent_and_counted(client, campaign):
    """An expert from 海鹰 does not see 海鹰's entry, is told one was left out, cannot score it."""
    found = register(client, "张丽萍", area="海鹰")
    login(client, found)
    page = review_page(client)
    assert "便民配药" not in page.html
    assert "A03" not in [i.get("id", "")[:3] for i in page.inputs]
    assert "评审进度：已评 0 项，共 2 项" in page.html
    assert "另有 1 个项目与您同属一个居民区，按规定回避，未列出。" in page.html
    refused = client.post(
        "/review/c1/A03",
        data={"csrf_token": page.value("csrf_token"), "score-impact": "30", "score-novelty": "10"},
    )
    assert refused.status_code == 403
    assert Page(refused.text).error("recused")["data-field"] == "form"


def test_review_closed_is_read_only_and_refuses_a_post(client, clock, expert):
    """After the window the scores are shown read-only with a notice, and a late post is refused."""
    assert post_score(client, review_page(client), impact=30, novelty=10).status_code == 303
    page = review_page(client)
    clock.set(CLOSED)
    closed = review_page(client)
    assert closed.error("review_closed")["text"].startswith("评审已经结束")
    assert "截止时间：2026-11-30 18:00" in closed.html
    assert not [i for i in closed.inputs if i.get("type") == "number"]
    assert "30 / 40" in closed.html and "已评分 · 第 1 版" in closed.html
    refused = post_score(client, page, impact=40, novelty=20)
    assert refused.status_code == 403
    assert Page(refused.text).error("review_closed")
    assert own_scores(client, expert)["A01"]["revision"] == 1


def test_review_not_open_is_read_only(client, clock, expert):
    """Before the window the entries can be read but not scored."""
    clock.set(BEFORE)
    page = review_page(client)
    assert page.error("review_not_open")
    assert "开始时间：2026-11-21 09:00" in page.html
    assert "24小时热线" in page.html
    assert not [i for i in page.inputs if i.get("type") == "number"]
    assert not [u for u in page.urls if u.startswith("/review/c1/A")]


def test_the_session_decides_who_scores(client, app, campaign):
    """An expert's session scores only as that expert, whatever the form says."""
    first, second = register(client, "甲"), register(client, "乙")
    login(client, first)
    page = review_page(client)
    data = {
        "csrf_token": page.value("csrf_token"),
        "score-impact": "30",
        "score-novelty": "10",
        "expert_id": str(second["id"]),
        "token": second["token"],
    }
    assert client.post("/review/c1/A01", data=data).status_code == 303
    assert own_scores(client, first)["A01"]["expert_id"] == first["id"]
    assert own_scores(client, second) == {}


# --- security and assets -------------------------------------------------------------


def test_post_without_csrf_token_is_refused(client, expert):
    """A score, a login or a logout posted without (or with a forged) CSRF token is 400."""
    base = {"score-impact": "30", "score-novelty": "10"}
    for url, data in (
        ("/review/c1/A01", base),
        ("/review/c1/A01", {**base, "csrf_token": "forged"}),
        ("/review/c1/login", {"token": expert["token"]}),
        ("/review/c1/logout", {}),
    ):
        response = client.post(url, data=data)
        assert response.status_code == 400, url
        assert page_code(response) == "csrf_failed"
        assert "评审页面" in response.text
    assert own_scores(client, expert) == {}
    assert client.get("/review/c1").status_code == 200  # still signed in


def test_pages_use_no_script_and_no_external_assets(client, campaign):
    """The login and scoring pages work with JavaScript off and load nothing from elsewhere."""
    found = register(client)
    pages = [Page(client.get(found["review_url"]).text), Page(client.get("/review/c1/login").text)]
    login(client, found)
    pages.append(review_page(client))
    for page in pages:
        assert page.scripts == 0
        assert "<script" not in page.html.lower()
        assert re.search(r"\son[a-z]+=", page.html) is None  # no inline event handlers
        for url in page.urls:
            assert not url.startswith(("http://", "https://", "//")), url
        assert 'href="/static/site.css"' in page.html
