"""The `votes` command."""

import json

from sqlalchemy import func, select

from service.extensions import db
from service.models import Ballot, Campaign, Entry, Expert, Kiosk, Score
from tests.conftest import campaign_doc


def test_demo_load_creates_the_three_seed_campaigns(app, client):
    """`votes demo load` creates the article's three campaigns with their entries, once."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    slugs = [c["slug"] for c in client.get("/api/v1/campaigns").json]
    assert slugs == ["pengpu-2022-cases", "pengpu-2022-groups", "pengpu-2023-grids"]
    with app.app_context():
        counts = dict(
            db.session.execute(
                select(Campaign.slug, func.count(Entry.id)).join(Entry).group_by(Campaign.slug)
            ).all()
        )
    assert counts == {"pengpu-2022-cases": 37, "pengpu-2022-groups": 90, "pengpu-2023-grids": 24}
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
    # The demo panels scored the two reviewed campaigns, never an entry of their own area.
    assert set(scored) == {"pengpu-2022-cases", "pengpu-2023-grids"}
    assert min(scored.values()) > 50 and recused == 0
    assert "/review/pengpu-2022-cases/login?token=exp_" in result.output
    # Each campaign is ranked and published, with its own selection rule honoured.
    published = {slug: client.get(f"/api/v1/campaigns/{slug}/results").json for slug in slugs}
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
