"""Helpers and factories shared by the test modules: one place, imported by all.

Test modules import from here (and from ``tests.processes`` for real processes), never
from each other; fixtures live in ``conftest.py``. Importing this module needs the
environment ``conftest.py`` sets up first (it is imported after that).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import event, func, select

from engine import merkle
from service.domain.ballots import encode_choice_ids
from service.extensions import db
from service.models import Ballot, BallotChoice, Campaign, Entry, Exclusion, Expert, Score
from service.queues import RANKINGS
from service.redis_conn import get_redis

# --- Tokens, the database, time -----------------------------------------------------


ADMIN_TOKEN = os.environ["ADMIN_TOKEN"]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OPEN = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: campaign_doc's voting is open
PHONE = "13912345678"


def is_postgres() -> bool:
    return os.environ["DATABASE_URL"].startswith("postgres")


class Clock:
    """An injected clock: tests move time explicitly instead of sleeping."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at


class Monotonic:
    """A hand-set ``time.monotonic`` for the per-process hot caches (HOT_CACHE_CLOCK)."""

    def __init__(self) -> None:
        self.at = 1000.0

    def __call__(self) -> float:
        return self.at


def hot_clock(app) -> Monotonic:
    """Install a hand-set clock for ``app``'s hot caches, with caching on (the default)."""
    t = Monotonic()
    app.config["HOT_CACHE_CLOCK"] = t
    assert app.config["HOT_CACHE_SECONDS"] == 1.0  # the default: caching on
    return t


class Statements:
    """The SQL statements (and commits) the app sends, e.g. to see which tables a
    request reads; ``close`` stops listening."""

    def __init__(self, app) -> None:
        self.seen: list[str] = []
        self.commits = 0
        with app.app_context():
            self.engine = db.engine
        event.listen(self.engine, "before_cursor_execute", self._record)
        event.listen(self.engine, "commit", self._commit)

    def _record(self, _conn, _cursor, statement, *_args):
        self.seen.append(" ".join(statement.split()).lower())

    def _commit(self, _conn):
        self.commits += 1

    def reading(self, table: str) -> int:
        return sum(1 for s in self.seen if s.startswith("select") and f"from {table}" in s)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)
        event.remove(self.engine, "commit", self._commit)


def campaign_doc(slug: str = "c1", **overrides) -> dict:
    """A valid campaign document; voting 2026-11-21..2026-11-28 (Asia/Shanghai)."""
    doc = {
        "slug": slug,
        "title": "优秀案例评选",
        "timezone": "Asia/Shanghai",
        "voting": {
            "opens_at": "2026-11-21T09:00:00+08:00",
            "closes_at": "2026-11-28T18:00:00+08:00",
            "min_choices": 1,
            "max_choices": 3,
            "limit": "once",
            "voter_id": "cn_mobile",
            "channels": ["kiosk", "web"],
        },
        "review": {
            "opens_at": "2026-11-21T09:00:00+08:00",
            "closes_at": "2026-11-30T18:00:00+08:00",
            "min_reviews": 3,
            "criteria": [
                {"key": "impact", "label": "实效性", "max_points": 40, "weight": 1},
                {"key": "novelty", "label": "创新性", "max_points": 20, "weight": 1},
            ],
        },
        "ranking": {"public_weight": 0.3, "expert_weight": 0.7},
        "selection": {"rule": "top", "winners": 2},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


ENTRIES = [
    {
        "code": "A01",
        "title": "24小时热线",
        "category": "党建引领",
        "area": "江场西路1366弄",
        "cost": 1000,
    },
    {"code": "A02", "title": "团购管理", "category": "团购管理", "area": "龙馨嘉园", "cost": 2000},
    {"code": "A03", "title": "便民配药", "category": "关怀疏导", "area": "海鹰", "cost": 3000},
]


def error_code(response) -> str:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]["code"]


def closed_port() -> int:
    """A local TCP port with nothing listening."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- Campaigns and the JSON ballot API ----------------------------------------------


def bid() -> str:
    return str(uuid.uuid4())


def ballot(choices=("A01",), voter=PHONE, ballot_id=None, **extra):
    return {"ballot_id": ballot_id or bid(), "voter_id": voter, "choices": list(choices), **extra}


def count_ballots(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Ballot))


def concurrently(n, target):
    """Call ``target(i)`` for i in 0..n-1 in n threads released together; the results."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        results[i] = target(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


# --- The HTML forms -----------------------------------------------------------------


class Page(HTMLParser):
    """Just enough of an HTML page for the assertions: inputs, links, errors, metas."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        self.inputs: list[dict] = []
        self.urls: list[str] = []
        self.metas: list[dict] = []
        self.scripts = 0
        self.described: dict[str, str] = {}  # element id/name -> aria-describedby
        self.errors: list[dict] = []
        self._error: dict | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        self.urls += [a[k] for k in ("src", "href", "action") if k in a]
        if tag == "script":
            self.scripts += 1
        if tag == "input":
            self.inputs.append(a)
        if tag == "meta":
            self.metas.append(a)
        if "aria-describedby" in a:
            self.described[a.get("id") or a.get("name") or tag] = a["aria-describedby"]
        if "data-code" in a:
            self._error = {**a, "text": ""}
            self.errors.append(self._error)

    def handle_endtag(self, tag):
        if tag == "p":
            self._error = None

    def handle_data(self, data):
        if self._error is not None:
            self._error["text"] += data

    def value(self, name: str) -> str | None:
        for item in self.inputs:
            if item.get("name") == name:
                return item.get("value")
        return None

    def input(self, name: str) -> dict:
        return next(i for i in self.inputs if i.get("name") == name)

    def checked(self) -> list[str]:
        return [i["value"] for i in self.inputs if i.get("name") == "choices" and "checked" in i]

    def error(self, code: str) -> dict:
        found = [e for e in self.errors if e.get("data-code") == code]
        assert found, f"no error {code!r} on the page: {self.errors}"
        return found[0]

    def refresh(self) -> str | None:
        for meta in self.metas:
            if meta.get("http-equiv", "").lower() == "refresh":
                return meta.get("content")
        return None


def page_code(response) -> str:
    """The error code an HTML error page (templates/error.html) shows."""
    match = re.search(r"<code>([a-z_]+)</code>", response.text)
    assert match, response.text
    return match.group(1)


def get_form(client, slug: str = "c1", query: str = "") -> Page:
    response = client.get(f"/vote/{slug}{query}")
    assert response.status_code == 200, response.text
    return Page(response.text)


def post_form(client, page: Page, voter_id: str, choices, slug: str = "c1", query: str = ""):
    data = {
        "csrf_token": page.value("csrf_token"),
        "ballot_id": page.value("ballot_id"),
        "voter_id": voter_id,
        "choices": list(choices),
    }
    return client.post(f"/vote/{slug}{query}", data=data)


def ballots(app) -> list:
    from service.extensions import db
    from service.models import Ballot

    with app.app_context():
        rows = db.session.scalars(select(Ballot)).all()
        db.session.expunge_all()
        return rows


def ballot_count(app) -> int:
    from service.extensions import db
    from service.models import Ballot

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Ballot))


def new_kiosk(client, name: str = "街道大厅 1 号机") -> dict:
    r = client.post("/api/v1/kiosks", json={"name": name}, headers=ADMIN)
    assert r.status_code == 201, r.json
    return r.json


def kiosk_credentials(client, name: str = "街道大厅 1 号机") -> dict:
    """A new kiosk as the ballot tests use it: ``id``, ``token`` and its ``headers``."""
    k = new_kiosk(client, name)
    return {
        "id": k["id"],
        "token": k["token"],
        "headers": {"Authorization": f"Bearer {k['token']}"},
    }


def enrol(client, token: str):
    confirm = client.get(f"/kiosk/enrol?token={token}")
    assert confirm.status_code == 200, confirm.text
    page = Page(confirm.text)
    return client.post(
        "/kiosk/enrol", data={"token": token, "csrf_token": page.value("csrf_token")}
    )


# --- SMS codes (the console provider's outbox) --------------------------------------


SMS_VOTING = {"verify": "sms", "channels": ["kiosk", "web"]}


def outbox(app) -> Path:
    return Path(app.instance_path) / "sms-outbox.jsonl"


def outbox_lines(app) -> list[dict]:
    path = outbox(app)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def last_code(app) -> str:
    """What the resident reads on the phone: the code in the newest message."""
    return re.search(r"验证码为 (\d{6})", outbox_lines(app)[-1]["text"]).group(1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


# --- Ranking runs: data inserted directly, the queue worked in this process ---------


def drain(app, rounds: int = 10) -> None:
    """Work the rankings queue until it is empty, promoting scheduled retries at once
    (as if their back-off had elapsed)."""
    conn = get_redis(app.config["REDIS_URL"])
    queue = Queue(RANKINGS, connection=conn)
    for _ in range(rounds):
        SimpleWorker([queue], connection=conn).work(burst=True)
        scheduled = queue.scheduled_job_registry.get_job_ids()
        if not scheduled:
            return
        for job_id in scheduled:
            queue.scheduled_job_registry.remove(job_id)
            queue.enqueue_job(Job.fetch(job_id, connection=conn))
    raise AssertionError("queue did not drain")


def work_once(app) -> None:
    """One burst of the worker, without promoting retries."""
    conn = get_redis(app.config["REDIS_URL"])
    SimpleWorker([Queue(RANKINGS, connection=conn)], connection=conn).work(burst=True)


def receipt_code() -> str:
    raw = secrets.token_hex(8).upper()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def add_ballots(app, slug: str, ballots: list[list[str]], at: datetime | None = None) -> list:
    """Insert accepted ballots directly (the casting path is tested elsewhere).

    Returns ``(ballot_id, receipt)`` pairs in input order.
    """
    at = at or datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    out = []
    with app.app_context():
        campaign = db.session.scalar(select(Campaign).where(Campaign.slug == slug))
        ids = dict(
            db.session.execute(
                select(Entry.code, Entry.id).where(Entry.campaign_id == campaign.id)
            ).all()
        )
        for codes in ballots:
            ballot_id, receipt = str(uuid.uuid4()), receipt_code()
            # the stored columns as the ingest path writes them (service/domain/ballots.py)
            db.session.add(
                Ballot(
                    id=ballot_id,
                    campaign_id=campaign.id,
                    voter_key=secrets.token_hex(32),
                    dedup_slot="once",
                    channel="web",
                    cast_at=at,
                    accepted_at=at,
                    content_digest=hashlib.sha256(",".join(codes).encode()).hexdigest(),
                    receipt=receipt,
                    nonce=secrets.token_hex(16),
                    leaf=merkle.leaf_hash(receipt.encode()),
                    choice_ids=encode_choice_ids([ids[code] for code in codes]),
                )
            )
            for code in codes:
                db.session.add(
                    BallotChoice(ballot_id=ballot_id, entry_id=ids[code], campaign_id=campaign.id)
                )
            out.append((ballot_id, receipt))
        db.session.commit()
    return out


def exclude(app, slug: str, ballot_id: str, reason: str = "同一终端短时间内大量投票") -> None:
    with app.app_context():
        campaign = db.session.scalar(select(Campaign).where(Campaign.slug == slug))
        db.session.add(
            Exclusion(campaign_id=campaign.id, ballot_id=ballot_id, reason=reason, actor="admin:t")
        )
        db.session.commit()


def add_scores(app, slug: str, table: dict[str, list[tuple[int, int]]]) -> None:
    """``table``: entry code -> one (impact, novelty) pair per expert, experts E1, E2..."""
    with app.app_context():
        campaign = db.session.scalar(select(Campaign).where(Campaign.slug == slug))
        ids = dict(
            db.session.execute(
                select(Entry.code, Entry.id).where(Entry.campaign_id == campaign.id)
            ).all()
        )
        n = max(len(v) for v in table.values())
        experts = [Expert(campaign_id=campaign.id, name=f"专家{i + 1}") for i in range(n)]
        db.session.add_all(experts)
        db.session.flush()
        for code, pairs in table.items():
            for expert, (impact, novelty) in zip(experts, pairs, strict=False):
                db.session.add(
                    Score(
                        campaign_id=campaign.id,
                        expert_id=expert.id,
                        entry_id=ids[code],
                        scores={"impact": impact, "novelty": novelty},
                        total=impact + novelty,
                    )
                )
        db.session.commit()


def start_run(client, slug: str = "c1") -> str:
    r = client.post(f"/api/v1/campaigns/{slug}/rankings", headers=ADMIN)
    assert r.status_code == 202, r.json
    return r.json["run_id"]


def get_run(client, run_id: str) -> dict:
    r = client.get(f"/api/v1/rankings/{run_id}", headers=ADMIN)
    assert r.status_code == 200, r.json
    return r.json


VOTES = [["A01", "A02"], ["A01"], ["A02", "A03"], ["A01", "A03"], ["A01"]]


SCORES = {
    "A01": [(30, 15), (35, 18), (32, 16)],
    "A02": [(20, 10), (25, 12), (22, 11)],
    "A03": [(38, 19), (36, 20), (39, 18)],
}


# --- Publications -------------------------------------------------------------------


APPEAL_ENTRIES = [
    {"code": f"B0{i}", "title": f"项目{i}", "category": "社区", "area": f"片区{i}", "cost": 1000}
    for i in range(1, 8)
]


# The experts' sheets: entry -> (impact /40, novelty /20) per expert E1..E5. E5 is harsh
# except on B01, where the additive fit lifts it above 100 (published clipped); B07 has
# no review at all.
APPEAL_SHEETS = {
    "B01": [(40, 20), (39, 19), (38, 19), (40, 18), (37, 20)],
    "B02": [(30, 15), (28, 14), (31, 12), (27, 16), (12, 5)],
    "B03": [(22, 11), (25, 13), (20, 9), (24, 10), (8, 4)],
    "B04": [(35, 17), (33, 15), (30, 18)],
    "B05": [(18, 8), (21, 11), (19, 12), (23, 9), (6, 3)],
    "B06": [(26, 13), (29, 10)],
}


APPEAL_VOTES = [["B01", "B02"], ["B02"], ["B03", "B04"], ["B02", "B05"], ["B06"], ["B01"]]


# --- The OpenAPI document -----------------------------------------------------------


def api_operations(app):
    spec = app.test_client().get("/api/openapi.json").json
    return [
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


# --- A real browser (Debian's Chromium under Playwright) ----------------------------


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


# The probe's flags; without the background-networking ones Chromium's own connections
# are refused by this machine's closed network, many at a time.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"


DESKTOP = {"viewport": {"width": 1280, "height": 900}, "locale": "zh-CN"}


RECEIPT_RE = r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}"


TIMEOUT_MS = 10_000


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium under Playwright; a missing piece fails the test, with the fix."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.fail(
            "The Python package playwright is not installed. Install the dev extras: "
            "`make install` (requirements-dev.lock pins it). Its browser "
            "download (`playwright install`) is not needed: the tests use Debian's Chromium.",
            pytrace=False,
        )
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}. Install Debian's package: "
            "`apt-get update && apt-get install -y chromium` (or set CHROMIUM to another "
            "Chromium binary). Playwright's own browser download does not work offline.",
            pytrace=False,
        )
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000
            )
        except Error as exc:
            pytest.fail(f"Chromium at {CHROMIUM} did not start: {exc}", pytrace=False)
        try:
            yield browser
        finally:
            browser.close()


HTTP_ERROR_LOG = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


class Watch:
    """Every request, console error and page error of one browser context.

    Chromium logs a console error for every HTTP error answer, the main document's
    included. The answers a test expects (a refused ballot re-rendered with 422) are
    declared with ``expect``; any other console error fails the test.
    """

    def __init__(self, context, base: str) -> None:
        self.base = base
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        # Every page links its icon (/static/favicon.svg), so no 404 is expected by default.
        self.expected: set[tuple[str, int]] = set()
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("page", self._page)

    def expect(self, path: str, status: int) -> None:
        self.expected.add((path, status))

    def _page(self, page) -> None:
        page.on("console", lambda msg: self._console(page, msg))
        page.on("pageerror", lambda exc: self.console_errors.append(f"{page.url}: {exc}"))

    def _console(self, page, msg) -> None:
        if msg.type != "error":
            return
        http = HTTP_ERROR_LOG.match(msg.text)
        url = (msg.location or {}).get("url", "")
        path = url.removeprefix(self.base) if url.startswith(self.base) else None
        if http and (path, int(http.group(1))) in self.expected:
            return
        self.console_errors.append(f"{page.url}: {msg.text} ({url})")

    def check(self) -> None:
        assert self.requests, "the browser made no request at all"
        foreign = [u for u in self.requests if not u.startswith(self.base + "/")]
        assert foreign == [], f"requests to other hosts than {self.base}: {foreign}"
        assert self.console_errors == [], f"console errors: {self.console_errors}"


@contextmanager
def browsing(browser, base: str, **options) -> Iterator:
    """A fresh context (own cookies) and page; at the end, the requests and console."""
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    watch = Watch(context, base)
    page = context.new_page()
    try:
        yield page, watch
    finally:
        context.close()
    watch.check()


def shot(page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


# A phone-sized touch screen; a kiosk tablet is wider, so this is the harder case.
PHONE_SCREEN = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
}

MIN_TARGET = 44  # CSS px, WCAG 2.5.5 / Apple HIG

# The server holds each ballot post this long, so that a double tap's second post is
# sent while the first is still being answered, as on a slow kiosk network.
POST_DELAY = 0.4


class Recorder:
    """WSGI middleware: what reached the server and what it answered; a delay on ballot
    posts."""

    def __init__(self, app) -> None:
        self.app = app
        self.seen: list[tuple[str, str, str]] = []  # (method, path, status)
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")

        def recording_start_response(status, headers, exc_info=None):
            with self.lock:
                self.seen.append((method, path, status.split()[0]))
            return start_response(status, headers, exc_info)

        if method == "POST" and path.startswith("/vote/"):
            time.sleep(POST_DELAY)
        return self.app(environ, recording_start_response)

    def posts(self, path: str) -> list[str]:
        """The statuses of the posts to a path, in the order they were answered."""
        with self.lock:
            return [status for m, p, status in self.seen if m == "POST" and p == path]


def assert_touch_size(page, selector: str) -> None:
    """Every element matching the selector is at least 44×44 CSS px on screen."""
    items = page.locator(selector)
    assert items.count() > 0, f"nothing matches {selector!r}"
    for i in range(items.count()):
        item = items.nth(i)
        item.scroll_into_view_if_needed()
        box = item.bounding_box()
        assert box is not None, f"{selector} #{i} is not displayed"
        assert box["width"] >= MIN_TARGET and box["height"] >= MIN_TARGET, (
            f"{selector} #{i} is {box['width']:.0f}×{box['height']:.0f} CSS px, "
            f"smaller than {MIN_TARGET}×{MIN_TARGET}: {item.inner_text()!r}"
        )


def submit(page, selector: str = "#submit-ballot"):
    """Tap a submit button and wait for the answer; returns the main response."""
    with page.expect_navigation() as nav:
        page.tap(selector)
    return nav.value


def checked(page) -> list[str]:
    boxes = page.locator("input[name=choices]")
    return [
        boxes.nth(i).get_attribute("value")
        for i in range(boxes.count())
        if boxes.nth(i).is_checked()
    ]
