"""Security headers and the attack surface of the API."""

from pathlib import Path

import pytest

from tests.support import ADMIN, api_operations


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/healthz",
        "/api/v1/campaigns",
        "/api/openapi.json",
        "/no-such-page",
        "/static/site.css",
    ],
)
def test_security_headers_on_every_response(client, path):
    """Every response forbids framing, sniffing, referrers to other origins and any script
    or outside source. Same-origin referrers stay: the CSRF check over HTTPS needs them."""
    r = client.get(path)
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp  # falls back to default-src 'none': no scripts at all
    assert "http" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert r.headers["X-Frame-Options"] == "DENY"


def test_no_page_with_a_post_form_withholds_its_referrer():
    """A page-level ``<meta name="referrer">`` overrides the header for that page: on a
    page with a form that posts, ``no-referrer`` (or anything that drops our own origin)
    makes the post fail the CSRF referrer check over HTTPS (tests/test_https.py). Every
    page extends base.html, so it may not set one either."""
    templates = Path(__file__).resolve().parent.parent / "service" / "templates"
    offenders = [
        path.name
        for path in sorted(templates.rglob("*.html"))
        if (
            'method="post"' in (html := path.read_text("utf-8")).lower() or path.name == "base.html"
        )
        and 'name="referrer"' in html
    ]
    assert offenders == []


# Everything not listed here is treated as an admin operation, so a new endpoint is
# covered by default and must be declared public (or kiosk/expert) on purpose.
PUBLIC = {
    ("get", "/api/v1/campaigns"),
    ("get", "/api/v1/campaigns/{slug}"),
    ("get", "/api/v1/campaigns/{slug}/entries"),
    ("get", "/api/v1/campaigns/{slug}/entries/{code}"),
    ("get", "/api/v1/receipts/{receipt}"),
    ("get", "/api/v1/campaigns/{slug}/results"),
    ("get", "/api/v1/campaigns/{slug}/results.csv"),
    ("get", "/api/v1/campaigns/{slug}/publications/{version}"),
}
KIOSK_OR_VOTER = {
    ("post", "/api/v1/campaigns/{slug}/ballots"),
    ("post", "/api/v1/campaigns/{slug}/ballots/batch"),
    ("post", "/api/v1/campaigns/{slug}/verifications"),
}
EXPERT = {
    ("get", "/api/v1/campaigns/{slug}/review/assignments"),
    ("put", "/api/v1/campaigns/{slug}/entries/{code}/score"),
}


def _admin_operations(app):
    return [op for op in api_operations(app) if op not in PUBLIC | KIOSK_OR_VOTER | EXPERT]


def test_every_operation_is_classified(app):
    """The lists above name real operations (a renamed endpoint cannot hide)."""
    assert set(api_operations(app)) >= PUBLIC | KIOSK_OR_VOTER | EXPERT


def test_admin_endpoints_refuse_anonymous_kiosk_and_expert(app, client, make_campaign):
    """Every admin endpoint refuses no token (401) and kiosk or expert tokens (403)."""
    make_campaign()
    kiosk = client.post("/api/v1/kiosks", json={"name": "k"}, headers=ADMIN).json["token"]
    expert = client.post("/api/v1/campaigns/c1/experts", json={"name": "e"}, headers=ADMIN).json[
        "token"
    ]
    ops = _admin_operations(app)
    assert len(ops) >= 15, ops
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
        call = getattr(client, method)
        assert call(url, json={}).status_code == 401, (method, path)
        for token in (kiosk, expert):
            r = call(url, json={}, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 403, (method, path, r.status_code)
