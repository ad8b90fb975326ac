"""The kiosk hot path (issue 18): a cached kiosk ballot is one autocommit statement on
PostgreSQL, the kiosk limit is counted with Redis leases, the enrolled HTML form uses the
same caches, and revocations and rule changes made through the domain reach every process
through the version counter.

"Another process" is another app built by ``make_app`` (its own caches and leases, the
same database and Redis); time is stepped with HOT_CACHE_CLOCK, no sleeps.
"""

import threading
import uuid
from datetime import datetime, timedelta

import psycopg
import pytest
from sqlalchemy import event, select

from service import hotcache, ratelimit
from service.domain import ballots as ballot_domain
from service.domain.campaigns import get_campaign, update_campaign
from service.domain.kiosks import revoke_kiosk
from service.extensions import db
from service.models import Ballot, BallotChoice
from service.redis_conn import get_redis
from tests.support import (
    ADMIN,
    Monotonic,
    Statements,
    ballot_count,
    concurrently,
    enrol,
    error_code,
    get_form,
    hot_clock,
    is_postgres,
    kiosk_credentials,
    new_kiosk,
    page_code,
    post_form,
)

OPEN = datetime.fromisoformat("2026-11-22T10:00:00+08:00")
_n = iter(range(10_000_000, 99_999_999))


def voter() -> str:
    return f"139{next(_n)}"


@pytest.fixture
def ticks(app, make_campaign, clock) -> Monotonic:
    make_campaign()
    clock.set(OPEN)
    return hot_clock(app)


@pytest.fixture
def kiosk(client):
    return kiosk_credentials(client)


def cast(client, kiosk, slug="c1", ballot_id=None, voter_id=None, choices=("A01",)):
    body = {
        "ballot_id": ballot_id or str(uuid.uuid4()),
        "voter_id": voter_id or voter(),
        "choices": list(choices),
    }
    return client.post(f"/api/v1/campaigns/{slug}/ballots", data=body, headers=kiosk["headers"])


def _leased(app, kiosk_id: int) -> list[int]:
    """The hits leased from Redis for this kiosk's API ballots, per window (the Redis
    server may be shared: its command counters are not this test's alone)."""
    redis = get_redis(app.config["REDIS_URL"])
    return [int(redis.get(k)) for k in redis.keys(f"votes:lease:api:kiosk:{kiosk_id}:*")]


# --- One round trip ----------------------------------------------------------------


def test_cached_kiosk_ballot_is_one_statement_and_no_redis_round_trip(client, app, ticks, kiosk):
    """Once the token and the locked campaign are cached, a kiosk ballot sends one
    statement to the database (PostgreSQL: ballot and choices in one autocommit
    statement, no BEGIN/COMMIT) and, for 19 ballots out of 20, nothing to Redis."""
    for _ in range(2):  # the first locks the rules, the second caches the locked campaign
        assert cast(client, kiosk).status_code == 201
    statements = Statements(app)
    try:
        for _ in range(10):
            r = cast(client, kiosk, choices=("A02", "A01"))
            assert r.status_code == 201, r.json
            assert r.json["choices"] == ["A01", "A02"] and r.json["channel"] == "kiosk"
    finally:
        statements.close()
    if is_postgres():
        assert len(statements.seen) == 10, statements.seen
        assert all(s.startswith("with new_ballot as (insert into ballots") for s in statements.seen)
        assert statements.commits == 0  # autocommit: durable when the statement returns
    else:  # SQLite: the ballot and its choices in the request's transaction
        inserts = [s for s in statements.seen if s != "begin immediate"]
        assert len(inserts) == 20 and statements.commits == 10
    # 12 ballots, one lease of 20 hits (two if the test crossed a minute's boundary).
    assert _leased(app, kiosk["id"]) in ([20], [20, 20]), _leased(app, kiosk["id"])
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(BallotChoice)) == 22


def _outcomes(client, kiosk, slug: str, prefix: str) -> list:
    """The same sequence of ballots on one campaign: (status, error code or body)."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    first = f"{prefix}00000001"
    steps = [
        dict(ballot_id=a, voter_id=first, choices=("A01", "A02")),  # new
        dict(ballot_id=a, voter_id=first, choices=("A01", "A02")),  # replay
        dict(ballot_id=a, voter_id=first, choices=("A03",)),  # ballot_id_reused
        dict(ballot_id=b, voter_id=first, choices=("A03",)),  # already_voted
        dict(voter_id=f"{prefix}00000002", choices=("A09",)),  # unknown_entry
        dict(voter_id=f"{prefix}00000003", choices=("A01", "A01")),  # duplicate_choice
        dict(voter_id=f"{prefix}00000004", choices=("A01", "A02", "A03", "A01")),
        dict(voter_id="12345", choices=("A01",)),  # invalid_voter_id
    ]
    out = []
    receipts = {}
    for step in steps:
        r = cast(client, kiosk, slug=slug, **step)
        if r.status_code in (200, 201):
            body = r.json
            receipts.setdefault(body["ballot_id"], body["receipt"])
            assert body["receipt"] == receipts[body["ballot_id"]]
            out.append((r.status_code, body["choices"], body["channel"]))
        else:
            out.append((r.status_code, error_code(r)))
    return out


def test_same_answers_as_the_slow_path(client, app, ticks, make_campaign, kiosk, monkeypatch):
    """The same ballots through the one-statement path and through the request's
    transaction (autocommit off) give the same answers, and store the same rows."""
    app.config["CLOCK"].set(OPEN - timedelta(days=3))  # entries are set before voting
    make_campaign("c2")
    app.config["CLOCK"].set(OPEN)
    for slug in ("c1", "c2"):  # lock and cache both campaigns
        assert cast(client, kiosk, slug=slug).status_code == 201
        assert cast(client, kiosk, slug=slug).status_code == 201
    fast = _outcomes(client, kiosk, "c1", "137")
    original = ballot_domain._cast_ballot

    def slow(campaign, **kwargs):
        return original(campaign, **{**kwargs, "autocommit": False})

    monkeypatch.setattr(ballot_domain, "_cast_ballot", slow)
    slow_answers = _outcomes(client, kiosk, "c2", "136")
    assert fast == slow_answers
    assert [x[:2] for x in fast] == [
        (201, ["A01", "A02"]),
        (200, ["A01", "A02"]),
        (422, "ballot_id_reused"),
        (409, "already_voted"),
        (422, "unknown_entry"),
        (422, "duplicate_choice"),
        (422, "duplicate_choice"),
        (422, "invalid_voter_id"),
    ]
    with app.app_context():
        rows = db.session.execute(
            select(Ballot.campaign_id, Ballot.channel, Ballot.kiosk_id, Ballot.flagged)
        ).all()
    by_campaign: dict[int, list] = {}
    for campaign_id, *rest in rows:
        by_campaign.setdefault(campaign_id, []).append(tuple(rest))
    assert len(by_campaign) == 2
    first, second = by_campaign.values()
    assert sorted(first, key=str) == sorted(second, key=str)


def test_closed_campaign_and_revoked_kiosk_on_the_cached_path(client, app, ticks, kiosk):
    for _ in range(2):
        assert cast(client, kiosk).status_code == 201
    accepted = cast(client, kiosk, voter_id="13900000077")
    assert accepted.status_code == 201
    # After closing: a retry of an accepted ballot still replays; a new one is refused.
    app.config["CLOCK"].set(datetime.fromisoformat("2026-11-28T18:00:00+08:00"))
    r = cast(client, kiosk)
    assert r.status_code == 403 and error_code(r) == "voting_closed"
    body = {"ballot_id": accepted.json["ballot_id"], "voter_id": "13900000077", "choices": "A01"}
    r = client.post("/api/v1/campaigns/c1/ballots", data=body, headers=kiosk["headers"])
    assert r.status_code == 200 and r.json["receipt"] == accepted.json["receipt"]
    app.config["CLOCK"].set(OPEN)
    assert client.delete(f"/api/v1/kiosks/{kiosk['id']}", headers=ADMIN).status_code == 204
    r = cast(client, kiosk)
    assert r.status_code == 401 and error_code(r) == "unauthorized"


# --- Exactly once under concurrency ------------------------------------------------


def test_concurrent_double_post_is_recorded_once(server, app, ticks, kiosk):
    """Eight posts of the same ballot at once (a kiosk retrying over a flaky network):
    one 201, the others 200 with the same receipt; one row, one set of choices. Eight
    different ballots of the same voter at once: one 201, seven already_voted."""
    from tests.processes import http

    base, _ = server
    url = f"{base}/api/v1/campaigns/c1/ballots"
    auth = kiosk["headers"]
    for _ in range(2):  # warm: rules locked, campaign and token cached
        assert (
            http(
                "POST",
                url,
                {"ballot_id": str(uuid.uuid4()), "voter_id": voter(), "choices": ["A01"]},
                auth,
                form=True,
            )[0]
            == 201
        )
    same = {"ballot_id": str(uuid.uuid4()), "voter_id": voter(), "choices": ["A01", "A03"]}
    answers = concurrently(8, lambda _i: http("POST", url, same, auth, form=True))
    statuses = sorted(a[0] for a in answers)
    assert statuses == [200] * 7 + [201], statuses
    assert len({a[2]["receipt"] for a in answers}) == 1
    person = voter()
    answers = concurrently(
        8,
        lambda _i: http(
            "POST",
            url,
            {"ballot_id": str(uuid.uuid4()), "voter_id": person, "choices": ["A02"]},
            auth,
            form=True,
        ),
    )
    statuses = sorted(a[0] for a in answers)
    assert statuses == [201] + [409] * 7, statuses
    assert {a[2]["error"]["code"] for a in answers if a[0] == 409} == {"already_voted"}
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).where(Ballot.id == same["ballot_id"])) == 1
        chosen = db.session.scalars(
            select(BallotChoice.entry_id).where(BallotChoice.ballot_id == same["ballot_id"])
        ).all()
        assert len(chosen) == 2
    assert ballot_count(app) == 4


# --- A database failure mid-request ------------------------------------------------


@pytest.mark.skipif(not is_postgres(), reason="the one-statement path is PostgreSQL's")
def test_connection_killed_during_the_insert_is_503_and_no_ballot(client, app, ticks, kiosk):
    """The server ends the connection the ballot statement is about to run on (a real
    pg_terminate_backend): 503 unavailable with Retry-After, nothing stored; the retry
    of the same ballot is then accepted on a fresh connection."""
    for _ in range(2):
        assert cast(client, kiosk).status_code == 201
    with app.app_context():
        engine = db.engine
    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg://", "postgresql://")
    killed = []

    def kill(conn, _cursor, statement, *_args):
        if "insert into ballots" in statement.lower() and not killed:
            pid = conn.connection.dbapi_connection.info.backend_pid
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            killed.append(pid)

    event.listen(engine, "before_cursor_execute", kill)
    body = {"ballot_id": str(uuid.uuid4()), "voter_id": voter(), "choices": ["A01", "A02"]}
    try:
        before = ballot_count(app)
        r = client.post("/api/v1/campaigns/c1/ballots", data=body, headers=kiosk["headers"])
        assert killed, "the statement did not run"
        assert r.status_code == 503 and error_code(r) == "unavailable", r.json
        assert int(r.headers["Retry-After"]) > 0
        assert ballot_count(app) == before
    finally:
        event.remove(engine, "before_cursor_execute", kill)
    r = client.post("/api/v1/campaigns/c1/ballots", data=body, headers=kiosk["headers"])
    assert r.status_code == 201, r.json
    assert ballot_count(app) == before + 1


# --- Revocation and rule changes through the domain, in another process ------------


@pytest.fixture
def other(make_app, app):
    """Another process: its own caches and leases, the same database and Redis."""
    return make_app()


@pytest.fixture
def long_lived(app, other, monkeypatch):
    """Entries may live 10 s while the counter does not move (in both processes)."""
    monkeypatch.setitem(app.config, "HOT_CACHE_MAX_SECONDS", 10.0)
    other.config["HOT_CACHE_MAX_SECONDS"] = 10.0


def test_revocation_in_another_process_reaches_this_one_through_the_counter(
    client, app, ticks, kiosk, other, long_lived
):
    """The console of another process revokes the kiosk (the domain function): within a
    second this process refuses the token, and the enrolled browser's cookie, even with
    entries allowed to live 10 s, because the version counter moved."""
    browser = app.test_client()
    assert enrol(browser, kiosk["token"]).status_code == 200
    assert cast(client, kiosk).status_code == 201
    form = get_form(browser)
    assert "kiosk" in browser.get("/vote/c1").text  # an enrolled kiosk's form
    ticks.at += 0.5
    with other.app_context():
        revoke_kiosk(kiosk["id"], "admin:test")
        db.session.commit()
    assert cast(client, kiosk).status_code == 201  # cached, and the counter not read yet
    ticks.at += 1.0
    r = cast(client, kiosk)
    assert r.status_code == 401 and error_code(r) == "unauthorized"
    r = post_form(browser, form, voter(), ["A01"])
    assert r.status_code == 403 and page_code(r) == "kiosk_revoked"


def test_without_the_counter_a_direct_write_waits_for_the_entry_to_expire(
    client, app, ticks, kiosk, other, long_lived
):
    """What the counter is for: a revocation written past the domain functions (no
    version bump) is seen only when the entry expires (HOT_CACHE_MAX_SECONDS)."""
    from sqlalchemy import update

    from service.clock import now
    from service.models import ApiToken

    assert cast(client, kiosk).status_code == 201
    with other.app_context():
        db.session.execute(
            update(ApiToken).where(ApiToken.kiosk_id == kiosk["id"]).values(revoked_at=now())
        )
        db.session.commit()
    ticks.at += 2.0
    assert cast(client, kiosk).status_code == 201  # counter unchanged: entry trusted
    ticks.at += 9.0
    assert cast(client, kiosk).status_code == 401


def test_rule_change_in_another_process_takes_effect_within_a_second(
    client, app, ticks, kiosk, other, long_lived
):
    for _ in range(2):
        assert cast(client, kiosk).status_code == 201
    with other.app_context():
        other.config["CLOCK"] = app.config["CLOCK"]
        campaign = get_campaign("c1")
        earlier = (OPEN - timedelta(minutes=1)).isoformat()
        update_campaign(campaign, {"voting": {"closes_at": earlier}}, "admin:test")
        db.session.commit()
    ticks.at += 1.0
    r = cast(client, kiosk)
    assert r.status_code == 403 and error_code(r) == "voting_closed"


def test_a_rolled_back_change_does_not_move_the_counter(app, ticks, kiosk, other):
    redis = get_redis(app.config["REDIS_URL"])
    before = int(redis.get(hotcache.VERSION_KEY) or 0)
    with other.app_context():
        revoke_kiosk(kiosk["id"], "admin:test")
        db.session.rollback()
    assert int(redis.get(hotcache.VERSION_KEY) or 0) == before
    with other.app_context():
        revoke_kiosk(kiosk["id"], "admin:test")
        db.session.commit()
    assert int(redis.get(hotcache.VERSION_KEY) or 0) == before + 1


# --- The kiosk rate limit, counted with leases ---------------------------------------


def test_kiosk_limit_holds_across_processes(client, app, ticks, kiosk, make_app, monkeypatch):
    """Three processes share one kiosk's limit of 60 per hour with leases of 3 hits
    (1/20 of the limit): never more than 60 accepted in all, at most (3 - 1) x (3 - 1)
    refused early, and then 429 rate_limited with Retry-After from every process."""
    monkeypatch.setitem(app.config, "RATELIMIT_BALLOTS_KIOSK", "60 per hour")
    monkeypatch.setitem(app.config, "RATELIMIT_LEASE_SIZE", 5)  # capped at 60 // 20 = 3
    apps = [app, make_app(), make_app()]
    for a in apps[1:]:
        a.config.update(RATELIMIT_BALLOTS_KIOSK="60 per hour", RATELIMIT_LEASE_SIZE=5)
        a.config["CLOCK"] = app.config["CLOCK"]
    clients = [a.test_client() for a in apps]
    answers = [cast(clients[i % 3], kiosk) for i in range(75)]
    accepted = sum(1 for r in answers if r.status_code == 201)
    refused = [r for r in answers if r.status_code == 429]
    assert accepted + len(refused) == 75
    assert 60 - 4 <= accepted <= 60, accepted
    assert all(error_code(r) == "rate_limited" for r in refused)
    assert all(0 < int(r.headers["Retry-After"]) <= 3600 for r in refused)
    assert all(cast(c, kiosk).status_code == 429 for c in clients)
    # Another kiosk has its own limit.
    second = new_kiosk(client, "二号机")
    assert (
        cast(clients[1], {"headers": {"Authorization": f"Bearer {second['token']}"}}).status_code
        == 201
    )


def test_leases_never_grant_more_than_the_limit(app, make_app, monkeypatch):
    """The lease arithmetic alone, five processes racing in threads: the hits granted in
    one window never exceed the limit."""
    monkeypatch.setitem(app.config, "RATELIMIT_LEASE_SIZE", 7)
    apps = [app] + [make_app() for _ in range(4)]
    for a in apps[1:]:
        a.config["RATELIMIT_LEASE_SIZE"] = 7
    granted = [0] * len(apps)
    lock = threading.Lock()

    def run(i):
        with apps[i].app_context():
            for _ in range(120):
                if ratelimit.hit("kiosk:race", "140 per hour") is None:
                    with lock:
                        granted[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(apps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert 140 - 4 * 6 <= sum(granted) <= 140, granted


def test_small_limits_are_exact_and_several_limits_all_count(app):
    with app.app_context():
        assert ratelimit.lease_size(10) == 1
        results = [ratelimit.hit("kiosk:small", "3 per hour;100 per day") for _ in range(5)]
        assert results[:3] == [None, None, None]
        assert all(r is not None and r > 0 for r in results[3:])


def test_redis_down_kiosks_keep_voting_within_the_limit(make_app, app, ticks, kiosk):
    """No Redis: the process counts the limit alone, and voting goes on."""
    from tests.support import closed_port

    down = make_app(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")
    down.config["CLOCK"] = app.config["CLOCK"]
    down.config["RATELIMIT_BALLOTS_KIOSK"] = "5 per hour"
    c = down.test_client()
    statuses = [cast(c, kiosk).status_code for _ in range(7)]
    assert statuses == [201] * 5 + [429] * 2


def test_enrolled_html_form_uses_the_caches_and_the_lease(client, app, ticks, kiosk, monkeypatch):
    """An enrolled kiosk browser's ballots: the cookie and the campaign read once, the
    ballot inserted as through the API, the kiosk limit refuses with the HTML page."""
    monkeypatch.setitem(app.config, "RATELIMIT_BALLOTS_KIOSK", "2 per hour")
    browser = app.test_client()
    assert enrol(browser, kiosk["token"]).status_code == 200
    for _ in range(2):  # the API's own count: the form's 2 per hour are still whole
        assert cast(client, kiosk).status_code == 201  # locks the rules, caches the campaign
    statements = Statements(app)
    try:
        for _ in range(2):
            form = get_form(browser)
            statements.seen.clear()
            r = post_form(browser, form, voter(), ["A01", "A02"])
            assert r.status_code == 303, r.text
            reads = [s for s in statements.seen if s.startswith("select")]
            assert not any("from kiosk_sessions" in s or "join kiosk_sessions" in s for s in reads)
            assert not any("from entries" in s for s in reads), reads
        r = post_form(browser, get_form(browser), voter(), ["A01"])
        assert r.status_code == 429 and page_code(r) == "rate_limited"
        assert int(r.headers["Retry-After"]) > 0
    finally:
        statements.close()
    with app.app_context():
        kiosks = db.session.scalars(select(Ballot.kiosk_id)).all()
    assert len(kiosks) == 4 and set(kiosks) == {kiosk["id"]}


# --- The plain kiosk form loaded without marshmallow ---------------------------------


@pytest.mark.parametrize(
    "form",
    [
        {
            "ballot_id": "0b4a3c3e-2f55-4c1b-9a57-2f1f4a1f0c11",
            "voter_id": "13912345678",
            "choices": ["A01", "A02"],
        },
        {"ballot_id": "0B4A3C3E2F554C1B9A572F1F4A1F0C11", "voter_id": "", "choices": []},
        {
            "ballot_id": "{0b4a3c3e-2f55-4c1b-9a57-2f1f4a1f0c11}",
            "voter_id": " 139 1234 5678 ",
            "choices": ["A01", "A01", "乙"],
        },
        {
            "ballot_id": "urn:uuid:0b4a3c3e-2f55-4c1b-9a57-2f1f4a1f0c11",
            "voter_id": "x" * 100,
            "choices": ["A" * 32],
        },
        {"ballot_id": "not-a-uuid", "voter_id": "13912345678", "choices": ["A01"]},
        {"ballot_id": "", "voter_id": "13912345678", "choices": ["A01"]},
        {"voter_id": "13912345678", "choices": ["A01"]},
        {"ballot_id": "0b4a3c3e-2f55-4c1b-9a57-2f1f4a1f0c11", "choices": ["A01"]},
        {
            "ballot_id": "0b4a3c3e-2f55-4c1b-9a57-2f1f4a1f0c11",
            "voter_id": "x" * 101,
            "choices": ["A01"],
        },
        {
            "ballot_id": "0b4a3c3e-2f55-4c1b-9a57-2f1f4a1f0c11",
            "voter_id": "1391234\x005678",
            "choices": ["A01"],
        },
        {
            "ballot_id": "0b4a3c3e-2f55-4c1b-9a57-2f1f4a1f0c11",
            "voter_id": "13912345678",
            "choices": ["A" * 33],
        },
        {
            "ballot_id": "0b4a3c3e-2f55-4c1b-9a57-2f1f4a1f0c11",
            "voter_id": "13912345678",
            "choices": ["A0\x071"],
        },
        {
            "ballot_id": "0b4a3c3e-2f55-4c1b-9a57-2f1f4a1f0c11",
            "voter_id": "13912345678",
            "choices": [f"A{i}" for i in range(501)],
        },
    ],
)
def test_plain_form_loads_as_the_schema_does(app, form):
    """The fast load of a kiosk's form gives what BallotInSchema gives, or steps aside
    (None) so that the schema answers: never a different ballot, never a missed error."""
    from urllib.parse import urlencode

    from marshmallow import ValidationError

    from service.api import ballots as api

    body = urlencode(form, doseq=True)
    with app.test_request_context(
        "/", method="POST", data=body, content_type="application/x-www-form-urlencoded"
    ):
        fast = api._plain_form_ballot()
        try:
            slow = api._BALLOT_IN.load(api._ballot_payload())
        except ValidationError:
            slow = None
    assert fast == slow
