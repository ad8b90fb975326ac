"""Real participatory-budgeting elections through `votes pb import` and the engine.

Every file in shared/data/pabulib is imported the way an office would, ranked by the
service's own ranking path, and the official winners (the file's `selected` column) are
reproduced: greedy files with the greedy rules, Assen 2024 with equal shares.
"""

import os
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from service.domain import rankings
from service.domain.campaigns import get_campaign
from service.extensions import db
from service.models import Campaign
from workers.ranking import pabulib

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


@needs_data
@pytest.mark.parametrize(
    "path", [f for f in FILES if "Toulouse_2019" not in f.name], ids=lambda p: p.stem
)
def test_import_export_import_loses_nothing(app, path, tmp_path):
    """pb import → pb export → pb import keeps projects, costs, budget, rule and ballots."""
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
    with app.app_context():
        first, second = get_campaign("first"), get_campaign("second")
        assert first.selection == second.selection
    assert _selected(_rank(app, "first")) == _selected(_rank(app, "second"))
