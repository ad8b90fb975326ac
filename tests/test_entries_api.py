"""Entries: one or a list, CSV import all-or-nothing, the lock once voting opens."""

from datetime import datetime

from tests.support import ADMIN, ENTRIES, error_code

CSV_OK = (
    "code,title,summary,category,area,grid,cost\n"
    'B01,"龙馨嘉园3号楼","楼组互助",最具人气,龙馨嘉园居民区,,\n'
    'B02,"场中路3300弄5号楼","加装电梯, 邻里同心",最具活力,场中路居民区,网格一,1200.5\n'
)


def codes(client, slug="c1"):
    return [e["code"] for e in client.get(f"/api/v1/campaigns/{slug}/entries").json]


def test_add_one_entry_and_a_list(client, make_campaign):
    """An office adds an entry as an object, then several as a list."""
    make_campaign(entries=None)
    r = client.post("/api/v1/campaigns/c1/entries", json=ENTRIES[0], headers=ADMIN)
    assert r.status_code == 201 and r.json[0]["code"] == "A01"
    r = client.post("/api/v1/campaigns/c1/entries", json=ENTRIES[1:], headers=ADMIN)
    assert r.status_code == 201 and len(r.json) == 2
    assert codes(client) == ["A01", "A02", "A03"]
    one = client.get("/api/v1/campaigns/c1/entries/A02").json
    assert one["title"] == "团购管理" and one["cost"] == 2000


def test_code_taken_is_409_and_nothing_added(client, make_campaign):
    """A list with a code that exists (or repeats) is refused whole with code_taken."""
    make_campaign()
    r = client.post(
        "/api/v1/campaigns/c1/entries",
        json=[{"code": "A09", "title": "x"}, {"code": "A01", "title": "y"}],
        headers=ADMIN,
    )
    assert r.status_code == 409 and error_code(r) == "code_taken"
    assert r.json["error"]["details"]["codes"] == ["A01"]
    r = client.post(
        "/api/v1/campaigns/c1/entries",
        json=[{"code": "A08", "title": "x"}, {"code": "A08", "title": "y"}],
        headers=ADMIN,
    )
    assert r.status_code == 409
    assert codes(client) == ["A01", "A02", "A03"]


def test_invalid_entries_are_422(client, make_campaign):
    """Missing titles, bad codes, negative costs and costs the cost column cannot hold
    (10^12 overflowed PostgreSQL's NUMERIC(14, 2): a 500) are 422 with the field named."""
    make_campaign(entries=None)
    for bad, field in (
        ({"code": "A01"}, "title"),
        ({"code": "含空 格", "title": "x"}, "code"),
        ({"code": "A1", "title": "x", "cost": -5}, "cost"),
        ({"code": "A1", "title": "x", "cost": 1e12}, "cost"),
    ):
        r = client.post("/api/v1/campaigns/c1/entries", json=bad, headers=ADMIN)
        assert r.status_code == 422 and field in r.json["error"]["details"]["fields"]
    r = client.post("/api/v1/campaigns/c1/entries", json="A01", headers=ADMIN)
    assert r.status_code == 422
    assert codes(client) == []


def test_csv_import_creates_entries(client, make_campaign):
    """A well-formed CSV creates every line, quoted commas included."""
    make_campaign(entries=None)
    r = client.post(
        "/api/v1/campaigns/c1/entries/import",
        data=CSV_OK.encode(),
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.json
    assert r.json["created"] == 2
    b2 = client.get("/api/v1/campaigns/c1/entries/B02").json
    assert b2["summary"] == "加装电梯, 邻里同心" and b2["cost"] == 1200.5 and b2["grid"] == "网格一"


def test_csv_with_bom_is_accepted(client, make_campaign):
    """A CSV saved by a spreadsheet program (UTF-8 with BOM) imports."""
    make_campaign(entries=None)
    r = client.post(
        "/api/v1/campaigns/c1/entries/import",
        data=("\ufeff" + CSV_OK).encode(),
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200


def test_csv_import_is_all_or_nothing_with_line_numbers(client, make_campaign):
    """One bad line means nothing is imported, and every bad line is named."""
    make_campaign(entries=None)
    text = CSV_OK + "B03,,no title,,,,\nB04,ok,,,,,-3\nB01,dup,,,,,\nB05,short\n"
    r = client.post(
        "/api/v1/campaigns/c1/entries/import",
        data=text.encode(),
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert r.status_code == 422 and error_code(r) == "invalid_csv"
    lines = {item["line"]: item["errors"] for item in r.json["error"]["details"]["lines"]}
    assert set(lines) == {4, 5, 6, 7}
    assert "title" in lines[4] and "cost" in lines[5] and "code" in lines[6]
    assert codes(client) == []


def test_csv_clash_with_existing_code_names_the_line(client, make_campaign):
    """A CSV line whose code already exists is reported and nothing is imported."""
    make_campaign()
    text = "code,title,summary,category,area,grid,cost\nA09,new,,,,,\nA02,clash,,,,,\n"
    r = client.post(
        "/api/v1/campaigns/c1/entries/import",
        data=text.encode(),
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert r.status_code == 422
    assert [i["line"] for i in r.json["error"]["details"]["lines"]] == [3]
    assert codes(client) == ["A01", "A02", "A03"]


def test_csv_wrong_header_encoding_and_type(client, make_campaign):
    """A wrong header, a non-UTF-8 file or a non-CSV content type are clear errors."""
    make_campaign(entries=None)
    hdr = {**ADMIN, "Content-Type": "text/csv"}
    r = client.post("/api/v1/campaigns/c1/entries/import", data=b"id,name\n1,x\n", headers=hdr)
    assert r.status_code == 422 and r.json["error"]["details"]["lines"][0]["line"] == 1
    r = client.post(
        "/api/v1/campaigns/c1/entries/import",
        data="code,title,summary,category,area,grid,cost\nA1,楼组,,,,,\n".encode("gbk"),
        headers=hdr,
    )
    assert r.status_code == 422 and error_code(r) == "invalid_csv"
    r = client.post("/api/v1/campaigns/c1/entries/import", json={"a": 1}, headers=ADMIN)
    assert r.status_code == 415 and error_code(r) == "unsupported_media_type"
    assert codes(client) == []


def test_patch_and_delete_before_voting_opens(client, make_campaign):
    """Before voting opens an office may fix or remove entries."""
    make_campaign()
    r = client.patch(
        "/api/v1/campaigns/c1/entries/A01", json={"category": "志愿参与"}, headers=ADMIN
    )
    assert r.status_code == 200 and r.json["category"] == "志愿参与"
    assert client.delete("/api/v1/campaigns/c1/entries/A03", headers=ADMIN).status_code == 204
    assert codes(client) == ["A01", "A02"]
    r = client.delete("/api/v1/campaigns/c1/entries/A03", headers=ADMIN)
    assert r.status_code == 404 and error_code(r) == "not_found"


def test_entries_lock_when_voting_opens(client, make_campaign, clock):
    """Once voting is open, entries cannot be added, removed or re-categorised; texts can."""
    make_campaign()
    clock.set(datetime.fromisoformat("2026-11-22T10:00:00+08:00"))
    r = client.post(
        "/api/v1/campaigns/c1/entries", json={"code": "A09", "title": "x"}, headers=ADMIN
    )
    assert r.status_code == 409 and error_code(r) == "entries_locked"
    r = client.delete("/api/v1/campaigns/c1/entries/A01", headers=ADMIN)
    assert r.status_code == 409
    r = client.patch("/api/v1/campaigns/c1/entries/A01", json={"cost": 1}, headers=ADMIN)
    assert r.status_code == 409
    r = client.patch(
        "/api/v1/campaigns/c1/entries/A01", json={"title": "更正错别字"}, headers=ADMIN
    )
    assert r.status_code == 200 and r.json["title"] == "更正错别字"
    assert codes(client) == ["A01", "A02", "A03"]


def _csv(codes_: list[str]) -> str:
    return "code,title,summary,category,area,grid,cost\n" + "".join(f"{c},t,,,,,\n" for c in codes_)


def test_entry_cap_refuses_list_single_and_csv_with_422_writing_nothing(
    app, client, make_campaign, monkeypatch
):
    """MAX_ENTRIES_PER_CAMPAIGN caps a campaign's entries however they are added: a list,
    one entry, or a CSV import that would pass it is 422 too_many_entries with the limit,
    the existing count and the number being added; nothing is written."""
    monkeypatch.setitem(app.config, "MAX_ENTRIES_PER_CAMPAIGN", 5)
    make_campaign(entries=ENTRIES)  # 3 entries
    url = "/api/v1/campaigns/c1/entries"
    r = client.post(url, json=[{"code": f"B0{i}", "title": "t"} for i in range(3)], headers=ADMIN)
    assert r.status_code == 422 and error_code(r) == "too_many_entries"
    assert r.json["error"]["details"] == {"limit": 5, "existing": 3, "adding": 3}
    r = client.post(
        f"{url}/import",
        data=_csv(["B01", "B02", "B03"]),
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert r.status_code == 422 and error_code(r) == "too_many_entries"
    assert r.json["error"]["details"] == {"limit": 5, "existing": 3, "adding": 3}
    assert codes(client) == ["A01", "A02", "A03"]

    assert client.post(url, json=[{"code": "B01", "title": "t"}], headers=ADMIN).status_code == 201
    assert client.post(url, json={"code": "B02", "title": "t"}, headers=ADMIN).status_code == 201
    r = client.post(url, json={"code": "B03", "title": "t"}, headers=ADMIN)
    assert r.status_code == 422 and error_code(r) == "too_many_entries"
    assert r.json["error"]["details"] == {"limit": 5, "existing": 5, "adding": 1}
    assert codes(client) == ["A01", "A02", "A03", "B01", "B02"]
    with app.app_context():
        from sqlalchemy import func, select

        from service.extensions import db
        from service.models import AuditEvent

        adds = db.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "entries.add")
        )
    assert adds == 3  # make_campaign's list, then B01 and B02


def test_a_55000_line_csv_is_refused_by_the_default_cap_before_validation(
    app, client, make_campaign
):
    """The default cap (2,000) refuses the 55,000-entry CSV that took 34 s and made a
    13 MB voting page, without validating every line; the voting page stays small."""
    import time

    assert app.config["MAX_ENTRIES_PER_CAMPAIGN"] == 2000
    make_campaign(entries=None)
    body = _csv([f"E{i:05d}" for i in range(55_000)]).encode()
    assert len(body) < 1024 * 1024
    started = time.perf_counter()
    r = client.post(
        "/api/v1/campaigns/c1/entries/import",
        data=body,
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    elapsed = time.perf_counter() - started
    assert r.status_code == 422 and error_code(r) == "too_many_entries"
    assert r.json["error"]["details"] == {"limit": 2000, "existing": 0, "adding": 55_000}
    assert codes(client) == []
    print(f"55,000-line CSV refused in {elapsed:.2f} s")
    body = _csv([f"E{i:05d}" for i in range(2000)]).encode()
    r = client.post(
        "/api/v1/campaigns/c1/entries/import",
        data=body,
        headers={**ADMIN, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200 and r.json["created"] == 2000
