"""The HTML voting form used by kiosks and the web, its receipt page and kiosk enrolment.

CSRF stays on: every post carries the token read from the rendered form, as a browser's
would.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import (
    HTTPCookieProcessor,
    HTTPRedirectHandler,
    ProxyHandler,
    Request,
    build_opener,
)

import pytest
from sqlalchemy import select

from tests.support import (
    ADMIN,
    OPEN,
    PHONE,
    Page,
    ballot_count,
    ballots,
    enrol,
    get_form,
    new_kiosk,
    page_code,
    post_form,
)

AFTER_CLOSE = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)  # 19:00, an hour after closing


@pytest.fixture
def open_campaign(make_campaign, clock):
    """A campaign with entries, and the clock inside its voting window."""

    def make(slug: str = "c1", **overrides) -> dict:
        doc = make_campaign(slug, **overrides)
        clock.set(OPEN)
        return doc

    return make


# --- the form -----------------------------------------------------------------------


def test_form_renders_in_chinese_by_default(client, open_campaign):
    """A voter sees the campaign, its rule and the entries by category, in Chinese."""
    open_campaign(description="请为您心中的优秀案例投票。")
    response = client.get("/vote/c1")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.text
    assert '<html lang="zh-CN">' in html
    for text in ("优秀案例评选", "请为您心中的优秀案例投票。", "请选择 1–3 项。", "每人限投一次。"):
        assert text in html
    for text in ("党建引领", "团购管理", "关怀疏导", "24小时热线", "居民区：江场西路1366弄"):
        assert text in html
    listed = html[html.index('class="choices"') :]  # the filter's options come first
    assert listed.index("党建引领") < listed.index("24小时热线") < listed.index("团购管理")
    page = Page(html)
    assert '<label for="voter_id">手机号</label>' in html
    voter = page.input("voter_id")
    assert voter["inputmode"] == "numeric"
    assert voter["autocomplete"] == "off"
    assert voter["value"] == ""
    assert sorted(i["value"] for i in page.inputs if i.get("name") == "choices") == [
        "A01",
        "A02",
        "A03",
    ]
    assert 'href="/vote/c1?lang=en"' in html


def test_form_renders_in_english_with_lang_en(client, open_campaign):
    """?lang=en switches the form to English, and the choice sticks for the next page."""
    open_campaign()
    html = client.get("/vote/c1?lang=en").text
    assert '<html lang="en">' in html
    for text in ("Mobile number", "Choose 1–3.", "One ballot per person.", "Submit my ballot"):
        assert text in html
    assert "手机号" not in html
    again = client.get("/vote/c1").text
    assert "Submit my ballot" in again
    back = client.get("/vote/c1?lang=zh").text
    assert "提交投票" in back


def test_voter_id_label_follows_the_campaign_kind(client, open_campaign):
    """A campaign keyed by resident ID asks for 身份证号, not a phone number."""
    open_campaign(voting={"voter_id": "cn_resident_id"})
    page = get_form(client)
    assert '<label for="voter_id">身份证号</label>' in page.html
    assert page.input("voter_id")["inputmode"] == "text"


def test_form_carries_a_fresh_ballot_id_and_a_csrf_token(client, open_campaign):
    """Each rendered form has its own ballot id (a UUID4) and a CSRF token."""
    open_campaign()
    first, second = get_form(client), get_form(client)
    ids = [first.value("ballot_id"), second.value("ballot_id")]
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert ids[0] != ids[1]
    assert first.value("csrf_token")
    assert first.input("ballot_id")["type"] == first.input("csrf_token")["type"] == "hidden"


def test_pages_use_no_script_and_no_external_assets(client, open_campaign):
    """The form and the receipt work with JavaScript off and load nothing from elsewhere."""
    open_campaign()
    form = get_form(client)
    receipt = client.get(post_form(client, form, PHONE, ["A01"]).headers["Location"])
    for page in (form, Page(receipt.text), Page(client.get("/receipt").text)):
        assert page.scripts == 0
        assert "<script" not in page.html.lower()
        assert page.urls
        for url in page.urls:
            # The receipt links its own absolute lookup address (the QR code's), no other.
            own = url.startswith("http://localhost/receipt/")
            assert own or not url.startswith(("http://", "https://", "//")), url
        assert 'href="/static/site.css"' in page.html


# --- casting --------------------------------------------------------------------------


def test_successful_post_redirects_to_a_receipt_without_the_voter(client, app, open_campaign):
    """A vote answers 303 to a receipt page with a QR code that returns to a fresh form."""
    open_campaign()
    response = post_form(client, get_form(client), PHONE, ["A01", "A03"])
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/vote/c1/receipt/[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", location)
    receipt = client.get(location)
    assert receipt.status_code == 200
    assert receipt.headers["Cache-Control"] == "no-store"
    page = Page(receipt.text)
    assert page.refresh() is None  # a personal device: no return to a fresh form
    code = location.rsplit("/", 1)[1]
    assert code in receipt.text
    assert re.search(r"<svg[^>]*class=\"qr\"", receipt.text)
    for private in (PHONE, "A01", "A03", "24小时热线", "便民配药"):
        assert private not in receipt.text
    [ballot] = ballots(app)
    assert (ballot.channel, ballot.kiosk_id, ballot.receipt) == ("web", None, code)


def test_double_post_with_the_same_ballot_id_counts_once(client, app, open_campaign):
    """A double tap (the same form posted twice) records one ballot and one receipt."""
    open_campaign()
    form = get_form(client)
    first = post_form(client, form, PHONE, ["A02"])
    second = post_form(client, form, PHONE, ["A02"])
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert ballot_count(app) == 1


ERRORS = {
    # code: (status, field, Chinese text, English text)
    "too_many_choices": (422, "choices", "最多只能选择 2 项", "You can choose at most 2"),
    "invalid_voter_id": (422, "voter_id", "请输入正确的 11 位手机号", "valid 11-digit mobile"),
    "already_voted": (409, "voter_id", "您已经投过票了", "You have already voted"),
    "voting_closed": (403, "form", "投票已经结束", "Voting has closed"),
}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("code", sorted(ERRORS))
def test_errors_are_shown_next_to_the_field(client, app, clock, open_campaign, code, lang):
    """A refused ballot re-renders the form with the reason beside the field, in the
    voter's language, the boxes still ticked and the phone number not echoed."""
    open_campaign(voting={"max_choices": 2})
    query = "?lang=en" if lang == "en" else ""
    voter, choices = PHONE, ["A01", "A02"]
    if code == "too_many_choices":
        choices = ["A01", "A02", "A03"]
    elif code == "invalid_voter_id":
        voter = "1391234"
    elif code == "already_voted":
        assert post_form(client, get_form(client), PHONE, ["A03"]).status_code == 303
    form = get_form(client, query=query)
    if code == "voting_closed":
        clock.set(AFTER_CLOSE)
    response = post_form(client, form, voter, choices, query=query)

    status, field, zh, en = ERRORS[code]
    assert response.status_code == status
    assert response.headers["Cache-Control"] == "no-store"
    page = Page(response.text)
    error = page.error(code)
    assert error["data-field"] == field
    assert (en if lang == "en" else zh) in error["text"]
    assert (zh if lang == "en" else en) not in response.text
    if field != "form":
        described = page.described["voter_id" if field == "voter_id" else "fieldset"]
        assert error["id"] in described.split()
        assert page.input("voter_id")["value"] == voter  # a personal device: kept
        assert page.checked() == choices
        # The summary at the top names the problem itself, not just "提交未成功".
        summary = response.text.split('id="error-summary"', 1)[1].split("</div>", 1)[0]
        assert (en if lang == "en" else zh) in summary
    if code == "already_voted":
        assert page.value("ballot_id") != form.value("ballot_id")
    elif field != "form":
        assert page.value("ballot_id") == form.value("ballot_id")
    assert ballot_count(app) == (1 if code == "already_voted" else 0)


def test_retry_after_an_error_keeps_the_ballot_id(client, app, open_campaign):
    """After fixing a mistake the same ballot id goes through, once."""
    open_campaign()
    refused = post_form(client, get_form(client), "139", ["A01"])
    assert refused.status_code == 422
    page = Page(refused.text)
    accepted = post_form(client, page, PHONE, page.checked())
    assert accepted.status_code == 303
    assert [b.id for b in ballots(app)] == [page.value("ballot_id")]


def test_form_without_a_valid_ballot_id_is_shown_again(client, app, open_campaign):
    """A mangled form (no usable ballot id) is shown again with a new id; nothing counts."""
    open_campaign()
    form = get_form(client)
    response = client.post(
        "/vote/c1",
        data={
            "csrf_token": form.value("csrf_token"),
            "ballot_id": "not-a-uuid",
            "voter_id": PHONE,
            "choices": ["A01"],
        },
    )
    assert response.status_code == 400
    page = Page(response.text)
    assert page.error("bad_request")["data-field"] == "form"
    assert uuid.UUID(page.value("ballot_id")).version == 4
    assert page.checked() == ["A01"]
    assert page.input("voter_id")["value"] == PHONE  # a personal device: kept
    assert ballot_count(app) == 0


def test_post_without_csrf_token_is_refused(client, app, open_campaign):
    """A form posted without (or with a forged) CSRF token records nothing: 400."""
    open_campaign()
    form = get_form(client)
    base = {"ballot_id": form.value("ballot_id"), "voter_id": PHONE, "choices": ["A01"]}
    missing = client.post("/vote/c1", data=base)
    forged = client.post("/vote/c1", data={**base, "csrf_token": "forged"})
    for response in (missing, forged):
        assert response.status_code == 400
        assert "text/html" in response.content_type
        assert page_code(response) == "csrf_failed"
    assert ballot_count(app) == 0


def test_rate_limited_posts_get_a_friendly_page(client, app, open_campaign, monkeypatch):
    """Too many posts from one address get a 429 page saying when to retry."""
    monkeypatch.setitem(app.config, "RATELIMIT_BALLOTS_WEB", "2 per minute")
    open_campaign()
    form = get_form(client)
    codes = [post_form(client, form, "1", ["A01"]).status_code for _ in range(3)]
    assert codes == [422, 422, 429]
    response = post_form(client, form, "1", ["A01"])
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "提交太频繁了" in response.text
    assert page_code(response) == "rate_limited"


# --- kiosks ---------------------------------------------------------------------------


def test_kiosk_enrolment_sets_the_cookie_and_ballots_record_the_kiosk(client, app, open_campaign):
    """An enrolled kiosk's ballots are recorded as channel kiosk with its id."""
    open_campaign()
    kiosk = new_kiosk(client)
    confirm = client.get(f"/kiosk/enrol?token={kiosk['token']}")
    assert "街道大厅 1 号机" in confirm.text
    assert client.get_cookie("votes_kiosk") is None  # a GET changes nothing
    done = enrol(client, kiosk["token"])
    assert done.status_code == 200
    assert "登记成功" in done.text
    cookie = client.get_cookie("votes_kiosk")
    assert cookie.value.startswith("ksb_") and kiosk["token"] not in cookie.value
    assert cookie.http_only
    assert cookie.same_site == "Lax"
    assert cookie.expires - datetime.now(UTC) > timedelta(days=390)
    form = get_form(client)
    assert "投票终端：街道大厅 1 号机" in form.html
    assert post_form(client, form, PHONE, ["A01"]).status_code == 303
    [ballot] = ballots(app)
    assert (ballot.channel, ballot.kiosk_id) == ("kiosk", kiosk["id"])


def test_enrolment_with_an_invalid_token_is_refused(client, open_campaign):
    """A wrong enrolment link says so and sets no cookie."""
    open_campaign()
    refused = client.get("/kiosk/enrol?token=ksk_not-a-token")
    assert refused.status_code == 403
    assert page_code(refused) == "invalid_kiosk_token"
    csrf = get_form(client).value("csrf_token")
    posted = client.post("/kiosk/enrol", data={"token": "ksk_nope", "csrf_token": csrf})
    assert posted.status_code == 403
    assert client.get_cookie("votes_kiosk") is None


def test_enrolment_by_typing_the_token(client, app, open_campaign):
    """Staff can type the token instead of opening a link that carries it."""
    open_campaign()
    kiosk = new_kiosk(client)
    page = client.get("/kiosk/enrol")
    assert page.status_code == 200
    form = Page(page.text)
    assert form.input("token")["value"] == ""
    done = client.post(
        "/kiosk/enrol",
        data={"token": f" {kiosk['token']} ", "csrf_token": form.value("csrf_token")},
    )
    assert done.status_code == 200
    assert "登记成功" in done.text
    assert post_form(client, get_form(client), PHONE, ["A01"]).status_code == 303
    [ballot] = ballots(app)
    assert (ballot.channel, ballot.kiosk_id) == ("kiosk", kiosk["id"])


def test_revoked_kiosk_cookie_is_refused(client, app, open_campaign):
    """Once a kiosk is revoked its browser can no longer vote, even on a web campaign."""
    open_campaign()
    kiosk = new_kiosk(client)
    enrol(client, kiosk["token"])
    form = get_form(client)
    assert client.delete(f"/api/v1/kiosks/{kiosk['id']}", headers=ADMIN).status_code == 204
    response = post_form(client, form, PHONE, ["A01"])
    assert response.status_code == 403
    assert page_code(response) == "kiosk_revoked"
    assert "重新登记" in response.text
    assert client.get("/vote/c1").status_code == 403
    assert ballot_count(app) == 0
    # Enrolling again with the revoked token is refused too.
    assert client.get(f"/kiosk/enrol?token={kiosk['token']}").status_code == 403


def test_the_kiosk_cookie_is_not_the_api_token_and_only_the_form_takes_it(
    client, app, open_campaign
):
    """A cookie copied off a kiosk cannot post to the JSON API or upload a batch, and the
    API token no longer works from the cookie."""
    open_campaign()
    kiosk = new_kiosk(client)
    enrol(client, kiosk["token"])
    secret = client.get_cookie("votes_kiosk").value
    assert secret != kiosk["token"]
    with app.app_context():
        from service.extensions import db
        from service.models import KioskSession

        [row] = db.session.scalars(select(KioskSession)).all()
        assert row.kiosk_id == kiosk["id"] and secret not in row.secret_hash
    stolen = {"Authorization": f"Bearer {secret}"}
    body = {"ballot_id": str(uuid.uuid4()), "voter_id": PHONE, "choices": ["A01"]}
    r = client.post("/api/v1/campaigns/c1/ballots", json=body, headers=stolen)
    assert r.status_code == 401
    r = client.post("/api/v1/campaigns/c1/ballots/batch", json={"ballots": [body]}, headers=stolen)
    assert r.status_code == 401
    assert client.get("/api/v1/kiosks", headers=stolen).status_code == 401
    assert ballot_count(app) == 0
    # The JSON API ignores the cookie itself: with it, a ballot is a plain web ballot.
    r = client.post("/api/v1/campaigns/c1/ballots", json=body)
    assert r.status_code == 201 and r.json["channel"] == "web"
    # An old-style cookie holding the API token is no longer a kiosk.
    other = app.test_client()
    other.set_cookie("votes_kiosk", kiosk["token"])
    refused = other.get("/vote/c1")
    assert refused.status_code == 403 and page_code(refused) == "kiosk_revoked"


def test_revoking_the_kiosk_stops_every_enrolled_browser(client, app, open_campaign):
    """Two browsers enrolled with one kiosk token: revoking the kiosk stops both at once."""
    open_campaign()
    kiosk = new_kiosk(client)
    second = app.test_client()
    enrol(client, kiosk["token"])
    enrol(second, kiosk["token"])
    assert client.get_cookie("votes_kiosk").value != second.get_cookie("votes_kiosk").value
    assert "投票终端：" in get_form(second).html
    assert client.delete(f"/api/v1/kiosks/{kiosk['id']}", headers=ADMIN).status_code == 204
    for browser in (client, second):
        refused = browser.get("/vote/c1")
        assert refused.status_code == 403 and page_code(refused) == "kiosk_revoked"


def test_kiosk_only_campaign_refuses_a_browser_without_the_cookie(
    client, app, clock, make_campaign
):
    """Without the web channel, a plain browser is told it is not an enrolled kiosk."""
    make_campaign("web-ok")
    make_campaign("kiosk-only", voting={"channels": ["kiosk"]})
    clock.set(OPEN)
    refused = client.get("/vote/kiosk-only")
    # The same rule and answer as the JSON API's (domain.access.check_channel).
    assert refused.status_code == 401
    assert page_code(refused) == "channel_not_allowed"
    assert "不是已登记的投票终端" in refused.text
    form = get_form(client, "web-ok")  # a valid session and CSRF token, from another form
    posted = post_form(client, form, PHONE, ["A01"], slug="kiosk-only")
    assert posted.status_code == 401 and page_code(posted) == "channel_not_allowed"
    assert ballot_count(app) == 0
    enrol(client, new_kiosk(client)["token"])
    kiosk_form = get_form(client, "kiosk-only")
    assert post_form(client, kiosk_form, PHONE, ["A01"], slug="kiosk-only").status_code == 303


# --- receipts and the index -----------------------------------------------------------


def test_receipt_lookup_page_says_recorded(client, open_campaign):
    """A voter can type the receipt code (any case, dashes optional) and read its status."""
    open_campaign()
    location = post_form(client, get_form(client), PHONE, ["A01"]).headers["Location"]
    code = location.rsplit("/", 1)[1]
    typed = client.get(f"/receipt?code={code.replace('-', '').lower()}")
    assert typed.status_code == 303
    assert typed.headers["Location"] == f"/receipt/{code}"
    found = client.get(typed.headers["Location"])
    assert found.status_code == 200
    assert "已记录" in found.text
    assert code in found.text
    assert "优秀案例评选" in found.text
    assert PHONE not in found.text
    english = client.get(f"/receipt/{code}?lang=en")
    assert "Recorded:" in english.text
    assert "/api/v1/" not in found.text + english.text
    missing = client.get("/receipt?code=AAAA-BBBB-CCCC-DDDD", follow_redirects=True)
    assert missing.status_code == 404
    assert Page(missing.text).error("not_found")


def test_receipt_lookup_says_excluded_with_the_reason(client, open_campaign):
    """An excluded ballot's receipt says so, with the office's reason."""
    open_campaign()
    location = post_form(client, get_form(client), PHONE, ["A01"]).headers["Location"]
    code = location.rsplit("/", 1)[1]
    [ballot] = ballots(client.application)
    r = client.post(
        "/api/v1/campaigns/c1/exclusions",
        json={"ballot_ids": [ballot.id], "reason": "终端异常"},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.json
    page = client.get(f"/receipt?code={code}", follow_redirects=True)
    assert "已排除" in page.text
    assert "原因：终端异常" in page.text


def test_unknown_receipt_page_is_404(client, open_campaign):
    """A made-up receipt URL is a 404 page, not a receipt."""
    open_campaign()
    response = client.get("/vote/c1/receipt/AAAA-BBBB-CCCC-DDDD")
    assert response.status_code == 404
    assert "text/html" in response.content_type
    assert client.get("/vote/nope").status_code == 404


def test_index_links_to_the_form_while_voting_is_open(client, make_campaign, clock):
    """The home page links a campaign to its form only while voting is open."""
    make_campaign()
    assert 'href="/vote/c1"' not in client.get("/").text
    clock.set(OPEN)
    assert 'href="/vote/c1"' in client.get("/").text


def test_closed_form_shows_the_entries_without_a_form(client, make_campaign, clock):
    """Before opening the page says when voting opens and offers nothing to submit."""
    make_campaign()
    html = client.get("/vote/c1").text
    assert "投票尚未开始" in html
    assert "2026-11-21 09:00" in html
    assert "<form" not in html.split("<main>", 1)[1]


# --- translations ---------------------------------------------------------------------


def test_catalogs_are_compiled_into_the_instance_folder(app):
    """The English catalog is built at start-up; no .mo file lives in the source tree."""
    from service.translations import SOURCE_DIR

    built = Path(app.instance_path, "translations", "en", "LC_MESSAGES", "messages.mo")
    assert built.exists()
    assert not list(SOURCE_DIR.rglob("*.mo"))


def test_every_interface_string_has_an_english_translation():
    """Switching to English never leaves a Chinese sentence behind on these pages."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    from service.translations import SOURCE_DIR

    service = SOURCE_DIR.parent
    wanted = {
        message
        for root, method in (
            (service / "web", "python"),
            (service / "console", "python"),
            (service / "templates", "jinja2"),
        )
        for _, _, message, *_ in extract_from_dir(
            root, method_map=[("**.py", method) if method == "python" else ("**.html", method)]
        )
    }
    with (SOURCE_DIR / "en" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="en")
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    assert wanted
    assert sorted(wanted - translated) == []


def test_a_changed_catalog_is_recompiled(tmp_path):
    """Editing a .po takes effect at the next start, with no manual compile step."""
    from service.translations import compile_catalogs

    source = tmp_path / "src" / "en" / "LC_MESSAGES"
    source.mkdir(parents=True)
    po = source / "messages.po"
    po.write_text('msgid ""\nmsgstr ""\n"Language: en\\n"\n\nmsgid "是"\nmsgstr "Yes"\n')
    target = compile_catalogs(tmp_path / "out", tmp_path / "src")
    mo = target / "en" / "LC_MESSAGES" / "messages.mo"
    assert b"Yes" in mo.read_bytes()
    po.write_text(po.read_text().replace('"Yes"', '"Yeah"'))
    compile_catalogs(tmp_path / "out", tmp_path / "src")
    assert b"Yeah" in mo.read_bytes()


# --- over real HTTP -------------------------------------------------------------------


@pytest.fixture
def live_server(app):
    """The app on a real socket (same process, so the test clock applies)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


class _RecordRedirects(HTTPRedirectHandler):
    def __init__(self) -> None:
        self.codes: list[int] = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.codes.append(code)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def test_vote_over_real_http(live_server, app, open_campaign):
    """A browser-like client on a real socket gets the form, posts it, follows the 303
    and reads its receipt."""
    open_campaign()
    redirects = _RecordRedirects()
    opener = build_opener(ProxyHandler({}), HTTPCookieProcessor(CookieJar()), redirects)
    with opener.open(f"{live_server}/vote/c1", timeout=10) as response:
        assert response.status == 200
        form = Page(response.read().decode())
    body = urlencode(
        {
            "csrf_token": form.value("csrf_token"),
            "ballot_id": form.value("ballot_id"),
            "voter_id": PHONE,
            "choices": ["A01", "A02"],
        },
        doseq=True,
    ).encode()
    request = Request(f"{live_server}/vote/c1", data=body, method="POST")
    with opener.open(request, timeout=10) as response:
        assert response.status == 200
        assert redirects.codes == [303]
        assert re.search(r"/vote/c1/receipt/[A-Z2-7-]{19}$", response.url)
        receipt = Page(response.read().decode())
    assert receipt.refresh() is None
    assert "<svg" in receipt.html
    assert PHONE not in receipt.html
    [ballot] = ballots(app)
    assert ballot.receipt in receipt.html
    assert ballot.channel == "web"


def test_receipt_on_a_kiosk_has_no_links_away(client, make_campaign, clock):
    """On an enrolled kiosk the receipt page offers no link that would strand the kiosk."""
    import uuid
    from datetime import datetime

    from tests.support import ADMIN

    make_campaign()
    clock.set(datetime.fromisoformat("2026-11-22T10:00:00+08:00"))
    token = client.post("/api/v1/kiosks", json={"name": "k"}, headers=ADMIN).json["token"]
    receipt = client.post(
        "/api/v1/campaigns/c1/ballots",
        headers={"Authorization": f"Bearer {token}"},
        json={"ballot_id": str(uuid.uuid4()), "voter_id": "13712345678", "choices": ["A01"]},
    ).json["receipt"]
    web_page = client.get(f"/vote/c1/receipt/{receipt}").get_data(as_text=True)
    assert f'href="http://localhost/receipt/{receipt}"' in web_page
    assert Page(web_page).refresh() is None
    confirm = Page(client.get(f"/kiosk/enrol?token={token}").text)
    client.post("/kiosk/enrol", data={"token": token, "csrf_token": confirm.value("csrf_token")})
    kiosk_page = client.get(f"/vote/c1/receipt/{receipt}").get_data(as_text=True)
    # The lookup address as text to note down (and in the QR code), no link away; and
    # only here the page returns to a fresh form for the next voter.
    assert f'<code id="lookup-url">http://localhost/receipt/{receipt}</code>' in kiosk_page
    assert "/api/v1/receipts/" not in kiosk_page and "/receipt/" + receipt + '"' not in kiosk_page
    assert Page(kiosk_page).refresh() == "8; url=/vote/c1"


# --- a long ballot: filter, count, errors at the top, typed number (issue 17) --------

# A 楼组之最-like ballot: buildings in three 居民区 and two categories, and a budget
# ballot's grid and cost on some.
LONG = [
    {
        "code": f"B{i:03d}",
        "title": f"{area}{i}号楼",
        "category": "最具人气" if i % 2 else "最具活力",
        "area": f"{area}居民区",
        **({"grid": f"{area}一网格", "cost": 48000 + i} if i <= 3 else {}),
    }
    for i, area in enumerate(["龙馨嘉园", "场中", "阳城"] * 10, start=1)
]


def post_filter(client, page: Page, *, voter_id="", choices=(), action="filter", **filters):
    data = {
        "csrf_token": page.value("csrf_token"),
        "ballot_id": page.value("ballot_id"),
        "voter_id": voter_id,
        "choices": list(choices),
        "action": action,
        **filters,
    }
    return client.post("/vote/c1", data=data)


def shown_codes(page: Page) -> list[str]:
    return [i["value"] for i in page.inputs if i.get("name") == "choices"]


def test_filter_keeps_the_selection_the_ballot_id_and_the_typed_number(client, app, open_campaign):
    """The filter button posts the ballot form itself: it lists one 居民区's entries,
    keeps the ticked ones from elsewhere (shown apart), the ballot id and, on a personal
    device, the number; it casts nothing. The ballot then goes through as usual."""
    open_campaign(entries=LONG, voting={"max_choices": 5})
    form = get_form(client)
    assert len(shown_codes(form)) == 30
    response = post_filter(
        client, form, voter_id=PHONE, choices=["B001", "B002"], area="场中居民区"
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = Page(response.text)
    codes = shown_codes(page)
    assert codes[:1] == ["B001"]  # ticked, outside the filter: kept, listed first
    assert sorted(codes[1:]) == [f"B{i:03d}" for i in range(2, 31, 3)]
    assert page.checked() == ["B001", "B002"]
    assert "已选（不在当前筛选结果中）" in response.text
    assert "显示 10 项（共 30 项）" in response.text
    assert page.value("ballot_id") == form.value("ballot_id")
    assert page.input("voter_id")["value"] == PHONE
    assert 'data-count="2"' in response.text and "已选 2 项" in response.text
    assert ballot_count(app) == 0

    # A name search on top, then "show all": the choices stay through each.
    page = Page(post_filter(client, page, choices=page.checked() + ["B005"], q="场中 5").text)
    assert sorted(shown_codes(page)) == ["B001", "B002", "B005"]
    page = Page(post_filter(client, page, choices=page.checked(), action="show_all").text)
    assert len(shown_codes(page)) == 30 and sorted(page.checked()) == ["B001", "B002", "B005"]

    cast = post_form(client, page, PHONE, page.checked())
    assert cast.status_code == 303
    [ballot] = ballots(app)
    assert ballot.id == form.value("ballot_id")


def test_a_get_filter_lists_matching_entries(client, open_campaign):
    """?area=&category=&q= gives the same filtered list without a post (a shareable
    link), and an empty result says so."""
    open_campaign(entries=LONG)
    page = get_form(client, query="?area=阳城居民区&category=最具活力")
    assert sorted(shown_codes(page)) == [f"B{i:03d}" for i in (6, 12, 18, 24, 30)]
    assert shown_codes(get_form(client, query="?q=B017")) == ["B017"]
    empty = client.get("/vote/c1?q=不存在的楼")
    assert "没有符合筛选条件的项目" in empty.text
    assert "No entry matches" in client.get("/vote/c1?q=nothing&lang=en").text


def test_filtering_is_not_counted_as_a_ballot_attempt(client, app, open_campaign, monkeypatch):
    """Filter posts re-render the form like a GET: the ballot rate limit ignores them."""
    monkeypatch.setitem(app.config, "RATELIMIT_BALLOTS_WEB", "2 per minute")
    open_campaign(entries=LONG)
    form = get_form(client)
    for _ in range(4):
        assert post_filter(client, form, q="龙馨").status_code == 200
    codes = [post_form(client, form, "139", ["B001"]).status_code for _ in range(3)]
    assert codes == [422, 422, 429]


def test_an_error_is_named_at_the_top_and_the_count_shown(client, app, open_campaign):
    """ "您已经投过票了" in the summary at the top (not only beside the field at the foot
    of a long list), next to the field too, and the count of chosen entries."""
    open_campaign(entries=LONG, voting={"max_choices": 3})
    assert post_form(client, get_form(client), PHONE, ["B001"]).status_code == 303
    response = post_form(client, get_form(client), PHONE, ["B002", "B003"])
    assert response.status_code == 409
    html = response.text
    top = html.index('id="error-summary"')
    assert top < html.index('class="choices"')
    assert "您已经投过票了" in html[top : html.index("</div>", top)]
    page = Page(html)
    assert page.error("already_voted")["data-field"] == "voter_id"
    assert 'data-count="2"' in html and "已选 2 项" in html
    assert page.input("voter_id")["value"] == PHONE


def test_an_enrolled_kiosk_never_shows_the_typed_number_again(client, app, open_campaign):
    """A kiosk is shared: after an error or a filter the number field is empty."""
    open_campaign(entries=LONG)
    token = new_kiosk(client)["token"]
    assert enrol(client, token).status_code == 200
    form = get_form(client)
    assert "投票终端" in form.html
    refused = post_form(client, form, "1391234", ["B001"])
    assert refused.status_code == 422
    assert "1391234" not in refused.text
    assert Page(refused.text).input("voter_id")["value"] == ""
    filtered = post_filter(client, form, voter_id=PHONE, choices=["B001"], area="场中居民区")
    assert PHONE not in filtered.text
    assert Page(filtered.text).checked() == ["B001"]


def test_budget_ballots_show_cost_and_grid(client, open_campaign):
    """A 彭邻格-like ballot shows each entry's 微网格 and cost."""
    open_campaign(entries=LONG)
    html = client.get("/vote/c1").text
    assert "微网格：龙馨嘉园一网格" in html
    assert "预算：48,001 元" in html
    english = client.get("/vote/c1?lang=en").text
    assert "Micro-grid: 龙馨嘉园一网格" in english and "Budget: ¥48,001" in english


def test_receipt_qr_holds_the_absolute_lookup_address(client, open_campaign):
    """The QR code is the one of the absolute /receipt/<code> address the page shows,
    and that address opens the status in plain words."""
    from service.web.vote import receipt_qr

    open_campaign()
    location = post_form(client, get_form(client), PHONE, ["A01"]).headers["Location"]
    code = location.rsplit("/", 1)[1]
    html = client.get(location).text
    address = f"http://localhost/receipt/{code}"
    assert f'<a href="{address}" id="lookup-url">{address}</a>' in html
    assert receipt_qr(address) in html
    assert receipt_qr(code) not in html  # not the bare code any more
    assert "/api/v1/" not in html
    status = client.get(f"/receipt/{code}")
    assert status.status_code == 200
    assert "已记录" in status.text and code in status.text
    assert "/api/v1/" not in status.text
    assert client.get("/receipt/AAAA-BBBB-CCCC-DDDD").status_code == 404


def test_a_closed_campaign_links_to_its_results(client, app, open_campaign, clock):
    """After voting closes the vote page lists the entries and links to the results once
    there are some."""
    from service.domain import rankings
    from service.domain.campaigns import get_campaign
    from service.domain.publications import publish_run
    from service.extensions import db

    open_campaign()
    assert post_form(client, get_form(client), PHONE, ["A01"]).status_code == 303
    clock.set(AFTER_CLOSE)
    assert 'href="/results/c1"' not in client.get("/vote/c1").text  # nothing published
    with app.app_context():
        run = rankings.create_run(get_campaign("c1"), "test")
        db.session.commit()
        rankings.compute(run)
        db.session.commit()
        publish_run(get_campaign("c1").id, run.id, actor="test")
        db.session.commit()
    html = client.get("/vote/c1").text
    assert "投票已经结束" in html
    assert 'href="/results/c1"' in html and "查看评选结果" in html
    assert "<form" not in html.split("<main>", 1)[1]
