"""SMS one-time codes (``voting.verify: sms``): sending, checking, abuse limits, providers.

Real pieces throughout: the console provider writes the outbox file a developer reads;
the Aliyun and Tencent adapters are the real SDKs talking HTTP to a fake provider on
127.0.0.1 that answers with the providers' JSON; races are threads on the real database.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import func, select

from service.extensions import db
from service.models import Ballot, SmsCounter, SmsVerification
from tests.support import (
    ADMIN,
    OPEN,
    PHONE,
    SMS_VOTING,
    ballot,
    concurrently,
    count_ballots,
    error_code,
    last_code,
    outbox,
    outbox_lines,
    wrong,
)


@pytest.fixture
def sms_campaign(make_campaign, clock):
    make_campaign("c1", voting=SMS_VOTING)
    clock.set(OPEN)
    return clock


@pytest.fixture
def many_codes(app):
    """Scripts that ask for many codes from one address: these tests are not about it."""
    app.config["RATELIMIT_SMS_WEB"] = "10000 per minute"
    app.config["RATELIMIT_BALLOTS_WEB"] = "10000 per minute"
    yield
    app.config["RATELIMIT_SMS_WEB"] = "5 per minute;30 per hour;100 per day"
    app.config["RATELIMIT_BALLOTS_WEB"] = "30 per minute"


def ask(client, number=PHONE, slug="c1", headers=None):
    return client.post(
        f"/api/v1/campaigns/{slug}/verifications", json={"voter_id": number}, headers=headers or {}
    )


def vote(client, verification=None, voter=PHONE, choices=("A01",), slug="c1", **extra):
    body = ballot(choices, voter=voter, **extra)
    if verification is not None:
        body["verification"] = verification
    return client.post(f"/api/v1/campaigns/{slug}/ballots", json=body)


def code_for(client, app, number=PHONE, slug="c1") -> dict:
    r = ask(client, number, slug)
    assert r.status_code == 202, r.json
    return {"id": r.json["verification_id"], "code": last_code(app)}


# --- the campaign document ------------------------------------------------------------


def test_verify_sms_needs_mobile_numbers_and_the_budget_stays_editable(
    client, make_campaign, clock
):
    """verify: sms with resident ids is refused (422); sms_daily_budget can be raised
    after ballots lock the rules, verify itself cannot be changed."""
    doc = {"verify": "sms", "voter_id": "cn_resident_id"}
    from tests.support import campaign_doc

    r = client.post("/api/v1/campaigns", json=campaign_doc("bad", voting=doc), headers=ADMIN)
    assert r.status_code == 422 and "verify" in r.json["error"]["details"]["fields"]["voting"]
    r = client.post(
        "/api/v1/campaigns", json=campaign_doc("bad", voting={"verify_kiosk": True}), headers=ADMIN
    )
    assert r.status_code == 422
    created = make_campaign("c1", voting={**SMS_VOTING, "sms_daily_budget": 50})
    assert created["voting"]["verify"] == "sms" and created["voting"]["verify_kiosk"] is False
    clock.set(OPEN)
    assert vote(client, code_for(client, client.application)).status_code == 201
    patch = client.patch(
        "/api/v1/campaigns/c1", json={"voting": {"sms_daily_budget": 500}}, headers=ADMIN
    )
    assert patch.status_code == 200 and patch.json["voting"]["sms_daily_budget"] == 500
    locked = client.patch(
        "/api/v1/campaigns/c1", json={"voting": {"verify": "none"}}, headers=ADMIN
    )
    assert locked.status_code == 409 and error_code(locked) == "rules_locked"


# --- sending and checking -------------------------------------------------------------


def test_a_code_is_sent_masked_stored_hashed_and_carries_one_ballot(client, app, sms_campaign):
    """202 with id, expiry and resend time; the outbox masks the number; the database
    holds neither the number nor the code; the code carries exactly one ballot."""
    before = len(outbox_lines(app))
    r = ask(client, "+86 139-1234-5678")
    assert r.status_code == 202, r.json
    assert set(r.json) == {"verification_id", "expires_at", "resend_after"}
    assert r.json["expires_at"].startswith("2026-11-22T02:05:00")
    assert r.json["resend_after"].startswith("2026-11-22T02:01:00")
    [line] = outbox_lines(app)[before:]
    assert set(line) == {"to", "text", "sent_at"} and line["to"] == "139****5678"
    code = last_code(app)
    assert code in line["text"] and PHONE not in outbox(app).read_text("utf-8")
    with app.app_context():
        row = db.session.get(SmsVerification, r.json["verification_id"])
        stored = " ".join(str(v) for v in row.__dict__.values())
    assert code not in stored and PHONE not in stored and len(row.code_hash) == 64

    no_code = vote(client)
    assert no_code.status_code == 403 and error_code(no_code) == "verification_required"
    bad = vote(client, {"id": r.json["verification_id"], "code": wrong(code)})
    assert bad.status_code == 422 and error_code(bad) == "invalid_code"
    assert bad.json["error"]["details"] == {"attempts_left": 4}
    good_body = ballot(["A01", "A02"])
    good_body["verification"] = {"id": r.json["verification_id"], "code": code}
    good = client.post("/api/v1/campaigns/c1/ballots", json=good_body)
    assert good.status_code == 201, good.json
    # A retry of the same ballot (a lost answer) replays it; the code carries nothing else.
    again = client.post("/api/v1/campaigns/c1/ballots", json=good_body)
    assert again.status_code == 200 and again.json["receipt"] == good.json["receipt"]
    reuse = vote(client, {"id": r.json["verification_id"], "code": code})
    assert reuse.status_code == 422 and error_code(reuse) == "invalid_code"
    assert count_ballots(app) == 1


def test_form_encoded_ballots_carry_the_code_as_fields(client, app, sms_campaign):
    """The plain-form API takes verification_id and code as form fields."""
    v = code_for(client, app)
    data = {
        "ballot_id": str(uuid.uuid4()),
        "voter_id": PHONE,
        "choices": ["A01"],
        "verification_id": v["id"],
        "code": v["code"],
    }
    r = client.post("/api/v1/campaigns/c1/ballots", data=data)
    assert r.status_code == 201, r.json


def test_a_code_expires_after_five_minutes(client, app, sms_campaign):
    v = code_for(client, app)
    sms_campaign.set(OPEN + timedelta(minutes=5))
    r = vote(client, v)
    assert r.status_code == 422 and error_code(r) == "code_expired"
    assert count_ballots(app) == 0


def test_five_wrong_codes_end_the_verification(client, app, sms_campaign):
    """Each wrong try is counted even though its ballot is refused; the fifth ends it,
    and then even the right code is refused (429 too_many_attempts)."""
    v = code_for(client, app)
    for left in (4, 3, 2, 1):
        r = vote(client, {**v, "code": wrong(v["code"])})
        assert r.status_code == 422 and r.json["error"]["details"]["attempts_left"] == left
    r = vote(client, {**v, "code": wrong(v["code"])})
    assert r.status_code == 429 and error_code(r) == "too_many_attempts"
    r = vote(client, v)
    assert r.status_code == 429 and error_code(r) == "too_many_attempts"
    with app.app_context():
        assert db.session.get(SmsVerification, v["id"]).attempts == 5
    assert count_ballots(app) == 0


def test_a_code_is_bound_to_its_campaign_and_number(client, app, make_campaign, clock):
    """Another number's or another campaign's code is not a code here (and a stranger
    cannot burn the owner's tries with it)."""
    make_campaign("c1", voting=SMS_VOTING)
    make_campaign("c2", voting=SMS_VOTING)
    clock.set(OPEN)
    v = code_for(client, app, PHONE, "c1")
    other = vote(client, v, voter="13800000000")
    assert other.status_code == 422 and error_code(other) == "invalid_code"
    elsewhere = vote(client, v, slug="c2")
    assert elsewhere.status_code == 422 and error_code(elsewhere) == "invalid_code"
    with app.app_context():
        assert db.session.get(SmsVerification, v["id"]).attempts == 0
    assert vote(client, v).status_code == 201


def test_no_code_needed_where_the_campaign_does_not_verify(client, app, make_campaign, clock):
    make_campaign("c1")
    clock.set(OPEN)
    assert vote(client).status_code == 201
    r = ask(client)
    assert r.status_code == 409 and error_code(r) == "verification_not_used"


# --- abuse limits ---------------------------------------------------------------------


def test_resend_waits_60_seconds_and_a_number_gets_five_codes_a_day(
    client, app, sms_campaign, many_codes
):
    assert ask(client).status_code == 202
    sms_campaign.set(OPEN + timedelta(seconds=30))
    soon = ask(client)
    assert soon.status_code == 429 and error_code(soon) == "resend_too_soon"
    assert soon.headers["Retry-After"] == "30"
    for n in range(1, 5):
        sms_campaign.set(OPEN + timedelta(seconds=61 * n))
        assert ask(client).status_code == 202
    sms_campaign.set(OPEN + timedelta(minutes=10))
    sixth = ask(client)
    assert sixth.status_code == 429 and error_code(sixth) == "too_many_codes"
    assert int(sixth.headers["Retry-After"]) > 0
    # Formatted differently, it is the same number.
    assert error_code(ask(client, "+86 139 1234 5678")) == "too_many_codes"
    # The next Beijing-time day the number may ask again (02:00 UTC + 1 day).
    sms_campaign.set(OPEN + timedelta(days=1))
    assert ask(client).status_code == 202


def test_a_client_address_is_rate_limited(client, app, sms_campaign):
    """The per-address limit (RATELIMIT_SMS_WEB, default 5 a minute) with Retry-After."""
    codes = [ask(client, f"1390000000{i}").status_code for i in range(6)]
    assert codes == [202] * 5 + [429]
    r = ask(client, "13900000009")
    assert error_code(r) == "rate_limited" and int(r.headers["Retry-After"]) > 0
    other = client.post(
        "/api/v1/campaigns/c1/verifications",
        json={"voter_id": "13900000008"},
        environ_base={"REMOTE_ADDR": "10.0.0.8"},
    )
    assert other.status_code == 202


def test_the_daily_budget_stops_sending_and_alerts_the_office(
    client, app, make_campaign, clock, many_codes, caplog
):
    """After sms_daily_budget codes in a campaign-local day: 503 sms_budget_exhausted,
    an ERROR log line and a metric; the next day sending resumes."""
    make_campaign("c1", voting={**SMS_VOTING, "sms_daily_budget": 3})
    clock.set(OPEN)
    assert [ask(client, f"1380000000{i}").status_code for i in range(3)] == [202] * 3
    with caplog.at_level(logging.ERROR):
        r = ask(client, "13800000009")
    assert r.status_code == 503 and error_code(r) == "sms_budget_exhausted"
    assert "Retry-After" in r.headers
    assert any("SMS budget exhausted" in m and "c1" in m for m in caplog.messages)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'votes_sms_budget_exhausted_total\{campaign="c1"\} [1-9]', metrics)
    assert re.search(r'votes_sms_sends_total\{outcome="sms_budget_exhausted"\} [1-9]', metrics)
    assert len(outbox_lines(app)) >= 3
    clock.set(OPEN + timedelta(days=1))
    assert ask(client, "13800000009").status_code == 202


@pytest.mark.slow  # hundreds of refused attempts
def test_100_invented_numbers_cast_no_ballot_and_a_resident_votes_once(
    client, app, sms_campaign, many_codes
):
    """A script invents 100 numbers and tries every way in without the phone: no code,
    a made-up verification, and a real code request with a guessed code. 0 ballots.
    A resident who reads the code votes, once."""
    rng = random.Random(13)
    numbers = {f"1{rng.choice('3456789')}{rng.randint(0, 10**9 - 1):09d}" for _ in range(100)}
    outcomes: dict[str, int] = {}
    for number in sorted(numbers):
        tries = [
            vote(client, voter=number),
            vote(client, {"id": str(uuid.uuid4()), "code": "123456"}, voter=number),
        ]
        issued = ask(client, number)
        assert issued.status_code == 202
        # The script cannot read the phone; its guess is made to miss (a real guess would
        # hit once in a million).
        tries.append(
            vote(
                client,
                {"id": issued.json["verification_id"], "code": wrong(last_code(app))},
                voter=number,
            )
        )
        for r in tries:
            outcomes[error_code(r)] = outcomes.get(error_code(r), 0) + 1
    assert count_ballots(app) == 0
    assert outcomes == {"verification_required": 100, "invalid_code": 200}
    v = code_for(client, app)
    assert vote(client, v).status_code == 201
    assert error_code(vote(client, v)) == "invalid_code"
    app.config["CLOCK"].set(OPEN + timedelta(seconds=61))
    second = vote(client, code_for(client, app))
    assert second.status_code == 409 and error_code(second) == "already_voted"
    assert count_ballots(app) == 1


def test_ballots_racing_with_one_code_record_one(app, client, make_campaign, clock, many_codes):
    """Eight threads post different ballots with one code at the same moment: the code's
    conditional update lets exactly one through (the others: invalid_code, before the
    one-ballot-per-voter constraint is even reached)."""
    make_campaign("c1", voting={**SMS_VOTING, "limit": "daily"})
    clock.set(OPEN)
    v = code_for(client, app)

    def cast(i):
        r = app.test_client().post(
            "/api/v1/campaigns/c1/ballots",
            json={**ballot([f"A0{i % 3 + 1}"]), "verification": v},
        )
        return r.status_code, r.get_json()

    results = concurrently(8, cast)
    statuses = sorted(s for s, _ in results)
    assert statuses == [201] + [422] * 7, results
    assert {b["error"]["code"] for s, b in results if s == 422} == {"invalid_code"}
    assert count_ballots(app) == 1
    with app.app_context():
        assert db.session.get(SmsVerification, v["id"]).used_at is not None


def test_a_refused_ballot_leaves_the_code_unused(client, app, sms_campaign):
    """Too many choices with the right code: refused, and the code still works."""
    v = code_for(client, app)
    r = vote(client, v, choices=("A01", "A02", "A03", "A01"))
    assert r.status_code == 422 and error_code(r) == "duplicate_choice"
    assert vote(client, v).status_code == 201


# --- kiosks ---------------------------------------------------------------------------


@pytest.fixture
def kiosk_headers(client):
    token = client.post("/api/v1/kiosks", json={"name": "大厅"}, headers=ADMIN).json["token"]
    return {"Authorization": f"Bearer {token}"}


def test_kiosks_are_attended_unless_verify_kiosk(client, app, make_campaign, clock, kiosk_headers):
    """A kiosk ballot needs no code, unless verify_kiosk: then it does, an offline batch
    is refused (no code can be checked offline), and the kiosk may ask for the code."""
    make_campaign("c1", voting=SMS_VOTING)
    make_campaign("c2", voting={**SMS_VOTING, "verify_kiosk": True})
    clock.set(OPEN)
    plain = client.post("/api/v1/campaigns/c1/ballots", json=ballot(), headers=kiosk_headers)
    assert plain.status_code == 201
    assert error_code(ask(client, headers=kiosk_headers)) == "channel_not_allowed"
    r = client.post("/api/v1/campaigns/c2/ballots", json=ballot(), headers=kiosk_headers)
    assert r.status_code == 403 and error_code(r) == "verification_required"
    batch = client.post(
        "/api/v1/campaigns/c2/ballots/batch",
        json={"ballots": [ballot(voter="13800000001")]},
        headers=kiosk_headers,
    )
    assert batch.status_code == 200
    assert batch.json["results"][0]["error"]["code"] == "verification_required"
    issued = ask(client, slug="c2", headers=kiosk_headers)
    assert issued.status_code == 202
    body = {
        **ballot(),
        "verification": {"id": issued.json["verification_id"], "code": last_code(app)},
    }
    r = client.post("/api/v1/campaigns/c2/ballots", json=body, headers=kiosk_headers)
    assert r.status_code == 201 and r.json["channel"] == "kiosk"


def test_code_requests_outside_the_window_are_refused(client, app, make_campaign, clock):
    make_campaign("c1", voting=SMS_VOTING)
    clock.set(OPEN - timedelta(days=3))
    r = ask(client)
    assert r.status_code == 403 and error_code(r) == "voting_not_open"
    r = ask(client, "12345")
    assert r.status_code == 403  # the window is checked first: no number is looked at
    clock.set(OPEN)
    r = ask(client, "12345")
    assert r.status_code == 422 and error_code(r) == "invalid_voter_id"
    assert "12345" not in r.json["error"]["message"]


# --- providers ------------------------------------------------------------------------


class FakeProvider:
    """A local HTTP server that answers as Aliyun's or Tencent's SMS API does."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.mode = "ok"
        self.requests: list[dict] = []
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                fake.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                if fake.mode == "stall":
                    fake.release.wait(15)
                    return
                status, payload = fake.answer()
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def answer(self) -> tuple[int, dict]:
        rid = str(uuid.uuid4()).upper()
        if self.kind == "aliyun":
            if self.mode == "ok":
                return 200, {
                    "Code": "OK",
                    "Message": "OK",
                    "BizId": "900619746936498440^0",
                    "RequestId": rid,
                }
            if self.mode == "error":
                return 200, {
                    "Code": "isv.BUSINESS_LIMIT_CONTROL",
                    "Message": "触发分钟级流控Permits:1",
                    "RequestId": rid,
                }
            return 500, {
                "Code": "ServiceUnavailable",
                "Message": "The request has failed",
                "RequestId": rid,
            }
        status = {
            "SerialNo": "5000:1045710669157053657849499619",
            "PhoneNumber": "+86" + PHONE,
            "Fee": 1,
            "SessionContext": "",
            "IsoCode": "CN",
        }
        if self.mode == "ok":
            return 200, {
                "Response": {
                    "SendStatusSet": [{**status, "Code": "Ok", "Message": "send success"}],
                    "RequestId": rid,
                }
            }
        if self.mode == "error":
            return 200, {
                "Response": {
                    "SendStatusSet": [
                        {
                            **status,
                            "Fee": 0,
                            "Code": "LimitExceeded.PhoneNumberDailyLimit",
                            "Message": "单个手机号日下发短信条数超过设定的上限",
                        }
                    ],
                    "RequestId": rid,
                }
            }
        return 200, {
            "Response": {
                "Error": {"Code": "AuthFailure.SecretIdNotFound", "Message": "SecretId不存在"},
                "RequestId": rid,
            }
        }

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


ALIYUN_ENV = {
    "SMS_PROVIDER": "aliyun",
    "SMS_ALIYUN_ACCESS_KEY_ID": "LTAI5tTestKeyId",
    "SMS_ALIYUN_ACCESS_KEY_SECRET": "test-secret",
    "SMS_ALIYUN_SIGN_NAME": "彭浦镇",
    "SMS_ALIYUN_TEMPLATE_CODE": "SMS_154950909",
}
TENCENT_ENV = {
    "SMS_PROVIDER": "tencent",
    "SMS_TENCENT_SECRET_ID": "AKIDtest",
    "SMS_TENCENT_SECRET_KEY": "test-key",
    "SMS_TENCENT_SDK_APP_ID": "1400006666",
    "SMS_TENCENT_SIGN_NAME": "彭浦镇",
    "SMS_TENCENT_TEMPLATE_ID": "449739",
}


@contextmanager
def provider_app(make_app, kind: str, **extra):
    """An app started with SMS_PROVIDER=aliyun/tencent pointed at a fake provider."""
    fake = FakeProvider(kind)
    env = dict(ALIYUN_ENV if kind == "aliyun" else TENCENT_ENV)
    env[f"SMS_{kind.upper()}_ENDPOINT"] = fake.url
    env.update(extra)
    try:
        application = make_app(**env)
        application.config["CLOCK"] = lambda: OPEN
        yield application, fake
    finally:
        fake.close()


def sent_fields(kind: str, request: dict) -> dict:
    """What the SDK sent, after checking the action and that the request is signed."""
    headers = request["headers"]
    if kind == "aliyun":
        assert headers["x-acs-action"] == "SendSms" and headers["x-acs-version"] == "2017-05-25"
        assert "Credential=LTAI5tTestKeyId" in headers["authorization"]
        query = parse_qs(urlparse(request["path"]).query)
        query.update(parse_qs(request["body"]))
        return {k: v[0] for k, v in query.items()}
    assert headers["x-tc-action"] == "SendSms" and headers["x-tc-version"] == "2021-01-11"
    assert "Credential=AKIDtest/" in headers["authorization"]
    return json.loads(request["body"])


@pytest.mark.parametrize("kind", ["aliyun", "tencent"])
def test_real_adapters_send_through_the_provider_api(make_app, make_campaign, clock, kind):
    """The SDK sends the number, sign name, template and code; 202; the code works."""
    make_campaign("c1", voting=SMS_VOTING)
    with provider_app(make_app, kind) as (application, fake):
        client = application.test_client()
        r = ask(client)
        assert r.status_code == 202, r.json
        [request] = fake.requests
        fields = sent_fields(kind, request)
        if kind == "aliyun":
            assert fields["PhoneNumbers"] == PHONE
            assert fields["SignName"] == "彭浦镇" and fields["TemplateCode"] == "SMS_154950909"
            code = json.loads(fields["TemplateParam"])["code"]
        else:
            assert fields["PhoneNumberSet"] == ["+86" + PHONE]
            assert fields["SmsSdkAppId"] == "1400006666" and fields["TemplateId"] == "449739"
            assert fields["SignName"] == "彭浦镇"
            code, minutes = fields["TemplateParamSet"]
            assert minutes == "5"
        assert re.fullmatch(r"\d{6}", code)
        v = {"id": r.json["verification_id"], "code": code}
        assert vote(client, v).status_code == 201


@pytest.mark.parametrize(
    "kind,mode",
    [("aliyun", "error"), ("aliyun", "http500"), ("tencent", "error"), ("tencent", "autherror")],
)
def test_provider_errors_are_503_with_nothing_half_done(
    make_app, make_campaign, clock, app, kind, mode, caplog
):
    """A provider refusal: 503 sms_unavailable, no verification left, the resend timer,
    the number's daily count and the campaign budget uncharged: asking again at once
    works when the provider is back."""
    make_campaign("c1", voting={**SMS_VOTING, "sms_daily_budget": 1})
    with provider_app(make_app, kind) as (application, fake):
        client = application.test_client()
        fake.mode = mode
        with caplog.at_level(logging.DEBUG):
            r = ask(client)
        assert r.status_code == 503 and error_code(r) == "sms_unavailable", r.json
        assert r.headers["Retry-After"] == "30"
        assert len(fake.requests) == 1
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(SmsVerification)) == 0
            assert db.session.scalar(select(func.coalesce(func.sum(SmsCounter.used), 0))) == 0
        # Not even the SDKs' or urllib3's debug lines carry the number.
        assert caplog.records and not any(PHONE in r.getMessage() for r in caplog.records)
        fake.mode = "ok"
        with caplog.at_level(logging.DEBUG):
            again = ask(client)
        assert not any(PHONE in r.getMessage() for r in caplog.records)
        assert again.status_code == 202, again.json  # not resend_too_soon, budget intact


@pytest.mark.parametrize("kind", ["aliyun", "tencent"])
def test_a_stalled_provider_costs_a_web_worker_a_bounded_time(
    make_app, make_campaign, clock, app, kind
):
    """A provider that accepts the connection and never answers: 503 within the timeout
    (SMS_TIMEOUT_SECONDS, here 1 s), and nothing half-done."""
    make_campaign("c1", voting=SMS_VOTING)
    with provider_app(make_app, kind, SMS_TIMEOUT_SECONDS="1") as (application, fake):
        fake.mode = "stall"
        started = time.monotonic()
        r = ask(application.test_client())
        elapsed = time.monotonic() - started
        assert r.status_code == 503 and error_code(r) == "sms_unavailable"
        assert elapsed < 4, elapsed
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(SmsVerification)) == 0


def test_an_unreachable_provider_is_503(make_app, make_campaign, clock, app):
    from tests.support import closed_port

    make_campaign("c1", voting=SMS_VOTING)
    application = make_app(**ALIYUN_ENV, SMS_ALIYUN_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    application.config["CLOCK"] = lambda: OPEN
    r = ask(application.test_client())
    assert r.status_code == 503 and error_code(r) == "sms_unavailable"


@pytest.mark.parametrize("env", [ALIYUN_ENV, TENCENT_ENV])
def test_incomplete_provider_settings_refuse_to_start(monkeypatch, env):
    from service.config import Config, ConfigError

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    missing = [n for n in env if n.endswith(("_SECRET", "_KEY", "TEMPLATE_ID", "TEMPLATE_CODE"))]
    for name in missing:
        monkeypatch.delenv(name)
    with pytest.raises(ConfigError) as refused:
        Config()
    assert all(name in str(refused.value) for name in missing)
    monkeypatch.setenv("SMS_PROVIDER", "carrier-pigeon")
    with pytest.raises(ConfigError, match="SMS_PROVIDER must be one of"):
        Config()


@pytest.mark.slow  # the demo data loaded
def test_demo_web_ballots_carry_codes(app, client):
    """The demo's 楼组之最 campaign verifies web ballots; the loader's simulated residents
    ask for codes through the real request_code and every web ballot used one."""
    from service.models import Campaign

    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    groups = client.get("/api/v1/campaigns/pengpu-2022-groups").json
    assert groups["voting"]["verify"] == "sms"
    with app.app_context():
        campaign_id = db.session.scalar(
            select(Campaign.id).where(Campaign.slug == "pengpu-2022-groups")
        )
        web = db.session.scalar(
            select(func.count())
            .select_from(Ballot)
            .where(Ballot.campaign_id == campaign_id, Ballot.channel == "web")
        )
        used = db.session.scalar(
            select(func.count())
            .select_from(SmsVerification)
            .where(SmsVerification.campaign_id == campaign_id, SmsVerification.used_at.is_not(None))
        )
    assert web > 100 and used == web
