"""The `votes` command."""

import json
import re
import runpy

import pytest
from sqlalchemy import func, select

from service.config import PROJECT_ROOT, ConfigError, local_base_url, web_address
from service.extensions import db
from service.models import Ballot, Campaign, Entry, Expert, Kiosk, Score
from tests.support import campaign_doc


@pytest.mark.slow  # the demo data loaded
def test_demo_load_creates_the_seed_campaigns(app, client):
    """`votes demo load` creates the article's campaigns and one open campaign, once."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    slugs = [c["slug"] for c in client.get("/api/v1/campaigns").json]
    assert slugs == [
        "pengpu-2022-cases",
        "pengpu-2022-groups",
        "pengpu-2022-featured",
        "pengpu-2023-grids",
        "pengpu-2024-grids2",
    ]
    with app.app_context():
        counts = dict(
            db.session.execute(
                select(Campaign.slug, func.count(Entry.id)).join(Entry).group_by(Campaign.slug)
            ).all()
        )
    assert counts == {
        "pengpu-2022-cases": 37,
        "pengpu-2022-groups": 90,
        "pengpu-2022-featured": 41,
        "pengpu-2023-grids": 24,
        "pengpu-2024-grids2": 15,
    }
    grids = client.get("/api/v1/campaigns/pengpu-2023-grids/entries").json
    titles = " ".join(e["title"] for e in grids)
    assert "幸福来敲门" in titles and "微·笑" in titles
    with app.app_context():
        ballots = dict(
            db.session.execute(
                select(Campaign.slug, func.count(Ballot.id)).join(Ballot).group_by(Campaign.slug)
            ).all()
        )
        kiosk_ballots = db.session.scalar(
            select(func.count()).select_from(Ballot).where(Ballot.channel == "kiosk")
        )
    # Simulated ballots went through cast_ballot: all accepted, some from the demo kiosk.
    assert ballots == {
        "pengpu-2022-cases": 400,
        "pengpu-2022-groups": 900,
        "pengpu-2023-grids": 250,
        "pengpu-2024-grids2": 150,
    }
    assert 0 < kiosk_ballots < sum(ballots.values())
    assert "400 ballots" in result.output
    with app.app_context():
        scored = dict(
            db.session.execute(
                select(Campaign.slug, func.count(Score.id)).join(Score).group_by(Campaign.slug)
            ).all()
        )
        recused = db.session.scalar(
            select(func.count())
            .select_from(Score)
            .join(Expert, Expert.id == Score.expert_id)
            .join(Entry, Entry.id == Score.entry_id)
            .where(Expert.area == Entry.area)
        )
    # The demo panels scored the reviewed campaigns, never an entry of their own area.
    assert set(scored) == {
        "pengpu-2022-cases",
        "pengpu-2022-featured",
        "pengpu-2023-grids",
        "pengpu-2024-grids2",
    }
    assert min(scored.values()) > 50 and recused == 0
    # The expert links are absolute, on the address `votes serve` binds by default.
    links = re.findall(r"(?m)^  expert \S+: (\S+)$", result.output)
    assert len(links) == 22, result.output
    assert all(
        re.fullmatch(r"http://127\.0\.0\.1:\d+/review/pengpu-20\d\d-\w+/login\?token=exp_\S+", u)
        for u in links
    ), links
    # Each campaign is ranked and published (the open one provisionally), with its own
    # selection rule honoured.
    published = {slug: client.get(f"/api/v1/campaigns/{slug}/results").json for slug in slugs}
    assert published["pengpu-2024-grids2"]["provisional"] is True
    winners = {slug: [r for r in doc["rows"] if r["selected"]] for slug, doc in published.items()}
    cases = winners["pengpu-2022-cases"]
    assert len(cases) == 12 and len({r["area"] for r in cases}) == 12
    assert all(
        1 <= sum(r["category"] == c for r in cases) <= 4
        for c in ("党建引领", "志愿参与", "团购管理", "关怀疏导", "邻里同心")
    )
    groups = winners["pengpu-2022-groups"]
    assert sorted(r["award"] for r in groups) == ["最具人气"] * 21 + ["最具活力"] * 20
    grids = winners["pengpu-2023-grids"]
    costs = {
        e["code"]: e["cost"] for e in client.get("/api/v1/campaigns/pengpu-2023-grids/entries").json
    }
    assert len(grids) <= 10 and sum(costs[r["code"]] for r in grids) <= 300000
    again = runner.invoke(args=["demo", "load"])
    assert again.exit_code == 0 and "skipped" in again.output


def test_campaign_create_and_entries_import_from_files(app, client, tmp_path):
    """An office can set up a campaign from a JSON file and a CSV file."""
    doc = tmp_path / "c.json"
    doc.write_text(json.dumps(campaign_doc("from-file")), encoding="utf-8")
    csv_file = tmp_path / "e.csv"
    csv_file.write_text(
        "code,title,summary,category,area,grid,cost\nA1,楼组一,,,,,\n", encoding="utf-8"
    )
    runner = app.test_cli_runner()
    app.config["CLOCK"] = None
    result = runner.invoke(args=["campaign", "create", str(doc)])
    assert result.exit_code == 0, result.output
    # The fixture campaign's voting opened in the past; entries are fixed by then.
    result = runner.invoke(args=["entries", "import", "from-file", str(csv_file)])
    assert result.exit_code == 2 and "entries_locked" in result.output


def test_campaign_create_reports_invalid_files(app, tmp_path):
    """An invalid campaign file exits non-zero and names the problem."""
    doc = tmp_path / "bad.json"
    doc.write_text(json.dumps({"slug": "x"}), encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["campaign", "create", str(doc)])
    assert result.exit_code == 2 and "title" in result.output


def test_kiosk_add_prints_a_token(app):
    """`votes kiosk add` registers a kiosk and prints its token once."""
    result = app.test_cli_runner().invoke(args=["kiosk", "add", "大厅", "--location", "一楼"])
    assert result.exit_code == 0 and "ksk_" in result.output
    with app.app_context():
        assert db.session.scalar(select(Kiosk.location)) == "一楼"


@pytest.mark.parametrize(
    ("env", "bind", "url"),
    [
        ({}, "127.0.0.1:8000", "http://127.0.0.1:8000"),
        ({"PORT": "8123"}, "127.0.0.1:8123", "http://127.0.0.1:8123"),
        ({"VOTES_ENV": "production"}, "0.0.0.0:8000", "http://127.0.0.1:8000"),
        ({"HOST": "0.0.0.0", "PORT": "9000"}, "0.0.0.0:9000", "http://127.0.0.1:9000"),
        ({"HOST": "::"}, "[::]:8000", "http://[::1]:8000"),
        ({"HOST": "192.0.2.7"}, "192.0.2.7:8000", "http://192.0.2.7:8000"),
    ],
)
def test_web_address_development_binds_loopback(monkeypatch, env, bind, url):
    """HOST/PORT: loopback in development, every interface in production; gunicorn.conf.py
    binds what web_address() says, and the printed base URL reaches it."""
    for name in ("HOST", "PORT", "VOTES_ENV"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    host, port = web_address()
    conf = runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))
    assert conf["bind"] == bind
    assert local_base_url(host, port) == url


@pytest.mark.parametrize("port", ["eighty", "0", "70000"])
def test_web_address_refuses_a_bad_port(monkeypatch, port):
    monkeypatch.setenv("PORT", port)
    with pytest.raises(ConfigError, match="PORT"):
        web_address()
