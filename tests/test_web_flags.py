"""Web abuse flags: velocity per client address and per /24 or /64, first-time surges;
listed with the kiosk anomalies, excluded and restored like them, addresses never stored."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text

from service.extensions import db
from service.models import Ballot
from tests.support import ADMIN, drain, error_code, get_run, start_run

OPEN = datetime.fromisoformat("2026-11-22T10:00:00+08:00")
SCRIPT_IP = "203.0.113.7"


@pytest.fixture
def voting(make_campaign, clock, app):
    make_campaign(ranking={"public_weight": 1, "expert_weight": 0})
    clock.set(OPEN)
    # The per-address rate limit is separate: raised so that the flags, not the limiter,
    # are what a 60-a-minute script meets here.
    app.config["RATELIMIT_BALLOTS_WEB"] = "100000 per minute"
    yield clock
    app.config["RATELIMIT_BALLOTS_WEB"] = "30 per minute"


def phone(n: int) -> str:
    """An invented, valid-looking mobile number."""
    return f"137{n:08d}"


def cast(client, n: int, address: str, slug: str = "c1", choices=("A01",)):
    r = client.post(
        f"/api/v1/campaigns/{slug}/ballots",
        json={"ballot_id": str(uuid.uuid4()), "voter_id": phone(n), "choices": list(choices)},
        environ_base={"REMOTE_ADDR": address},
    )
    assert r.status_code == 201, r.json
    return r.json


def script(client, clock, addresses, start: int = 0, every: float = 1.0) -> list[dict]:
    """One ballot per address in turn, ``every`` seconds apart (60 a minute by default)."""
    out = []
    for k, address in enumerate(addresses):
        out.append(cast(client, start + k, address))
        clock.set(clock.at + timedelta(seconds=every))
    return out


def groups(client, flag: str, slug: str = "c1") -> list[dict]:
    r = client.get(f"/api/v1/campaigns/{slug}/anomalies", headers=ADMIN)
    assert r.status_code == 200, r.json
    return [g for g in r.json["anomalies"] if g["flag"] == flag]


def test_sixty_a_minute_from_one_address_is_web_burst(client, voting, app, caplog):
    """A script casting 60 web ballots a minute from one address with invented numbers is
    flagged web_burst (and its /24 subnet_burst), listed, and still counted; the address
    itself is nowhere in the database or the logs."""
    with caplog.at_level(logging.DEBUG):
        script(client, voting, [SCRIPT_IP] * 60)
        (group,) = groups(client, "web_burst")
        (net,) = groups(client, "subnet_burst")
    # Ballots 11..60 each found more than WEB_BURST_MAX (10) in the minute before them.
    assert group["count"] == 50 and len(group["ballots"]) == 50
    assert len(group["client"]) == 12 and int(group["client"], 16) >= 0
    assert group["kiosk_id"] is None and "subnet" not in group
    assert net["count"] == 30 and net["addresses"] == 1
    assert group["first"] < group["last"]
    assert not any(b["excluded"] for b in group["ballots"])
    with app.app_context():
        assert len(db.session.scalars(select(Ballot.id)).all()) == 60  # counted
        dump = [
            str(value)
            for table in ("ballots", "ballot_choices", "audit_events", "exclusions")
            for row in db.session.execute(text(f"SELECT * FROM {table}")).all()
            for value in row
        ]
    assert dump and not any(SCRIPT_IP in value for value in dump)
    assert SCRIPT_IP not in caplog.text
    assert groups(client, "burst") == []  # the kiosk groups are unchanged


def test_spread_of_addresses_in_one_24_is_subnet_burst(client, voting):
    """40 addresses of one /24, one ballot each, within 40 seconds: no single address is
    fast, the network is: subnet_burst for ballots 31..40, no web_burst."""
    script(client, voting, [f"198.51.100.{i}" for i in range(1, 41)])
    assert groups(client, "web_burst") == []
    (net,) = groups(client, "subnet_burst")
    assert net["count"] == 10 and net["addresses"] == 10 and "client" not in net


def test_ipv6_addresses_group_by_64(client, voting, app):
    """Addresses of one IPv6 /64 count together; another /64 is another network; an
    IPv4-mapped IPv6 address is its IPv4 client."""
    script(client, voting, [f"2001:db8:1:2::{i:x}" for i in range(1, 36)])
    script(client, voting, [f"2001:db8:1:3::{i:x}" for i in range(1, 6)], start=100)
    (net,) = groups(client, "subnet_burst")
    assert net["count"] == 5 and net["addresses"] == 5
    from service.domain.web_flags import address_hashes

    with app.app_context():
        a, b = address_hashes("2001:db8:1:2::1"), address_hashes("2001:db8:1:2:ffff::9")
        assert a[1] == b[1] and a[0] != b[0]
        assert address_hashes("2001:db8:1:3::1")[1] != a[1]
        assert address_hashes("::ffff:198.51.100.7") == address_hashes("198.51.100.7")
        assert address_hashes("198.51.100.7")[1] == address_hashes("198.51.100.200")[1]
        assert address_hashes(None) == (None, None)
        stored = db.session.scalars(select(Ballot.subnet_hash).distinct()).all()
    assert len(stored) == 2


def test_a_normal_rate_from_many_addresses_is_not_flagged(client, voting):
    """100 voters over half an hour, from 100 addresses in a few networks: no flag."""
    script(client, voting, [f"10.{i % 4}.0.{i}" for i in range(100)], every=20)
    r = client.get("/api/v1/campaigns/c1/anomalies", headers=ADMIN)
    assert r.json["anomalies"] == []


def test_excluding_a_web_group_removes_it_from_the_ranking_and_restoring_puts_it_back(
    client,
    voting,
    app,
    workers_app,  # noqa: F811
):
    """The web_burst group is excluded by its label and time range (audited); the next
    ranking run counts the others only; revoking the exclusions counts them again."""
    script(client, voting, [f"192.0.2.{i}" for i in range(1, 6)], every=30, start=500)
    script(client, voting, [SCRIPT_IP] * 20, start=0)
    (group,) = groups(client, "web_burst")
    body = {"client": group["client"], "from": group["first"], "reason": "脚本刷票 / script"}
    r = client.post("/api/v1/campaigns/c1/exclusions", headers=ADMIN, json=body)
    assert r.status_code == 422 and error_code(r) == "validation_error"  # no "to"
    body["to"] = (datetime.fromisoformat(group["last"]) + timedelta(seconds=1)).isoformat()
    body["from"] = (voting.at - timedelta(hours=1)).isoformat()
    r = client.post("/api/v1/campaigns/c1/exclusions", headers=ADMIN, json=body)
    assert r.status_code == 201 and len(r.json) == 20  # the whole script, flagged or not
    assert all(b["excluded"] for b in groups(client, "web_burst")[0]["ballots"])
    bad = {**body, "client": SCRIPT_IP}  # a label is hex, never an address
    r = client.post("/api/v1/campaigns/c1/exclusions", headers=ADMIN, json=bad)
    assert r.status_code == 422 and error_code(r) == "validation_error"

    run = start_run(client)
    drain(app)
    result = get_run(client, run)["result"]
    assert result["ballots_counted"] == 5 and result["ballots_excluded"] == 20

    for exclusion in client.get("/api/v1/campaigns/c1/exclusions", headers=ADMIN).json:
        url = f"/api/v1/campaigns/c1/exclusions/{exclusion['id']}"
        assert client.delete(url, headers=ADMIN).status_code == 204
    run = start_run(client)
    drain(app)
    result = get_run(client, run)["result"]
    assert result["ballots_counted"] == 25 and result["ballots_excluded"] == 0
    with app.app_context():
        actions = db.session.execute(
            text("SELECT action FROM audit_events WHERE action LIKE 'ballots.exclude%'")
        ).scalars()
        assert sorted(set(actions)) == ["ballots.exclude", "ballots.exclude.revoke"]


def test_first_time_surge_per_hour(client, make_campaign, clock, app):
    """A daily campaign: two quiet hours of 5 new voters, then an hour of 30 new voters is
    a first_time_surge (threshold max(floor 10, 4 x median 5) = 20); the next day the same
    40 voters return within one hour and are not first-time voters, so no surge."""
    make_campaign(voting={"limit": "daily"})
    app.config.update(FIRST_TIME_FLOOR=10, RATELIMIT_BALLOTS_WEB="100000 per minute")
    try:
        clock.set(OPEN)
        n = 0
        for hour, voters in enumerate([5, 5, 30]):
            clock.set(OPEN + timedelta(hours=hour))
            for _ in range(voters):
                cast(client, n, f"10.9.{n}.1")  # one address each: no velocity flag
                clock.set(clock.at + timedelta(seconds=60))
                n += 1
        clock.set(OPEN + timedelta(days=1))
        for k in range(n):
            cast(client, k, f"10.9.{k}.1")
            clock.set(clock.at + timedelta(seconds=30))
        (surge,) = groups(client, "first_time_surge")
    finally:
        app.config.update(FIRST_TIME_FLOOR=120, RATELIMIT_BALLOTS_WEB="30 per minute")
    assert surge["count"] == 30 and surge["threshold"] == 20
    assert surge["hour"] == "2026-11-22T12:00:00+08:00"
    assert len(surge["ballots"]) == 30 and surge["kiosk_id"] is None
