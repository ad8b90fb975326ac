"""One error shape for every failure, never a stack trace."""

import re
from datetime import UTC, datetime

import pytest
from flask import Flask

from service.errors import HTTP_CODES, MESSAGES
from service.web.render import error_page
from tests.support import ADMIN, error_code


def test_unknown_api_path_is_json_404(client):
    """An unknown API path answers the error shape with not_found."""
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and error_code(r) == "not_found"


def test_wrong_method_is_405_with_allow(client):
    """A wrong method is 405 method_not_allowed and says which methods exist."""
    r = client.delete("/api/v1/campaigns", headers=ADMIN)
    assert r.status_code == 405 and error_code(r) == "method_not_allowed"
    assert "POST" in r.headers["Allow"]


def test_oversized_body_is_413(client):
    """A body over 1 MiB is refused with payload_too_large before it is parsed."""
    big = b'{"title": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    r = client.post(
        "/api/v1/campaigns", data=big, headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert r.status_code == 413 and error_code(r) == "payload_too_large"


def test_malformed_json_is_400(client):
    """Broken JSON is 400 bad_request, not a 500."""
    r = client.post(
        "/api/v1/campaigns",
        data=b'{"slug": ',
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and error_code(r) == "bad_request"


def test_html_pages_get_html_errors(client):
    """A browser asking for a missing page gets an HTML page, in Chinese first."""
    r = client.get("/no-such-page")
    assert r.status_code == 404
    assert r.mimetype == "text/html"
    assert "找不到这个页面" in r.get_data(as_text=True)


@pytest.fixture
def crashing_app(make_app):
    """The real app factory with one extra route that fails (added before first request)."""
    application: Flask = make_app()
    application.config["PROPAGATE_EXCEPTIONS"] = False

    @application.get("/api/v1/boom")
    def boom():
        from service.extensions import db
        from service.models import Kiosk

        db.session.add(Kiosk(name="half-written"))
        db.session.flush()
        raise RuntimeError("secret internals /etc/passwd")

    return application


def test_unexpected_error_is_500_rolled_back_without_trace(crashing_app, app):
    """A crash answers 500 internal_error, leaks nothing, and writes nothing."""
    r = crashing_app.test_client().get("/api/v1/boom")
    assert r.status_code == 500 and error_code(r) == "internal_error"
    assert "passwd" not in r.get_data(as_text=True)
    assert "Traceback" not in r.get_data(as_text=True)
    with app.app_context():
        from service.extensions import db
        from service.models import Kiosk

        assert db.session.query(Kiosk).count() == 0


@pytest.mark.parametrize(
    "text",
    ["x" * 301, "标题\x00注入", "bell\x07", "escape\x1b[31m"],
)
def test_overlong_and_control_characters_are_refused(client, clock, text):
    """Very long strings and control characters get 422 with the field named, not a 500."""
    from tests.support import campaign_doc

    r = client.post("/api/v1/campaigns", json=campaign_doc(title=text), headers=ADMIN)
    assert r.status_code == 422 and "title" in r.json["error"]["details"]["fields"]


def test_emoji_mixed_scripts_and_newlines_are_kept_faithfully(client, clock):
    """Emoji, mixed scripts, tabs and line breaks are stored and shown exactly."""
    from tests.support import campaign_doc

    title = "楼组之最 🏠 Building-group 最具人气\tÄ Ω ✓"
    description = "第一行\n第二行 — مرحبا — 👩‍👩‍👧"
    r = client.post(
        "/api/v1/campaigns", json=campaign_doc(title=title, description=description), headers=ADMIN
    )
    assert r.status_code == 201
    got = client.get("/api/v1/campaigns/c1").json
    assert got["title"] == title and got["description"] == description
    page = client.get("/").get_data(as_text=True)
    assert "楼组之最 🏠 Building-group" in page


def test_nul_in_url_is_400(client):
    """A NUL byte in a path or query is refused before it reaches the database."""
    assert client.get("/api/v1/campaigns/a%00b").status_code == 400
    assert client.get("/api/v1/campaigns?x=%00").status_code == 400


def _deep(kind: str, depth: int) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    # Inside a real document: a campaign whose description field is deeply nested.
    return b'{"slug": "deep", "ballots": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("kind", ["array", "object", "field"])
def test_deeply_nested_json_is_400_on_every_json_endpoint(
    app, client, make_campaign, kind, depth, caplog
):
    """JSON nested 1,000 or 100,000 deep is 400 json_too_deep on every operation that takes
    a body (it was a 500 with a RecursionError in the log), for any caller, and nothing is
    logged as an error."""
    import logging

    from tests.support import api_operations

    make_campaign()
    body = _deep(kind, depth)
    assert len(body) < 1024 * 1024
    ops = [(m, p) for m, p in api_operations(app) if m in ("post", "put", "patch")]
    assert len(ops) >= 12
    with caplog.at_level(logging.WARNING):
        for method, path in ops:
            url = (
                path.replace("{slug}", "c1")
                .replace("{code}", "A01")
                .replace("{kiosk_id}", "1")
                .replace("{expert_id}", "1")
                .replace("{exclusion_id}", "1")
                .replace("{run_id}", "x")
                .replace("{version}", "1")
            )
            for headers in (ADMIN, {}):
                r = getattr(client, method)(
                    url, data=body, headers={**headers, "Content-Type": "application/json"}
                )
                assert r.status_code == 400, (method, path, r.status_code)
                assert error_code(r) == "json_too_deep"
                assert r.json["error"]["details"] == {"limit": 32}
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


def test_ordinary_nesting_and_brackets_in_strings_are_not_too_deep(client, make_campaign):
    """The limit counts real nesting only: a title full of brackets is just text, and a
    document nested 32 deep parses (then fails validation like any other)."""
    make_campaign()
    title = "[" * 300 + "{{" * 200 + '\\"['
    r = client.post(
        "/api/v1/campaigns/c1/entries", json={"code": "B01", "title": title[:300]}, headers=ADMIN
    )
    assert r.status_code == 201, r.json
    body = b'{"code": "B02", "title": "x", "summary": ' + b"[" * 31 + b"]" * 31 + b"}"
    r = client.post(
        "/api/v1/campaigns/c1/entries",
        data=body,
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and error_code(r) == "validation_error"
    body = b'{"code": "B02", "title": "x", "summary": ' + b"[" * 32 + b"]" * 32 + b"}"
    r = client.post(
        "/api/v1/campaigns/c1/entries",
        data=body,
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and error_code(r) == "json_too_deep"


# --- HTML error pages: the visitor's language only, plain words, the code in small print ---

CJK = re.compile(r"[\u4e00-\u9fff]")


def _main(html: str) -> str:
    return html.split("<main>", 1)[1].split("</main>", 1)[0]


@pytest.mark.parametrize("status", [400, 403, 404, 405, 413, 429, 500, 503])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_html_error_page_speaks_one_language_in_plain_words(app, status, lang):
    """The API's bilingual message ("未找到 / Not found") becomes a headline and advice in
    the page's language; the raw code only appears in the small 'error code' line."""
    code = HTTP_CODES[status]
    with app.test_request_context(f"/somewhere?lang={lang}"):
        html, got, _ = error_page(status, code, MESSAGES[status])
    assert got == status
    main = _main(html)
    assert " / " not in html
    headline = re.search(r"<h1>(.*?)</h1>", main).group(1)
    assert headline != code and "_" not in headline and str(status) not in headline
    assert re.search(rf'class="error-code"><small>.*<code>{code}</code>', main)
    title = re.search(r"<title>(.*?)</title>", html).group(1)
    if lang == "zh":
        assert CJK.search(headline) and CJK.search(title) and 'lang="zh-CN"' in html
    else:
        assert not CJK.search(main) and not CJK.search(title) and '<html lang="en">' in html


def test_a_missing_page_over_http_in_chinese_then_english(client):
    zh = client.get("/no-such-page")
    assert zh.status_code == 404 and "找不到这个页面" in zh.text and "Not found" not in zh.text
    en = client.get("/no-such-page?lang=en")
    assert "Page not found" in en.text and not CJK.search(_main(en.text))
    again = client.get("/still-missing")  # the choice is kept in the session
    assert "Page not found" in again.text


def test_wrong_method_on_a_page_is_a_plain_405(client):
    r = client.post("/")
    assert (
        r.status_code == 405 and "不支持这种操作" in r.text and "<code>method_not_allowed" in r.text
    )


def test_a_domain_message_shows_only_the_visitors_half(client):
    """A bilingual domain message (评选活动不存在 / No campaign …) is split, not shown whole."""
    zh = client.get("/vote/no-such-campaign")
    assert zh.status_code == 404
    assert "评选活动不存在" in zh.text and "No campaign" not in zh.text
    en = client.get("/vote/no-such-campaign?lang=en")
    assert "No campaign" in en.text and "评选活动不存在" not in en.text


def test_an_expired_form_says_so_in_the_visitors_language(client, make_campaign, clock):
    make_campaign()
    clock.set(datetime(2026, 11, 22, 2, 0, tzinfo=UTC))
    zh = client.post("/vote/c1", data={"voter_id": "13912345678", "choices": ["A01"]})
    assert zh.status_code == 400
    assert "<h1>页面已过期</h1>" in zh.text and "<code>csrf_failed</code>" in zh.text
    en = client.post("/vote/c1?lang=en", data={"voter_id": "13912345678", "choices": ["A01"]})
    assert "<h1>This page has expired</h1>" in en.text and not CJK.search(_main(en.text))


def test_bilingual_campaign_titles_show_the_pages_half(client, make_campaign, clock):
    make_campaign(title="2024年第二批“彭邻格”自治项目遴选 / Pengpu 2024 micro-grid projects")
    zh = client.get("/").text
    assert "2024年第二批“彭邻格”自治项目遴选" in zh and "Pengpu 2024" not in zh
    en = client.get("/?lang=en").text
    assert "Pengpu 2024 micro-grid projects" in en and "彭邻格" not in en
    vote = client.get("/vote/c1?lang=zh").text
    assert "Pengpu 2024" not in vote and "<h1>2024年第二批" in vote
