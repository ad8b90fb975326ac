"""The HTML forms over real TLS, as production serves them.

Behind HTTPS, Flask-WTF's CSRF check also requires a ``Referer`` from our own origin
(``WTF_CSRF_SSL_STRICT``). A ``Referrer-Policy`` that sends no referrer at all therefore
made every form answer 400 ``csrf_failed`` in a real browser over HTTPS, while every
test over plain HTTP passed. Here gunicorn (``gunicorn.conf.py``, production mode)
serves a certificate made by the test, and Chromium, told to accept it, votes on the web,
enrols a kiosk and votes from it, and an expert opens the personal link and scores.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from tests.processes import RedisServer, free_port, gunicorn, http, migrate, wait_healthy
from tests.support import DESKTOP, PHONE, RECEIPT_RE, browsing, campaign_doc, chromium, shot

pytestmark = pytest.mark.slow  # nginx, gunicorn and Chromium over TLS

ADMIN_TOKEN = "adm_tls_" + secrets.token_urlsafe(24)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def make_certificate(directory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (openssl CLI): (certfile, keyfile)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return str(cert), str(key)


@pytest.fixture
def tls_server(tmp_path):
    """gunicorn over TLS in production mode, SQLite and a throw-away Redis:
    (base URL, ssl context trusting the certificate, database URL, web process)."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    certfile, keyfile = make_certificate(tmp_path)
    redis_server = RedisServer(logdir).start()
    port = free_port()
    database = f"sqlite:///{tmp_path / 'votes.db'}"
    env = {
        **os.environ,
        "VOTES_ENV": "production",
        "SECRET_KEY": secrets.token_hex(32),
        "VOTER_PEPPER": secrets.token_hex(32),
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "DATABASE_URL": database,
        "REDIS_URL": redis_server.url,
        "VOTES_INSTANCE": str(tmp_path / "inst"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "WEB_CONCURRENCY": "1",
    }
    web = None
    try:
        migrate(env)
        web = gunicorn(env, logdir, port, ("--certfile", certfile, "--keyfile", keyfile)).start()
        base = f"https://127.0.0.1:{port}"
        context = ssl.create_default_context(cafile=certfile)
        wait_healthy(base, context=context)
        yield base, context, database, web
    finally:
        if web is not None:
            web.stop()
        redis_server.stop()


def open_campaign(base: str, context) -> dict:
    """A campaign open for web and kiosk ballots and for review; a kiosk and an expert."""
    now = datetime.now(UTC)
    doc = campaign_doc(
        "tls",
        voting={
            "opens_at": (now + timedelta(minutes=5)).isoformat(),
            "closes_at": (now + timedelta(days=1)).isoformat(),
        },
        review={
            "opens_at": (now - timedelta(hours=1)).isoformat(),
            "closes_at": (now + timedelta(days=1)).isoformat(),
        },
    )

    def call(method, path, body=None):
        status, _, answer = http(method, base + path, body, ADMIN, context=context)
        assert status in (200, 201), (method, path, status, answer)
        return answer

    call("POST", "/api/v1/campaigns", doc)
    entries = [{"code": f"A0{i}", "title": f"案例{i}"} for i in range(1, 4)]
    call("POST", "/api/v1/campaigns/tls/entries", entries)
    call(
        "PATCH",
        "/api/v1/campaigns/tls",
        {"voting": {"opens_at": (now - timedelta(hours=1)).isoformat()}},
    )
    kiosk = call("POST", "/api/v1/kiosks", {"name": "街道大厅 1 号机"})
    expert = call("POST", "/api/v1/campaigns/tls/experts", {"name": "王建华"})
    return {"kiosk": kiosk, "expert": expert}


def vote(page, base: str, phone: str) -> str:
    """Fill and send the voting form; the receipt code shown afterwards."""
    from playwright.sync_api import expect

    assert page.goto(f"{base}/vote/tls").status == 200
    page.check("#choice-A01")
    page.fill("#voter_id", phone)
    with page.expect_navigation() as nav:
        page.click("#submit-ballot")
    assert nav.value.status == 200, page.content()
    expect(page).to_have_url(re.compile(rf"/vote/tls/receipt/{RECEIPT_RE}$"))
    return page.locator("#receipt-code").inner_text()


def test_vote_enrol_a_kiosk_and_score_in_a_browser_over_https(tls_server):
    """Over TLS every form is accepted: a web ballot, a kiosk enrolment and a ballot from
    the kiosk, an expert's confirming login and score. None is refused as CSRF."""
    base, context, database, web = tls_server
    made = open_campaign(base, context)
    tls = {**DESKTOP, "ignore_https_errors": True}

    with chromium() as browser:
        # A resident on the web.
        with browsing(browser, base, **tls) as (page, _):
            web_receipt = vote(page, base, PHONE)
            shot(page, "tls-01-receipt")

        # A kiosk: the token typed on the enrolment page, then a ballot from it.
        with browsing(browser, base, **tls) as (page, _):
            assert page.goto(f"{base}/kiosk/enrol").status == 200
            page.fill("#token", made["kiosk"]["token"])
            with page.expect_navigation() as nav:
                page.click("form button[type=submit]")
            assert nav.value.status == 200, page.content()
            assert "登记成功" in page.locator("main").inner_text()
            [cookie] = [c for c in page.context.cookies() if c["name"] == "votes_kiosk"]
            assert cookie["httpOnly"] and cookie["secure"]
            kiosk_receipt = vote(page, base, "13900000001")
            shot(page, "tls-02-kiosk-receipt")

        # An expert: the personal link (token in the URL), confirm, score one entry.
        with browsing(browser, base, **tls) as (page, _):
            assert page.goto(base + made["expert"]["review_url"]).status == 200
            with page.expect_navigation() as nav:
                page.click("form button[type=submit]")
            assert nav.value.status == 200, page.content()
            assert page.url == f"{base}/review/tls"
            page.fill("#A01-impact", "30")
            page.fill("#A01-novelty", "12")
            with page.expect_navigation() as nav:
                page.click("#entry-A01 button[type=submit]")
            assert nav.value.status == 200, page.content()
            assert "已评分 · 第 1 版" in page.locator("#entry-A01").inner_text()
            shot(page, "tls-03-review-saved")

    engine = create_engine(database)
    with engine.connect() as conn:
        ballots = dict(conn.execute(text("SELECT receipt, channel FROM ballots")).all())
        scores = conn.execute(text("SELECT revision FROM scores")).scalars().all()
    engine.dispose()
    assert ballots == {web_receipt: "web", kiosk_receipt: "kiosk"}
    assert scores == [1]
    # Every form post was answered over TLS without a CSRF refusal.
    log = web.output()
    assert '"status":400' not in log, log
    assert re.search(r'"method":"POST","path":"/vote/tls","status":303', log), log
