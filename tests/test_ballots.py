"""Public ballots: exactly-once counting through the JSON API."""

import logging
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from service.extensions import db
from service.models import Ballot, BallotChoice
from tests.support import (
    ADMIN,
    OPEN,
    PHONE,
    ballot,
    bid,
    closed_port,
    concurrently,
    count_ballots,
    error_code,
    kiosk_credentials,
)


@pytest.fixture
def voting(make_campaign, clock):
    make_campaign()
    clock.set(OPEN)
    return clock


@pytest.fixture
def kiosk(client):
    return kiosk_credentials(client, "居委会大厅")


def post(client, body, slug="c1", headers=None):
    return client.post(f"/api/v1/campaigns/{slug}/ballots", json=body, headers=headers or {})


def test_web_ballot_is_accepted_with_receipt(client, voting, app):
    """A resident votes on the web and gets a 201 with a receipt and the choices."""
    r = post(client, ballot(["A02", "A01"]))
    assert r.status_code == 201, r.json
    assert r.json["channel"] == "web" and r.json["choices"] == ["A01", "A02"]
    assert len(r.json["receipt"]) == 19 and r.json["accepted_at"].endswith("+00:00")
    assert count_ballots(app) == 1


def test_form_encoded_ballot_with_repeated_choices(client, voting, kiosk, app):
    """A kiosk posts a plain HTML form (choices repeated) and it counts like JSON."""
    r = client.post(
        "/api/v1/campaigns/c1/ballots",
        headers=kiosk["headers"],
        data={"ballot_id": bid(), "voter_id": "+86 139-1234-5678", "choices": ["A01", "A03"]},
    )
    assert r.status_code == 201, r.json
    assert r.json["channel"] == "kiosk" and r.json["choices"] == ["A01", "A03"]
    with app.app_context():
        assert db.session.scalar(select(Ballot.kiosk_id)) == kiosk["id"]


def test_same_voter_twice_is_409_already_voted(client, voting, app):
    """One ballot per voter: the second (even formatted differently) is already_voted."""
    assert post(client, ballot()).status_code == 201
    r = post(client, ballot(["A02"], voter="+86 139 1234 5678"))
    assert r.status_code == 409 and error_code(r) == "already_voted"
    assert count_ballots(app) == 1


def test_retry_with_same_ballot_id_replays_the_answer(client, voting, app):
    """A retry after a lost answer gets 200 with the same receipt and counts once."""
    body = ballot(["A01", "A02"])
    first = post(client, body)
    again = post(client, {**body, "choices": ["A02", "A01"]})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json == first.json
    assert count_ballots(app) == 1


def test_same_ballot_id_with_other_content_is_refused(client, voting, app):
    """Reusing a ballot_id for other choices is 422 ballot_id_reused."""
    body = ballot(["A01"])
    post(client, body)
    r = post(client, {**body, "choices": ["A02"]})
    assert r.status_code == 422 and error_code(r) == "ballot_id_reused"
    r = post(client, {**body, "voter_id": "13700000000"})
    assert r.status_code == 422 and error_code(r) == "ballot_id_reused"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (ballot([]), 422, "too_few_choices"),
        (ballot(["A01", "A02", "A03", "A01"]), 422, "duplicate_choice"),
        (ballot(["A01", "A01"]), 422, "duplicate_choice"),
        (ballot(["A99"]), 422, "unknown_entry"),
        (ballot(voter="12345"), 422, "invalid_voter_id"),
        (ballot(voter=""), 422, "invalid_voter_id"),
        ({"voter_id": PHONE, "choices": ["A01"]}, 422, "validation_error"),
        (
            {"ballot_id": "not-a-uuid", "voter_id": PHONE, "choices": ["A01"]},
            422,
            "validation_error",
        ),
        (
            {"ballot_id": str(uuid.uuid4()), "voter_id": PHONE, "choices": "A01"},
            422,
            "validation_error",
        ),
    ],
)
def test_bad_ballots_get_their_codes_and_write_nothing(client, voting, app, body, status, code):
    """Each rule has its own stable code; a refused ballot leaves nothing behind."""
    r = post(client, body)
    assert r.status_code == status and error_code(r) == code, r.json
    assert PHONE not in r.get_data(as_text=True)
    assert count_ballots(app) == 0


def test_too_many_choices(client, make_campaign, clock, app):
    """More choices than max_choices is 422 too_many_choices."""
    make_campaign(voting={"max_choices": 2})
    clock.set(OPEN)
    r = post(client, ballot(["A01", "A02", "A03"]))
    assert r.status_code == 422 and error_code(r) == "too_many_choices"
    assert r.json["error"]["details"] == {"max": 2}


def test_entries_of_another_campaign_are_unknown(client, make_campaign, clock):
    """A code that exists only in another campaign is unknown_entry here."""
    make_campaign("c1")
    make_campaign("c2", entries=[{"code": "Z01", "title": "别处"}])
    clock.set(OPEN)
    r = post(client, ballot(["Z01"]), slug="c1")
    assert r.status_code == 422 and r.json["error"]["details"]["codes"] == ["Z01"]


def test_voting_window(client, make_campaign, clock):
    """Before the window: voting_not_open; after: voting_closed (both 403)."""
    make_campaign()
    clock.set(datetime.fromisoformat("2026-11-21T08:59:59+08:00"))
    r = post(client, ballot())
    assert r.status_code == 403 and error_code(r) == "voting_not_open"
    clock.set(datetime.fromisoformat("2026-11-28T18:00:00+08:00"))
    r = post(client, ballot())
    assert r.status_code == 403 and error_code(r) == "voting_closed"
    clock.set(datetime.fromisoformat("2026-11-21T09:00:00+08:00"))
    assert post(client, ballot()).status_code == 201


def test_offline_kiosk_ballot_within_grace(client, make_campaign, clock, kiosk):
    """A kiosk ballot cast before closing counts if it arrives within the grace period."""
    make_campaign()
    cast = "2026-11-28T17:30:00+08:00"
    clock.set(datetime.fromisoformat("2026-11-29T12:00:00+08:00"))  # 18 h after closing
    r = post(client, ballot(cast_at=cast), headers=kiosk["headers"])
    assert r.status_code == 201, r.json
    # A web ballot at the same moment uses server time: closed.
    r = post(client, ballot(voter="13700000000", cast_at=cast))
    assert r.status_code == 403 and error_code(r) == "voting_closed"
    # Past the 24 h grace the kiosk ballot is refused too.
    clock.set(datetime.fromisoformat("2026-11-29T18:00:01+08:00"))
    r = post(client, ballot(voter="13600000000", cast_at=cast), headers=kiosk["headers"])
    assert r.status_code == 403 and error_code(r) == "voting_closed"
    # cast_at outside the window is refused whatever the arrival time.
    clock.set(datetime.fromisoformat("2026-11-28T20:00:00+08:00"))
    r = post(
        client,
        ballot(voter="13500000000", cast_at="2026-11-28T18:30:00+08:00"),
        headers=kiosk["headers"],
    )
    assert r.status_code == 403 and error_code(r) == "voting_closed"


def test_kiosk_cast_at_in_the_future_is_refused(client, voting, kiosk):
    """A kiosk cannot date a ballot in the future (beyond a few minutes of clock skew)."""
    r = post(client, ballot(cast_at="2026-11-22T12:00:00+08:00"), headers=kiosk["headers"])
    assert r.status_code == 422 and "cast_at" in r.json["error"]["details"]["fields"]


def test_daily_limit_uses_the_campaign_local_day(client, make_campaign, clock, app):
    """With limit daily a voter votes once per Asia/Shanghai calendar day."""
    make_campaign(voting={"limit": "daily"})
    clock.set(datetime.fromisoformat("2026-11-22T23:59:00+08:00"))
    assert post(client, ballot()).status_code == 201
    r = post(client, ballot(["A02"]))
    assert r.status_code == 409 and error_code(r) == "already_voted"
    # Two minutes later it is a new day in Shanghai (still the same UTC day).
    clock.set(datetime.fromisoformat("2026-11-23T00:01:00+08:00"))
    assert post(client, ballot(["A02"])).status_code == 201
    assert count_ballots(app) == 2


def test_channel_rules(client, make_campaign, clock, kiosk):
    """One channel rule, one code: a kiosk-only campaign refuses anonymous web voters with
    401 channel_not_allowed (a kiosk token is what they lack); web-only refuses kiosks
    with 403 channel_not_allowed."""
    make_campaign("k-only", voting={"channels": ["kiosk"]})
    make_campaign("w-only", voting={"channels": ["web"]})
    clock.set(OPEN)
    r = post(client, ballot(), slug="k-only")
    assert r.status_code == 401 and error_code(r) == "channel_not_allowed"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    # The rule is checked before the body is read: a malformed ballot gets the same answer.
    r = post(client, {"choices": "A01"}, slug="k-only")
    assert r.status_code == 401 and error_code(r) == "channel_not_allowed"
    assert post(client, ballot(), slug="k-only", headers=kiosk["headers"]).status_code == 201
    r = post(client, ballot(), slug="w-only", headers=kiosk["headers"])
    assert r.status_code == 403 and error_code(r) == "channel_not_allowed"


def test_revoked_or_wrong_tokens(client, voting, kiosk):
    """A revoked kiosk token is 401; an admin token cannot vote (403)."""
    client.delete(f"/api/v1/kiosks/{kiosk['id']}", headers=ADMIN)
    r = post(client, ballot(), headers=kiosk["headers"])
    assert r.status_code == 401 and error_code(r) == "unauthorized"
    r = post(client, ballot(), headers=ADMIN)
    assert r.status_code == 403 and error_code(r) == "forbidden"


def test_unknown_campaign_and_wrong_content_type(client, voting):
    """An unknown campaign is 404; a text body is 415; broken JSON is 400."""
    assert error_code(post(client, ballot(), slug="nope")) == "not_found"
    r = client.post("/api/v1/campaigns/c1/ballots", data="x", content_type="text/plain")
    assert r.status_code == 415
    r = client.post("/api/v1/campaigns/c1/ballots", data="{", content_type="application/json")
    assert r.status_code == 400 and error_code(r) == "bad_request"


def test_first_ballot_locks_the_rules(client, voting):
    """After the first accepted ballot the voting rules cannot change."""
    post(client, ballot())
    r = client.patch("/api/v1/campaigns/c1", json={"voting": {"max_choices": 1}}, headers=ADMIN)
    assert r.status_code == 409 and error_code(r) == "rules_locked"


def test_batch_partial_success(client, voting, kiosk, app):
    """An offline kiosk uploads a batch: each ballot gets its own result, in order."""
    good = ballot(["A01"], voter="13700000001")
    body = {
        "ballots": [
            good,
            ballot(["A99"], voter="13700000002"),
            ballot(["A02"], voter="13700000001"),
            good,
            {"nonsense": True},
            ballot(["A03"], voter="13700000003"),
        ]
    }
    r = client.post("/api/v1/campaigns/c1/ballots/batch", json=body, headers=kiosk["headers"])
    assert r.status_code == 200
    statuses = [(x["status"], x.get("error", {}).get("code")) for x in r.json["results"]]
    assert statuses == [
        ("accepted", None),
        ("rejected", "unknown_entry"),
        ("rejected", "already_voted"),
        ("replayed", None),
        ("rejected", "validation_error"),
        ("accepted", None),
    ]
    assert r.json["results"][0]["receipt"] == r.json["results"][3]["receipt"]
    assert count_ballots(app) == 2


def test_batch_replayed_three_times_counts_once(client, voting, kiosk, app):
    """A kiosk re-sending its whole offline batch three times counts each ballot once."""
    body = {"ballots": [ballot(["A01"], voter=f"1370000{i:04d}") for i in range(40)]}
    seen = []
    for _ in range(3):
        r = client.post("/api/v1/campaigns/c1/ballots/batch", json=body, headers=kiosk["headers"])
        seen.append({x["status"] for x in r.json["results"]})
    assert seen == [{"accepted"}, {"replayed"}, {"replayed"}]
    assert count_ballots(app) == 40


def test_batch_limits_and_auth(client, voting, kiosk, app):
    """More than 500 ballots is 422 batch_too_large with nothing recorded; web cannot batch."""
    body = {"ballots": [ballot(voter=f"137{i:08d}") for i in range(501)]}
    r = client.post("/api/v1/campaigns/c1/ballots/batch", json=body, headers=kiosk["headers"])
    assert r.status_code == 422 and error_code(r) == "batch_too_large"
    assert count_ballots(app) == 0
    r = client.post("/api/v1/campaigns/c1/ballots/batch", json={"ballots": []})
    assert r.status_code == 401


def test_receipt_lookup(client, voting):
    """A voter looks up the receipt (any case, with or without dashes): recorded."""
    receipt = post(client, ballot()).json["receipt"]
    r = client.get(f"/api/v1/receipts/{receipt.replace('-', '').lower()}")
    assert r.status_code == 200 and r.json == {"campaign": "c1", "status": "recorded"}
    assert error_code(client.get("/api/v1/receipts/AAAA-BBBB-CCCC-DDDD")) == "not_found"


def test_receipts_reveal_neither_voter_nor_choices(client, voting):
    """Two ballots with the same choices get unrelated receipts (a server nonce is mixed in)."""
    a = post(client, ballot(["A01"], voter="13700000001")).json["receipt"]
    b = post(client, ballot(["A01"], voter="13700000002")).json["receipt"]
    assert a != b


def test_rate_limit_429_with_retry_after(client, voting, app):
    """A web client posting too fast gets 429 rate_limited with Retry-After."""
    app.config["RATELIMIT_BALLOTS_WEB"] = "3 per minute"
    try:
        codes = [post(client, ballot(voter=f"1370000000{i}")).status_code for i in range(5)]
        assert codes[:3] == [201, 201, 201] and codes[3:] == [429, 429]
        r = post(client, ballot(voter="13700000009"))
        assert error_code(r) == "rate_limited" and int(r.headers["Retry-After"]) > 0
    finally:
        app.config["RATELIMIT_BALLOTS_WEB"] = "30 per minute"


def test_burst_is_flagged_listed_excluded_and_restored(client, voting, kiosk, app):
    """A kiosk casting faster than people do is flagged, not dropped; exclusion is explicit."""
    app.config["BURST_MAX_BALLOTS"] = 3
    try:
        receipts = [
            post(client, ballot(voter=f"1370000000{i}"), headers=kiosk["headers"]).json["receipt"]
            for i in range(5)
        ]
    finally:
        app.config["BURST_MAX_BALLOTS"] = 20
    r = client.get("/api/v1/campaigns/c1/anomalies", headers=ADMIN)
    (group,) = r.json["anomalies"]
    assert group["kiosk_id"] == kiosk["id"] and group["count"] == 2 and group["flag"] == "burst"
    assert count_ballots(app) == 5  # flagged ballots stay counted
    r = client.post(
        "/api/v1/campaigns/c1/exclusions",
        headers=ADMIN,
        json={
            "kiosk_id": kiosk["id"],
            "from": "2026-11-22T09:00:00+08:00",
            "to": "2026-11-22T11:00:00+08:00",
            "reason": "终端异常 / kiosk burst",
        },
    )
    assert r.status_code == 201 and len(r.json) == 5
    look = client.get(f"/api/v1/receipts/{receipts[0]}").json
    assert look["status"] == "excluded" and "kiosk burst" in look["reason"]
    exclusion_id = r.json[0]["id"]
    assert (
        client.delete(f"/api/v1/campaigns/c1/exclusions/{exclusion_id}", headers=ADMIN).status_code
        == 204
    )
    assert client.get(f"/api/v1/receipts/{receipts[0]}").json["status"] == "recorded"
    assert client.get("/api/v1/campaigns/c1/anomalies").status_code == 401


def test_redis_down_ballots_still_accepted(make_app, clock, make_campaign, caplog, app):
    """With Redis unreachable a ballot is still recorded (the database is the truth)."""
    make_campaign()
    application = make_app(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")
    application.config["CLOCK"] = lambda: OPEN
    with caplog.at_level(logging.WARNING):
        r = application.test_client().post("/api/v1/campaigns/c1/ballots", json=ballot())
    assert r.status_code == 201, r.json
    assert count_ballots(app) == 1
    assert "rate limit" in caplog.text.lower() or "redis" in caplog.text.lower()


@pytest.fixture
def generous_limits(app):
    """32 posts from one address in a second: these tests are about dedup, not limits."""
    app.config["RATELIMIT_BALLOTS_WEB"] = "1000 per minute"
    yield
    app.config["RATELIMIT_BALLOTS_WEB"] = "30 per minute"


@pytest.mark.slow  # 32 threads
def test_32_concurrent_posts_of_one_voter_give_one_ballot(app, voting, generous_limits):
    """32 simultaneous ballots of the same voter: exactly one 201, the rest 409."""

    def cast(i):
        return (
            app.test_client()
            .post("/api/v1/campaigns/c1/ballots", json=ballot([f"A0{i % 3 + 1}"]))
            .status_code
        )

    codes = concurrently(32, cast)
    assert sorted(codes) == [201] + [409] * 31
    assert count_ballots(app) == 1


@pytest.mark.slow  # 32 threads
def test_32_concurrent_posts_of_one_ballot_id_give_one_receipt(app, voting, generous_limits):
    """32 simultaneous retries of one ballot: one receipt, counted once."""
    body = ballot(["A01", "A02"])

    def cast(_):
        r = app.test_client().post("/api/v1/campaigns/c1/ballots", json=body)
        return r.status_code, r.json.get("receipt")

    results = concurrently(32, cast)
    assert sorted(code for code, _ in results) == [200] * 31 + [201]
    assert len({receipt for _, receipt in results}) == 1
    assert count_ballots(app) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BallotChoice)) == 2


def test_raw_phone_number_is_nowhere(client, voting, kiosk, app, caplog):
    """After voting, the raw phone number is in no table and no log line."""
    with caplog.at_level(logging.DEBUG):
        post(client, ballot())
        post(client, ballot(["A02"]))  # already_voted
        post(client, ballot(voter="139-1234-567"))  # invalid
        client.post(
            "/api/v1/campaigns/c1/ballots/batch",
            headers=kiosk["headers"],
            json={"ballots": [ballot(voter=PHONE), ballot(voter="13912345679")]},
        )
    dump = []
    with app.app_context():
        for table in db.metadata.sorted_tables:
            dump.extend(map(str, db.session.execute(text(f"SELECT * FROM {table.name}")).all()))
    blob = "\n".join(dump) + caplog.text
    assert count_ballots(app) == 2
    for needle in (PHONE, "13912345679", "139-1234-567", "1234567"):
        assert needle not in blob


def test_concurrent_uploads_of_one_batch_count_each_ballot_once(
    app, voting, kiosk, generous_limits
):
    """Eight kiosks' worth of simultaneous uploads of one batch: each ballot once."""
    body = {"ballots": [ballot(["A01"], voter=f"1370000{i:04d}") for i in range(50)]}

    def upload(_):
        r = app.test_client().post(
            "/api/v1/campaigns/c1/ballots/batch", json=body, headers=kiosk["headers"]
        )
        return [x["status"] for x in r.json["results"]]

    runs = concurrently(8, upload)
    for position in range(50):
        statuses = sorted(run[position] for run in runs)
        assert statuses == ["accepted"] + ["replayed"] * 7
    assert count_ballots(app) == 50


def test_batch_flags_bursts_like_ballots_one_by_one(client, voting, kiosk, app):
    """In a batch, ballots beyond the kiosk's burst threshold are flagged, in order."""
    app.config["BURST_MAX_BALLOTS"] = 3
    try:
        post(client, ballot(voter="13600000000"), headers=kiosk["headers"])
        body = {"ballots": [ballot(voter=f"1370000000{i}") for i in range(4)]}
        client.post("/api/v1/campaigns/c1/ballots/batch", json=body, headers=kiosk["headers"])
    finally:
        app.config["BURST_MAX_BALLOTS"] = 20
    group = client.get("/api/v1/campaigns/c1/anomalies", headers=ADMIN).json["anomalies"][0]
    flagged = {b["ballot_id"] for b in group["ballots"]}
    assert flagged == {b["ballot_id"] for b in body["ballots"][2:]}


# --- back-dating, late uploads and daily volume ----------------------------------------


def new_kiosk(client, name="大厅") -> dict:
    k = client.post("/api/v1/kiosks", json={"name": name}, headers=ADMIN).json
    return {"id": k["id"], "headers": {"Authorization": f"Bearer {k['token']}"}}


def anomaly_groups(client, flag, slug="c1") -> list[dict]:
    r = client.get(f"/api/v1/campaigns/{slug}/anomalies", headers=ADMIN)
    assert r.status_code == 200
    return [g for g in r.json["anomalies"] if g["flag"] == flag]


def test_cast_at_before_the_kiosk_was_registered_is_refused(client, voting, kiosk, app):
    """A kiosk registered at 10:00 cannot have cast a ballot at 09:30."""
    early = "2026-11-22T09:30:00+08:00"
    r = post(client, ballot(cast_at=early), headers=kiosk["headers"])
    assert r.status_code == 422 and error_code(r) == "cast_at_before_kiosk"
    body = {"ballots": [ballot(voter="13700000001", cast_at=early)]}
    r = client.post("/api/v1/campaigns/c1/ballots/batch", json=body, headers=kiosk["headers"])
    assert r.json["results"][0]["error"]["code"] == "cast_at_before_kiosk"
    assert count_ballots(app) == 0
    r = post(client, ballot(cast_at="2026-11-22T10:00:00+08:00"), headers=kiosk["headers"])
    assert r.status_code == 201


def test_back_dated_ballots_on_a_daily_campaign_are_flagged_late_upload(
    client, make_campaign, clock, app
):
    """One number voting ten times, dated on each of the last ten days: accepted (the
    days differ) but every ballot is flagged late_upload and listed, and still counted."""
    clock.set(datetime.fromisoformat("2026-11-05T09:00:00+08:00"))
    make_campaign(
        voting={
            "limit": "daily",
            "opens_at": "2026-11-10T09:00:00+08:00",
            "closes_at": "2026-11-30T18:00:00+08:00",
        }
    )
    kiosk = new_kiosk(client)
    clock.set(datetime.fromisoformat("2026-11-25T12:00:00+08:00"))
    days = [f"2026-11-{d}T10:00:00+08:00" for d in range(15, 25)]
    for cast in days[:5]:
        r = post(client, ballot(cast_at=cast), headers=kiosk["headers"])
        assert r.status_code == 201, r.json
    batch = {"ballots": [ballot(cast_at=cast) for cast in days[5:]]}
    r = client.post("/api/v1/campaigns/c1/ballots/batch", json=batch, headers=kiosk["headers"])
    assert [x["status"] for x in r.json["results"]] == ["accepted"] * 5
    # Cast nine minutes ago: an ordinary short delay, not flagged.
    r = post(
        client,
        ballot(voter="13700000000", cast_at="2026-11-25T11:51:00+08:00"),
        headers=kiosk["headers"],
    )
    assert r.status_code == 201
    (group,) = anomaly_groups(client, "late_upload")
    assert group["kiosk_id"] == kiosk["id"] and group["count"] == 10
    assert count_ballots(app) == 11  # flagged ballots stay counted


def test_late_and_burst_flags_are_both_listed(client, voting, app):
    """A ballot can be late and part of a burst: it appears in both groups."""
    app.config["BURST_MAX_BALLOTS"] = 1
    try:
        clock = voting
        clock.set(datetime.fromisoformat("2026-11-22T08:00:00+08:00"))
        kiosk = new_kiosk(client)
        clock.set(OPEN)
        late = "2026-11-22T09:30:00+08:00"
        for i in range(2):
            post(client, ballot(voter=f"1370000000{i}", cast_at=late), headers=kiosk["headers"])
    finally:
        app.config["BURST_MAX_BALLOTS"] = 20
    assert anomaly_groups(client, "late_upload")[0]["count"] == 2
    assert anomaly_groups(client, "burst")[0]["count"] == 1


def test_a_steady_twenty_a_minute_kiosk_is_a_volume_outlier(client, make_campaign, clock, app):
    """20 ballots a minute never trips the burst check, but a kiosk-day ten times its
    peers' is listed as volume_outlier (and stays counted)."""
    make_campaign()
    clock.set(datetime.fromisoformat("2026-11-21T08:00:00+08:00"))
    peers = [new_kiosk(client, f"peer {n}") for n in range(2)]
    busy = new_kiosk(client, "busy")
    at = datetime.fromisoformat("2026-11-21T10:00:00+08:00")
    voter = iter(range(10**6))

    def batch(kiosk, n):
        body = {"ballots": [ballot(voter=f"139{next(voter):08d}") for _ in range(n)]}
        r = client.post("/api/v1/campaigns/c1/ballots/batch", json=body, headers=kiosk["headers"])
        assert all(x["status"] == "accepted" for x in r.json["results"]), r.json

    for peer in peers:  # 30 a day each, in two sittings
        for minute in range(2):
            clock.set(at + timedelta(minutes=minute))
            batch(peer, 15)
    for minute in range(15):  # 20 a minute for a quarter of an hour: 300
        clock.set(at + timedelta(hours=1, minutes=minute))
        batch(busy, 20)
    assert anomaly_groups(client, "burst") == []
    (group,) = anomaly_groups(client, "volume_outlier")
    assert (group["kiosk_id"], group["day"], group["count"]) == (busy["id"], "2026-11-21", 300)
    assert group["threshold"] == 200 and len(group["ballots"]) == 300
    assert count_ballots(app) == 360
    # The next day the same volume is the kiosk's own normal: not flagged again.
    for minute in range(15):
        clock.set(at + timedelta(days=1, hours=1, minutes=minute))
        batch(busy, 20)
    assert [g["day"] for g in anomaly_groups(client, "volume_outlier")] == ["2026-11-21"]


def _behind_proxy(make_app, **env):
    """The app as gunicorn runs it behind nginx: every request's TCP peer is the proxy."""
    # The limiter's windows run on real time (fixed windows): an hour, so that four posts
    # do not straddle a window's end, as they could a minute's.
    application = make_app(RATELIMIT_BALLOTS_WEB="3 per hour", **env)
    application.config["CLOCK"] = lambda: OPEN
    client = application.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.0.0.2"
    return client


def _web_ballot(client, n: int, forwarded_for: str) -> int:
    return client.post(
        "/api/v1/campaigns/c1/ballots",
        json=ballot(voter=f"1370000{n:04d}"),
        headers={"X-Forwarded-For": forwarded_for},
    ).status_code


def test_proxy_hops_1_gives_each_forwarded_client_its_own_rate_limit(make_app, voting):
    """PROXY_HOPS=1: the client address is nginx's X-Forwarded-For entry, so two
    residents behind the proxy have two buckets; what a client prepends is ignored."""
    client = _behind_proxy(make_app, PROXY_HOPS="1")
    assert [_web_ballot(client, n, "203.0.113.5") for n in range(4)] == [201, 201, 201, 429]
    assert _web_ballot(client, 10, "203.0.113.6") == 201
    # nginx appends the real peer: a forged first entry does not open a new bucket.
    assert _web_ballot(client, 11, "198.51.100.77, 203.0.113.5") == 429
    assert _web_ballot(client, 12, "203.0.113.5, 203.0.113.7") == 201


def test_proxy_hops_0_ignores_x_forwarded_for(make_app, voting):
    """The default: X-Forwarded-For is not trusted, the TCP peer is the client (so a
    client cannot choose its bucket; behind a proxy without PROXY_HOPS all share one)."""
    client = _behind_proxy(make_app)
    assert [_web_ballot(client, n, f"203.0.113.{n}") for n in range(4)] == [201, 201, 201, 429]
