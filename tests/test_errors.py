"""One error shape for every failure, never a stack trace."""

import pytest
from flask import Flask

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
    assert "未找到" in r.get_data(as_text=True)


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
