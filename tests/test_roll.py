"""The electoral roll (选民名册): uploads, eligibility on every channel, area scope,
removals, turnout, and the demo's roll."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select

from service.extensions import db
from service.models import AuditEvent, Ballot, RollVoter
from tests.support import ADMIN, error_code

OPEN = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # voting open (Shanghai 10:00)
ROLL = {"eligibility": "roll"}
ON_ROLL = "13912345678"


def upload(client, body, slug="c1", content_type="text/csv"):
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(body, bytes):
        return client.post(
            f"/api/v1/campaigns/{slug}/roll", data=body, content_type=content_type, headers=ADMIN
        )
    return client.post(f"/api/v1/campaigns/{slug}/roll", json=body, headers=ADMIN)


def vote(client, voter_id, choices=("A01",), slug="c1", headers=None, ip="127.0.0.1"):
    return client.post(
        f"/api/v1/campaigns/{slug}/ballots",
        json={"ballot_id": str(uuid.uuid4()), "voter_id": voter_id, "choices": list(choices)},
        headers=headers or {},
        environ_base={"REMOTE_ADDR": ip},
    )


def roll_rows(app) -> list[tuple]:
    with app.app_context():
        return [
            tuple(r)
            for r in db.session.execute(
                select(RollVoter.voter_key, RollVoter.area, RollVoter.grid)
            ).all()
        ]


def counted(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Ballot))


def invented_phone(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randint(0, 10**9 - 1):09d}"


# --- uploading ---------------------------------------------------------------------------


def test_csv_upload_stores_only_keyed_hashes_and_counts_per_area(client, app, make_campaign):
    make_campaign(voting=ROLL)
    csv = (
        "\ufeffvoter_id,area,grid\n"
        "+86 139-1234-5678,海鹰居民区,海鹰二网格\n"
        "13812345678,海鹰居民区,\n"
        "13712345678,龙馨嘉园居民区,\n"
    )
    r = upload(client, csv)
    assert r.status_code == 200, r.json
    assert r.json == {"added": 3, "unchanged": 0, "total": 3}
    rows = roll_rows(app)
    assert len(rows) == 3
    stored = repr(rows)
    assert "1391234" not in stored and "1381234" not in stored  # hashes, never numbers
    assert all(len(key) == 64 for key, _, _ in rows)
    assert ("海鹰居民区", "海鹰二网格") in {(a, g) for _, a, g in rows}

    summary = client.get("/api/v1/campaigns/c1/roll", headers=ADMIN)
    assert summary.status_code == 200
    assert summary.json == {
        "eligibility": "roll",
        "area_scope": False,
        "total": 3,
        "locked": False,
        "areas": [
            {"area": "海鹰居民区", "voters": 2, "grids": [{"grid": "海鹰二网格", "voters": 1}]},
            {"area": "龙馨嘉园居民区", "voters": 1, "grids": []},
        ],
    }
    assert "139" not in summary.text


def test_resending_the_same_file_adds_nothing(client, make_campaign):
    """Uploads are idempotent per identifier: a voter already on the roll with the same
    area counts as unchanged, so a file can be sent again or in parts."""
    make_campaign(voting=ROLL)
    csv = "voter_id,area\n13912345678,海鹰居民区\n13812345678,海鹰居民区\n"
    assert upload(client, csv).json == {"added": 2, "unchanged": 0, "total": 2}
    again = upload(client, csv + "13712345678,海鹰居民区\n")
    assert again.json == {"added": 1, "unchanged": 2, "total": 3}


def test_gbk_file_with_chinese_area_names(client, make_campaign):
    """Spreadsheet programs on Chinese Windows save GBK: detected, areas read right."""
    make_campaign(voting=ROLL)
    text = "voter_id,area\r\n13912345678,江场西路1366弄居民区\r\n13812345678,龙馨嘉园居民区\r\n"
    raw = text.encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    r = upload(client, raw)
    assert r.status_code == 200, r.json
    areas = [
        a["area"] for a in client.get("/api/v1/campaigns/c1/roll", headers=ADMIN).json["areas"]
    ]
    assert areas == ["江场西路1366弄居民区", "龙馨嘉园居民区"]


def test_gb18030_file_is_read_too(client, make_campaign):
    make_campaign(voting=ROLL)
    r = upload(client, "voter_id,area\n13912345678,䶮居民区\n".encode("gb18030"))
    assert r.status_code == 200, r.json
    assert client.get("/api/v1/campaigns/c1/roll", headers=ADMIN).json["areas"][0]["area"] == (
        "䶮居民区"
    )


def test_errors_name_their_lines_and_nothing_is_stored(client, app, make_campaign):
    """All or nothing: a bad identifier and a duplicate (after normalisation) are reported
    with their line numbers, both lines of the duplicate named."""
    make_campaign(voting=ROLL)
    csv = (
        "voter_id,area\n"
        "13912345678,海鹰居民区\n"  # line 2
        "1391234,海鹰居民区\n"  # line 3: not a mobile number
        "+86 139 1234 5678,海鹰居民区\n"  # line 4: the same voter as line 2
        "13812345678\n"  # line 5: a column short
    )
    r = upload(client, csv)
    assert r.status_code == 422
    assert error_code(r) == "invalid_csv"
    lines = {item["line"]: item["errors"] for item in r.json["error"]["details"]["lines"]}
    assert set(lines) == {5}  # the row shape is checked first
    r = upload(client, csv.replace("13812345678\n", "13812345678,\n"))
    lines = {item["line"]: item["errors"] for item in r.json["error"]["details"]["lines"]}
    assert set(lines) == {2, 3, 4}
    assert "line 4" in lines[2]["voter_id"][0] and "line 2" in lines[4]["voter_id"][0]
    assert "1391234" not in r.text
    assert roll_rows(app) == []


@pytest.mark.parametrize(
    "header", ["phone,area", "voter_id,area,notes", "voter_id,voter_id", "code,title"]
)
def test_a_wrong_header_is_refused(client, make_campaign, header):
    make_campaign(voting=ROLL)
    r = upload(client, f"{header}\n13912345678,x\n")
    assert r.status_code == 422 and error_code(r) == "invalid_csv"
    assert r.json["error"]["details"]["lines"][0]["line"] == 1


def test_undecodable_and_empty_files(client, make_campaign):
    make_campaign(voting=ROLL)
    assert error_code(upload(client, b"voter_id\n\xff\xfe\xfd\xfc\n")) == "invalid_csv"
    assert error_code(upload(client, b"")) == "invalid_csv"
    assert error_code(upload(client, b"voter_id,area\n")) == "invalid_csv"
    nul = upload(client, b"voter_id,area\n13912345678,a\x00b\n")
    assert error_code(nul) == "invalid_csv"
    assert nul.json["error"]["details"]["lines"][0]["line"] == 2
    r = upload(client, b"<roll/>", content_type="application/xml")
    assert r.status_code == 415


def test_json_upload_and_its_errors(client, app, make_campaign):
    make_campaign(voting=ROLL)
    r = upload(client, {"voters": [{"voter_id": ON_ROLL, "area": "海鹰居民区"}]})
    assert r.status_code == 200 and r.json == {"added": 1, "unchanged": 0, "total": 1}
    bad = upload(
        client,
        {
            "voters": [
                {"voter_id": "13812345678"},
                {"voter_id": "12"},
                {"voter_id": "138 1234 5678"},
            ]
        },
    )
    assert bad.status_code == 422 and error_code(bad) == "validation_error"
    items = bad.json["error"]["details"]["fields"]["voters"]
    assert set(items) == {"0", "1", "2"}
    assert error_code(upload(client, {"voters": []})) == "validation_error"
    assert error_code(upload(client, {"voters": [{"area": "x"}]})) == "validation_error"
    assert len(roll_rows(app)) == 1


def test_a_voter_already_on_the_roll_in_another_area_is_an_error(client, make_campaign):
    make_campaign(voting=ROLL)
    upload(client, "voter_id,area\n13912345678,海鹰居民区\n")
    r = upload(client, "voter_id,area\n13812345678,海鹰居民区\n13912345678,龙潭居民区\n")
    assert r.status_code == 422
    assert [i["line"] for i in r.json["error"]["details"]["lines"]] == [3]
    assert client.get("/api/v1/campaigns/c1/roll", headers=ADMIN).json["total"] == 1


def test_the_roll_hashes_with_the_campaign_kind(client, make_campaign, clock):
    """A resident-ID campaign: the roll takes ID numbers (check digit verified); the kind
    cannot change while the roll has voters."""
    make_campaign(voting={**ROLL, "voter_id": "cn_resident_id"})
    assert upload(client, "voter_id\n11010519491231002X\n").status_code == 200
    assert error_code(upload(client, "voter_id\n110105194912310021\n")) == "invalid_csv"
    r = client.patch(
        "/api/v1/campaigns/c1", json={"voting": {"voter_id": "cn_mobile"}}, headers=ADMIN
    )
    assert r.status_code == 409 and error_code(r) == "roll_not_empty"
    clock.set(OPEN)
    assert vote(client, "11010519491231002x").status_code == 201


def test_area_scope_needs_a_roll(client, make_campaign):
    from tests.support import campaign_doc

    r = client.post(
        "/api/v1/campaigns", json=campaign_doc(voting={"area_scope": True}), headers=ADMIN
    )
    assert r.status_code == 422
    assert "area_scope" in r.json["error"]["details"]["fields"]["voting"]
    doc = make_campaign()
    assert doc["voting"]["eligibility"] == "open" and doc["voting"]["area_scope"] is False


# --- voting by roll ------------------------------------------------------------------------


@pytest.mark.slow  # hundreds of refused attempts
def test_invented_numbers_cast_no_ballot_and_a_resident_votes_once(
    client, app, make_campaign, clock
):
    """The issue's script: 100 invented, valid phone numbers (from rotating addresses, so
    the per-address rate limit does not stop it) cast 0 ballots on a roll campaign; a
    resident on the roll votes once."""
    make_campaign(voting=ROLL)
    assert upload(client, f"voter_id,area\n{ON_ROLL},海鹰居民区\n").status_code == 200
    clock.set(OPEN)
    rng = random.Random(13)
    answers = [vote(client, invented_phone(rng), ip=f"10.0.{i}.1") for i in range(100)]
    assert {r.status_code for r in answers} == {403}
    assert {error_code(r) for r in answers} == {"not_on_roll"}
    assert counted(app) == 0
    first = vote(client, "+86 139 1234 5678")
    assert first.status_code == 201, first.json
    again = vote(client, ON_ROLL)
    assert again.status_code == 409 and error_code(again) == "already_voted"
    assert counted(app) == 1


def test_not_on_roll_in_a_kiosk_batch_and_the_form(client, app, make_campaign, clock):
    make_campaign(voting=ROLL)
    upload(client, f"voter_id\n{ON_ROLL}\n")
    kiosk = client.post("/api/v1/kiosks", json={"name": "k"}, headers=ADMIN).json
    clock.set(OPEN)
    batch = client.post(
        "/api/v1/campaigns/c1/ballots/batch",
        json={
            "ballots": [
                {"ballot_id": str(uuid.uuid4()), "voter_id": "13800000000", "choices": ["A01"]},
                {"ballot_id": str(uuid.uuid4()), "voter_id": ON_ROLL, "choices": ["A02"]},
            ]
        },
        headers={"Authorization": f"Bearer {kiosk['token']}"},
    )
    assert batch.status_code == 200, batch.json
    results = batch.json["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted"]
    assert results[0]["error"]["code"] == "not_on_roll"
    assert counted(app) == 1


def test_an_empty_roll_refuses_everyone(client, app, make_campaign, clock):
    make_campaign(voting=ROLL)
    clock.set(OPEN)
    r = vote(client, ON_ROLL)
    assert r.status_code == 403 and error_code(r) == "not_on_roll"
    assert counted(app) == 0


def test_an_open_campaign_never_reads_the_roll(client, app, make_campaign, clock):
    """The default (eligibility open) keeps working and costs no roll query."""
    make_campaign()
    clock.set(OPEN)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert vote(client, ON_ROLL).status_code == 201
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements and not [s for s in statements if "roll_voters" in s]


def test_a_roll_ballot_costs_one_roll_lookup(client, app, make_campaign, clock):
    make_campaign(voting={**ROLL, "area_scope": True})
    upload(client, f"voter_id,area\n{ON_ROLL},海鹰\n")
    clock.set(OPEN)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert vote(client, ON_ROLL, ["A03"]).status_code == 201
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len([s for s in statements if "roll_voters" in s]) == 1


# --- area scope ----------------------------------------------------------------------------

SCOPED_ENTRIES = [
    {"code": "H1", "title": "海鹰楼道灯", "area": "海鹰居民区", "grid": "海鹰二网格"},
    {"code": "H2", "title": "海鹰助餐点", "area": "海鹰居民区", "grid": "海鹰一网格"},
    {"code": "H3", "title": "海鹰议事厅", "area": "海鹰居民区"},
    {"code": "L1", "title": "龙潭花园", "area": "龙潭居民区"},
    {"code": "T1", "title": "全镇项目"},
]


def test_area_scope_limits_choices_to_the_voters_area_or_grid(client, app, make_campaign, clock):
    """Grid on both sides: grids must match; otherwise areas must; an entry without an
    area is open to every voter on the roll."""
    make_campaign(voting={**ROLL, "area_scope": True, "max_choices": 5}, entries=SCOPED_ENTRIES)
    upload(
        client,
        "voter_id,area,grid\n"
        "13912345678,海鹰居民区,海鹰二网格\n"
        "13812345678,海鹰居民区,\n"
        "13712345678,龙潭居民区,\n",
    )
    clock.set(OPEN)
    r = vote(client, "13912345678", ["H1", "H2", "L1", "T1"])
    assert r.status_code == 422 and error_code(r) == "outside_area"
    assert r.json["error"]["details"]["codes"] == ["H2", "L1"]
    assert vote(client, "13912345678", ["H1", "H3", "T1"]).status_code == 201
    # No grid on the roll: the area decides.
    assert vote(client, "13812345678", ["H1", "H2", "H3"]).status_code == 201
    r = vote(client, "13712345678", ["H1"])
    assert error_code(r) == "outside_area" and r.json["error"]["details"]["codes"] == ["H1"]
    assert vote(client, "13712345678", ["L1", "T1"]).status_code == 201
    # Off the roll: not_on_roll, whatever the choices.
    assert error_code(vote(client, "13612345678", ["T1"])) == "not_on_roll"
    assert counted(app) == 3


# --- the HTML form -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lang,not_on_roll,outside",
    [
        ("zh", "不在本次评选的选民名册中", "只能选择您所在居民区或网格的项目"),
        ("en", "not on the electoral roll", "only projects of your own residential area"),
    ],
)
def test_the_form_explains_roll_refusals(
    client, app, make_campaign, clock, lang, not_on_roll, outside
):
    from tests.support import Page, get_form, post_form

    make_campaign(voting={**ROLL, "area_scope": True, "max_choices": 5}, entries=SCOPED_ENTRIES)
    upload(client, f"voter_id,area\n{ON_ROLL},海鹰居民区\n")
    clock.set(OPEN)
    query = "?lang=en" if lang == "en" else ""
    r = post_form(client, get_form(client, query=query), "13800000000", ["H1"], query=query)
    assert r.status_code == 403
    error = Page(r.text).error("not_on_roll")
    assert error["data-field"] == "voter_id" and not_on_roll in error["text"]
    assert Page(r.text).input("voter_id")["value"] == "13800000000"  # own device: kept
    r = post_form(client, get_form(client, query=query), ON_ROLL, ["H1", "L1"], query=query)
    assert r.status_code == 422
    error = Page(r.text).error("outside_area")
    assert error["data-field"] == "choices" and outside in error["text"] and "L1" in error["text"]
    assert post_form(client, get_form(client), ON_ROLL, ["H1"]).status_code == 303
    assert counted(app) == 1


# --- removals and audit --------------------------------------------------------------------


def test_removals_only_before_voting_opens(client, app, make_campaign, clock):
    make_campaign(voting=ROLL)
    upload(client, "voter_id\n13912345678\n13812345678\n13712345678\n")
    r = client.post(
        "/api/v1/campaigns/c1/roll/remove",
        json={"voter_ids": ["+86 139 1234 5678", "13600000000"]},
        headers=ADMIN,
    )
    assert r.status_code == 200 and r.json == {"removed": 1, "not_on_roll": 1, "total": 2}
    bad = client.post("/api/v1/campaigns/c1/roll/remove", json={"voter_ids": ["12"]}, headers=ADMIN)
    assert bad.status_code == 422
    clock.set(OPEN)
    # During voting the roll only grows (audited) ...
    added = upload(client, "voter_id\n13512345678\n")
    assert added.status_code == 200 and added.json["total"] == 3
    # ... and nobody can be taken off it.
    r = client.post(
        "/api/v1/campaigns/c1/roll/remove", json={"voter_ids": ["13812345678"]}, headers=ADMIN
    )
    assert r.status_code == 409 and error_code(r) == "roll_locked"
    r = client.delete("/api/v1/campaigns/c1/roll", headers=ADMIN)
    assert r.status_code == 409 and error_code(r) == "roll_locked"
    assert client.get("/api/v1/campaigns/c1/roll", headers=ADMIN).json["locked"] is True
    with app.app_context():
        events = db.session.execute(
            select(AuditEvent.action, AuditEvent.details).order_by(AuditEvent.id)
        ).all()
    roll_events = [(a, d) for a, d in events if a.startswith("roll.")]
    assert [a for a, _ in roll_events] == ["roll.add", "roll.remove", "roll.add"]
    assert roll_events[0][1]["during_voting"] is False
    assert roll_events[2][1]["during_voting"] is True and roll_events[2][1]["added"] == 1
    assert "1351234" not in repr(events)


def test_clearing_the_whole_roll_before_voting(client, make_campaign):
    make_campaign(voting=ROLL)
    upload(client, "voter_id\n13912345678\n13812345678\n")
    r = client.delete("/api/v1/campaigns/c1/roll", headers=ADMIN)
    assert r.status_code == 200 and r.json == {"removed": 2, "not_on_roll": 0, "total": 0}
    assert client.get("/api/v1/campaigns/c1/roll", headers=ADMIN).json["total"] == 0


# --- turnout -------------------------------------------------------------------------------


def test_turnout_in_progress_run_and_publication(client, app, make_campaign, clock):
    make_campaign(voting=ROLL)
    upload(
        client,
        "voter_id,area\n"
        "13912345678,海鹰居民区\n13812345678,海鹰居民区\n"
        "13712345678,龙潭居民区\n13612345678,龙潭居民区\n13512345678,龙潭居民区\n",
    )
    clock.set(OPEN)
    for voter in ("13912345678", "13712345678", "13612345678"):
        assert vote(client, voter).status_code == 201
    progress = client.get("/api/v1/campaigns/c1/review/progress", headers=ADMIN).json
    expected = {
        "roll_size": 5,
        "voters": 3,
        "ballots": 3,
        "rate": 0.6,
        "per_area": [
            {"area": "海鹰居民区", "roll_size": 2, "voters": 1, "ballots": 1, "rate": 0.5},
            {"area": "龙潭居民区", "roll_size": 3, "voters": 2, "ballots": 2, "rate": 0.6667},
        ],
    }
    assert progress["turnout"] == expected

    from service.domain import publications, rankings
    from service.domain.campaigns import get_campaign

    with app.app_context():
        campaign = get_campaign("c1")
        run = rankings.create_run(campaign, "test")
        db.session.commit()
        result = rankings.compute(run)
        db.session.commit()
        assert result["turnout"] == expected
        publication = publications.publish_run(campaign.id, run.id, actor="test")
        db.session.commit()
        assert publication.document["turnout"] == expected
    page = client.get("/results/c1")
    assert page.status_code == 200 and "60.0%" in page.text and "龙潭居民区" in page.text


def test_no_turnout_without_a_roll(client, app, make_campaign, clock):
    make_campaign()
    clock.set(OPEN)
    vote(client, ON_ROLL)
    assert client.get("/api/v1/campaigns/c1/review/progress", headers=ADMIN).json["turnout"] is None
    from service.domain import rankings
    from service.domain.campaigns import get_campaign

    with app.app_context():
        run = rankings.create_run(get_campaign("c1"), "test")
        db.session.commit()
        assert "turnout" not in rankings.compute(run)
        db.session.rollback()


# --- the demo --------------------------------------------------------------------------------


@pytest.mark.slow  # the demo data loaded
def test_the_demo_groups_campaign_votes_by_roll(app, client):
    """楼组之最 has a generated roll per 居民区, and its simulated ballots come from it."""
    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    roll = client.get("/api/v1/campaigns/pengpu-2022-groups/roll", headers=ADMIN).json
    assert roll["eligibility"] == "roll" and roll["total"] >= 900
    areas = {e["area"] for e in client.get("/api/v1/campaigns/pengpu-2022-groups/entries").json}
    assert {a["area"] for a in roll["areas"]} == areas
    with app.app_context():
        from service.models import Campaign

        campaign_id = db.session.scalar(
            select(Campaign.id).where(Campaign.slug == "pengpu-2022-groups")
        )
        off_roll = db.session.scalar(
            select(func.count())
            .select_from(Ballot)
            .where(
                Ballot.campaign_id == campaign_id,
                Ballot.voter_key.not_in(
                    select(RollVoter.voter_key).where(RollVoter.campaign_id == campaign_id)
                ),
            )
        )
        cast = db.session.scalar(
            select(func.count()).select_from(Ballot).where(Ballot.campaign_id == campaign_id)
        )
    assert cast == 900 and off_roll == 0
    published = client.get("/api/v1/campaigns/pengpu-2022-groups/results").json
    assert published["turnout"]["voters"] == 900
    assert published["turnout"]["roll_size"] == roll["total"]


def test_a_batch_reads_the_roll_once(client, app, make_campaign, clock):
    """A kiosk batch on a roll campaign looks its voters up in one query, with the same
    outcomes as one by one: on the roll, off it, outside the area, twice."""
    make_campaign(voting={**ROLL, "area_scope": True, "max_choices": 5}, entries=SCOPED_ENTRIES)
    voters = [f"139{i:08d}" for i in range(40)]
    upload(client, "voter_id,area\n" + "".join(f"{v},海鹰居民区\n" for v in voters))
    kiosk = client.post("/api/v1/kiosks", json={"name": "k"}, headers=ADMIN).json
    clock.set(OPEN)
    items = [{"ballot_id": str(uuid.uuid4()), "voter_id": v, "choices": ["H1"]} for v in voters]
    items += [
        {"ballot_id": str(uuid.uuid4()), "voter_id": "13800000000", "choices": ["H1"]},
        {"ballot_id": str(uuid.uuid4()), "voter_id": voters[0], "choices": ["H2"]},
        {"ballot_id": str(uuid.uuid4()), "voter_id": voters[1] + "0", "choices": ["H1"]},
    ]
    items[2]["choices"] = ["H1", "L1"]
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        r = client.post(
            "/api/v1/campaigns/c1/ballots/batch",
            json={"ballots": items},
            headers={"Authorization": f"Bearer {kiosk['token']}"},
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert r.status_code == 200, r.json
    results = r.json["results"]
    codes = [x.get("error", {}).get("code") for x in results]
    assert codes[2] == "outside_area" and results[2]["error"]["details"]["codes"] == ["L1"]
    assert codes[40:] == ["not_on_roll", "already_voted", "invalid_voter_id"]
    assert [x["status"] for x in results[:40]].count("accepted") == 39
    assert len([s for s in statements if "roll_voters" in s]) == 1
    assert counted(app) == 39


def test_votes_roll_import(app, client, make_campaign, tmp_path):
    make_campaign(voting=ROLL)
    path = tmp_path / "roll.csv"
    path.write_bytes("voter_id,area\n13912345678,海鹰居民区\n".encode("gbk"))
    result = app.test_cli_runner().invoke(args=["roll", "import", "c1", str(path)])
    assert result.exit_code == 0, result.output
    assert "added 1 voters" in result.output
    path.write_bytes(b"voter_id\n12\n")
    result = app.test_cli_runner().invoke(args=["roll", "import", "c1", str(path)])
    assert result.exit_code == 2 and "invalid_csv" in result.output
    assert client.get("/api/v1/campaigns/c1/roll", headers=ADMIN).json["areas"] == [
        {"area": "海鹰居民区", "voters": 1, "grids": []}
    ]
