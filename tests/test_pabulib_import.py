"""Real participatory-budgeting elections through `votes pb import` and the engine.

Every file in shared/data/pabulib is imported the way an office would, ranked by the
service's own ranking path, and the official winners (the file's `selected` column) are
reproduced: greedy files with the greedy rules, Assen 2024 with equal shares.
"""

import os
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine import pabulib
from service.domain import rankings
from service.domain.campaigns import get_campaign
from service.domain.pabulib_io import RULE_FROM_PB, RULE_TO_PB
from service.extensions import db
from service.models import Campaign

PABULIB_DIR = Path(
    os.environ.get(
        "PABULIB_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "pabulib"
    )
)
FILES = sorted(PABULIB_DIR.glob("*.pb")) if PABULIB_DIR.is_dir() else []
needs_data = pytest.mark.skipif(
    not FILES, reason=f"no pabulib files at {PABULIB_DIR} (a plain clone; CI has them)"
)


def _import(app, path: Path, slug: str | None = None):
    args = ["pb", "import", str(path)] + (["--slug", slug] if slug else [])
    return app.test_cli_runner().invoke(args=args)


def _rank(app, slug: str) -> dict:
    with app.app_context():
        run = rankings.create_run(get_campaign(slug), "test")
        db.session.commit()
        result = rankings.compute(run)
        db.session.commit()
        return result


def _selected(result: dict) -> set[str]:
    return {row["code"] for row in result["rows"] if row["selected"]}


@pytest.mark.slow  # real elections
@needs_data
@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_official_winners_are_reproduced(app, path):
    """Importing a real election and ranking it selects the projects that really won."""
    inst = pabulib.read(path)
    result = _import(app, path)
    if inst.vote_type not in pabulib.APPROVAL_VOTE_TYPES:
        # Cumulative ballots cannot be represented: refused clearly, nothing created.
        assert result.exit_code == 2 and "unsupported_vote_type" in result.output
        with app.app_context():
            assert db.session.scalars(select(Campaign)).all() == []
        return
    assert result.exit_code == 0, result.output
    with app.app_context():
        slug = db.session.scalar(select(Campaign.slug))
    ranked = _rank(app, slug)
    assert ranked["ballots_counted"] == sum(1 for b in inst.ballot_lists() if b)
    ids = inst.project_ids
    official = inst.selected()
    if official is not None:
        assert _selected(ranked) == {ids[i] for i in official}
    else:
        # No official column (Toulouse 2022): the file's own rule, run independently of
        # the service, must agree, and the selection must fit the budget.
        assert _selected(ranked) == {ids[i] for i in pabulib.run_rule(inst)}
        costs = dict(zip(ids, inst.costs(), strict=True))
        assert sum(costs[c] for c in _selected(ranked)) <= inst.budget


@pytest.mark.slow  # real elections
@needs_data
@pytest.mark.parametrize(
    "path", [f for f in FILES if "Toulouse_2019" not in f.name], ids=lambda p: p.stem
)
def test_import_export_import_loses_nothing(app, path, tmp_path):
    """pb import → pb export → pb import keeps META, projects, costs, budget, rule and
    ballots, and the file's voting dates become the campaign's window."""
    assert _import(app, path, "first").exit_code == 0
    out = tmp_path / "out.pb"
    result = app.test_cli_runner().invoke(args=["pb", "export", "first", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert _import(app, out, "second").exit_code == 0, out.read_text()[:500]
    original, exported = pabulib.read(path), pabulib.read(out)
    assert exported.budget == original.budget
    assert exported.meta["rule"] == original.meta["rule"]
    assert {p["project_id"]: float(p["cost"]) for p in exported.projects} == {
        p["project_id"]: float(p["cost"]) for p in original.projects
    }
    assert {p["project_id"]: p["name"] for p in exported.projects} == {
        p["project_id"]: p["name"] for p in original.projects
    }

    def ballots(inst):
        ids = inst.project_ids
        return Counter(frozenset(ids[i] for i in b) for b in inst.ballot_lists() if b)

    assert ballots(exported) == ballots(original)

    # META, key by key, in the file's order. What legitimately changes: num_votes counts
    # the ballots the service counted (empty ballots are not cast, exclusions are left
    # out), and rule is the rule the service ran (pabulib's equalshares runs as add1).
    # Keys the file lacked that the service always writes: its voting rules min_length
    # and max_length, and num_projects/num_votes/budget/vote_type/rule.
    assert list(exported.meta)[: len(original.meta)] == list(original.meta)
    for key, value in original.meta.items():
        if key == "num_votes":
            assert exported.meta[key] == str(sum(1 for b in original.ballot_lists() if b))
        elif key == "rule":
            assert exported.meta[key] == RULE_TO_PB[RULE_FROM_PB[value]]
        else:
            assert exported.meta[key] == value, key
    added = set(exported.meta) - set(original.meta)
    assert added <= {"min_length", "max_length", "num_projects", "num_votes", "vote_type", "rule"}
    second_out = tmp_path / "second.pb"
    result = app.test_cli_runner().invoke(args=["pb", "export", "second", "-o", str(second_out)])
    assert result.exit_code == 0, result.output
    again = pabulib.read(second_out)
    assert again.meta == exported.meta
    with app.app_context():
        first, second = get_campaign("first"), get_campaign("second")
        assert first.selection == second.selection
        assert first.voting == second.voting and first.timezone == second.timezone
        zone = ZoneInfo(first.timezone)
        opens = datetime.fromisoformat(first.voting["opens_at"]).astimezone(zone)
        closes = datetime.fromisoformat(first.voting["closes_at"]).astimezone(zone)
        assert opens.strftime("%d.%m.%Y %H:%M") == original.meta["date_begin"] + " 00:00"
        assert (closes - timedelta(days=1)).strftime("%d.%m.%Y %H:%M") == (
            original.meta["date_end"] + " 00:00"
        )
        if "min_length" in original.meta:
            assert first.voting["min_choices"] == int(original.meta["min_length"])
        if "max_length" in original.meta:
            assert first.voting["max_choices"] == int(original.meta["max_length"])
    assert _selected(_rank(app, "first")) == _selected(_rank(app, "second"))


SMALL_PB = """META
key;value
description;Budżet obywatelski
country;Poland
unit;Testowo
instance;2021
num_projects;3
num_votes;3
budget;1000.0
vote_type;approval
rule;greedy
date_begin;{begin}
date_end;{end}
min_length;2
max_length;2
language;pl
currency;PLN
comment;"#1: a comment; with a semicolon"
PROJECTS
project_id;cost;votes;name
p1;400;2;Park
p2;500;2;Ławki
p3;300;2;Rowery
VOTES
voter_id;vote
v1;p1,p2
v2;p2,p3
v3;p1,p3
"""


def test_small_file_keeps_meta_dates_and_lengths(app, tmp_path, clock):
    """Without the data set: the META (quoted values, decimals as written) survives
    import and export; the dates give the window in the country's time zone; a file
    whose dates are not over yet is placed before the import instead."""
    src = tmp_path / "small.pb"
    src.write_text(SMALL_PB.format(begin="01.03.2021", end="14.03.2021"), encoding="utf-8")
    assert _import(app, src, "small").exit_code == 0
    out = tmp_path / "small-out.pb"
    assert (
        app.test_cli_runner().invoke(args=["pb", "export", "small", "-o", str(out)]).exit_code == 0
    )
    original, exported = pabulib.read(src), pabulib.read(out)
    assert exported.meta == original.meta and list(exported.meta) == list(original.meta)
    with app.app_context():
        campaign = get_campaign("small")
        assert campaign.timezone == "Europe/Warsaw"
        assert campaign.voting["opens_at"] == "2021-03-01T00:00:00+01:00"
        assert campaign.voting["closes_at"] == "2021-03-15T00:00:00+01:00"
        assert (campaign.voting["min_choices"], campaign.voting["max_choices"]) == (2, 2)

    future = tmp_path / "future.pb"
    begin = (clock.at + timedelta(days=2)).strftime("%d.%m.%Y")
    end = (clock.at + timedelta(days=9)).strftime("%d.%m.%Y")
    future.write_text(SMALL_PB.format(begin=begin, end=end), encoding="utf-8")
    assert _import(app, future, "future").exit_code == 0
    with app.app_context():
        voting = get_campaign("future").voting
        closes = datetime.fromisoformat(voting["closes_at"])
        assert closes <= clock.at and closes - datetime.fromisoformat(voting["opens_at"]) == (
            timedelta(days=1)
        )
    out = tmp_path / "future-out.pb"
    assert (
        app.test_cli_runner().invoke(args=["pb", "export", "future", "-o", str(out)]).exit_code == 0
    )
    # The file's dates are written back as given, even though the window could not use them.
    assert pabulib.read(out).meta["date_begin"] == begin


def test_campaign_made_here_exports_its_window_and_limits(client, app, make_campaign, tmp_path):
    """A campaign that was never a pabulib file exports its title, its voting window as
    local dates and its choice limits."""
    make_campaign("c1", selection={"rule": "greedy_budget", "budget": 5000})
    out = tmp_path / "c1.pb"
    assert app.test_cli_runner().invoke(args=["pb", "export", "c1", "-o", str(out)]).exit_code == 0
    meta = pabulib.read(out).meta
    assert meta["description"] == "优秀案例评选"
    assert (meta["date_begin"], meta["date_end"]) == ("21.11.2026", "28.11.2026")
    assert (meta["min_length"], meta["max_length"]) == ("1", "3")
    assert meta["budget"] == "5000" and meta["rule"] == "greedy"
