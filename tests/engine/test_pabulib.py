"""The pabulib .pb reader/writer, and the real elections in the shared pabulib folder:
the rule named in each file reproduces its official winners."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from engine.pabulib import PbInstance, dumps, parse, read, run_rule
from engine.synth import generate_instance
from engine.types import Approvals, RankingError


def _pabulib_dir() -> Path:
    env = os.environ.get("PABULIB_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pabulib"


PB_DIR = _pabulib_dir()
PB_FILES = sorted(PB_DIR.glob("*.pb")) if PB_DIR.is_dir() else []
# The real elections: slow (marked so), and run only where the files are.
needs_files = pytest.mark.skipif(
    not PB_FILES, reason=f"no pabulib files in {PB_DIR} (set PABULIB_DIR to run these)"
)
by_name = pytest.mark.parametrize(
    "path", PB_FILES or [None], ids=[p.name for p in PB_FILES] or ["no-files"]
)


def _files(keep) -> pytest.MarkDecorator:
    """Parametrize over the files a test applies to (no skips for the others)."""
    chosen = [p for p in PB_FILES if keep(read(p))]
    return pytest.mark.parametrize(
        "path", chosen or [None], ids=[p.name for p in chosen] or ["no-files"]
    )


with_official_winners = _files(lambda inst: inst.selected() is not None)
greedy_files = _files(lambda inst: inst.rule == "greedy")
approval_with_votes = _files(
    lambda inst: inst.vote_type == "approval" and "votes" in inst.projects[0]
)

SMALL = (
    "META\n"
    "key;value\n"
    "description;tiny\n"
    "budget;100\n"
    "vote_type;approval\n"
    "rule;greedy\n"
    "PROJECTS\n"
    "project_id;cost;votes;name;selected\n"
    "a;60;2;First;1\n"
    "b;50;1;Second;0\n"
    "c;30;1;Third;1\n"
    "VOTES\n"
    "voter_id;vote\n"
    "v1;a,c\n"
    "v2;b,a\n"
)


# -- the real elections ---------------------------------------------------------------


@pytest.mark.slow
@needs_files
@by_name
def test_official_rule_fits_the_budget(path):
    """Running the rule the file names never spends more than the budget."""
    inst = read(path)
    chosen = run_rule(inst)
    assert inst.costs()[chosen].sum() <= inst.budget


@pytest.mark.slow
@needs_files
@with_official_winners
def test_official_rule_reproduces_official_winners(path):
    """Running the rule the file names selects exactly the officially selected projects."""
    inst = read(path)
    assert set(run_rule(inst)) == inst.selected()


@pytest.mark.slow
@needs_files
@greedy_files
def test_greedy_files_spend_until_nothing_fits(path):
    """Greedy outcomes leave no eligible project that would still fit."""
    inst = read(path)
    chosen = run_rule(inst)
    costs = inst.costs()
    left = inst.budget - costs[chosen].sum()
    rest = [i for i in range(len(costs)) if i not in chosen]
    assert all(costs[i] > left for i in rest)


@pytest.mark.slow
@needs_files
@by_name
def test_round_trip_is_exact(path):
    """parse -> dumps -> parse gives back the same instance, for every file."""
    inst = read(path)
    again = parse(dumps(inst))
    assert again == inst
    assert dumps(again) == dumps(inst)


@pytest.mark.slow
@needs_files
@approval_with_votes
def test_counted_votes_match_the_votes_column(path):
    """Approvals counted from the ballots equal each project's 'votes' column."""
    inst = read(path)
    counted = inst.scores()
    assert counted.tolist() == [float(p["votes"]) for p in inst.projects]
    approvals = inst.approvals()
    assert approvals.n_ballots == len(inst.votes)
    assert np.bincount(approvals.indices, minlength=len(inst.projects)).tolist() == counted.tolist()


@pytest.mark.slow
@needs_files
def test_assen_official_winners_need_add1_but_not_greedy_completion():
    """Assen 2024: plain MES spends too little, add1 gives the official winners, and an
    extra greedy completion would add a project that was not selected."""
    path = PB_DIR / "Netherlands_Assen_2024.pb"
    if not path.exists():
        pytest.skip("Assen file not present")
    inst = read(path)
    official = inst.selected()
    plain = set(run_rule(inst, "equalshares"))
    assert plain < official
    assert set(run_rule(inst, "equalshares/add1")) == official
    assert set(run_rule(inst, "equalshares/add1/greedy")) > official


@pytest.mark.slow
@needs_files
def test_cumulative_ballots_are_not_approvals():
    """A cumulative-vote file parses, but asking for approval ballots is refused."""
    cumulative = [p for p in PB_FILES if read(p).vote_type == "cumulative"]
    if not cumulative:
        pytest.skip("no cumulative file")
    inst = read(cumulative[0])
    with pytest.raises(RankingError) as err:
        inst.approvals()
    assert err.value.code == "unsupported_vote_type"
    assert inst.scores().sum() > 0  # points still count for greedy


# -- parsing --------------------------------------------------------------------------


def test_parse_small_file():
    """Sections, columns and helpers of a small hand-written file."""
    inst = parse(SMALL)
    assert inst.meta == {
        "description": "tiny",
        "budget": "100",
        "vote_type": "approval",
        "rule": "greedy",
    }
    assert inst.project_ids == ["a", "b", "c"]
    assert inst.projects[1] == {
        "project_id": "b",
        "cost": "50",
        "votes": "1",
        "name": "Second",
        "selected": "0",
    }
    assert inst.votes == [{"voter_id": "v1", "vote": "a,c"}, {"voter_id": "v2", "vote": "b,a"}]
    assert inst.costs().tolist() == [60.0, 50.0, 30.0]
    assert inst.budget == 100.0
    assert inst.selected() == {0, 2}
    approvals = inst.approvals()
    assert approvals.indptr.tolist() == [0, 2, 4]
    assert approvals.indices.tolist() == [0, 2, 1, 0]
    assert [e.code for e in inst.entries()] == ["a", "b", "c"]
    assert run_rule(inst) == [0, 2]


def test_bom_crlf_and_blank_lines_are_accepted():
    """A UTF-8 BOM, Windows line ends and blank lines do not change the result."""
    text = "\ufeff" + SMALL.replace("\n", "\r\n").replace("PROJECTS", "\r\nPROJECTS")
    assert parse(text) == parse(SMALL)


def test_quoted_fields_round_trip():
    """Fields with ';', quotes or line breaks are quoted on output and read back."""
    inst = parse(SMALL)
    inst.projects[0]["name"] = 'Park; "green" corner'
    inst.projects[1]["name"] = "two\nlines"
    inst.meta["comment"] = "#1: a;b"
    text = dumps(inst)
    assert '"Park; ""green"" corner"' in text
    assert parse(text) == inst


def test_quoted_field_in_source_file():
    """A quoted field in a file is read without its quotes."""
    text = SMALL.replace("a;60;2;First;1", 'a;60;2;"First; best";1')
    assert parse(text).projects[0]["name"] == "First; best"


def test_file_without_selected_column():
    """Without a 'selected' column there are no official winners."""
    text = SMALL.replace(";selected\n", "\n").replace(";1\n", "\n").replace(";0\n", "\n")
    assert parse(text).selected() is None


@pytest.mark.parametrize(
    ("broken", "line", "words"),
    [
        (SMALL.replace("META\n", "", 1), 1, "start with META"),
        (SMALL.replace("b;50;1;Second;0", "b;50;1;Second"), 10, "fields"),
        (SMALL.replace("v2;b,a", "v2;b,z"), 15, "unknown project 'z'"),
        (SMALL.replace("b;50;", "b;fifty;"), 10, "not a number"),
        (SMALL.replace("c;30;", "a;30;"), 11, "repeated"),
        (SMALL.replace("v2;b,a", "v1;b,a"), 15, "repeated"),
        (SMALL.replace("v2;b,a", "v2;a,a"), 15, "twice"),
        (SMALL.replace("b;50;", "b;-5;"), 10, "negative"),
        (SMALL.replace("project_id;cost", "project_id;price"), 8, "cost"),
        (SMALL.split("VOTES")[0], 12, "VOTES"),
        (SMALL.replace("budget;100\n", ""), 15, "budget"),
        (SMALL.replace("PROJECTS\n", "VOTES\n", 1), 7, "out of place"),
    ],
)
def test_malformed_files_give_line_numbers(broken, line, words):
    """Malformed files are refused with pb_parse_error and the offending line."""
    with pytest.raises(RankingError) as err:
        parse(broken)
    assert err.value.code == "pb_parse_error"
    assert err.value.details["line"] == line
    assert words in err.value.message


def test_other_vote_types_are_unsupported_for_ballots():
    """Ordinal (or scoring) ballots parse, but are not approval ballots."""
    inst = parse(SMALL.replace("vote_type;approval", "vote_type;ordinal"))
    with pytest.raises(RankingError) as err:
        inst.approvals()
    assert err.value.code == "unsupported_vote_type"


def test_unknown_rule_is_refused():
    """A rule we do not implement is an unsupported_rule error."""
    with pytest.raises(RankingError) as err:
        run_rule(parse(SMALL), "phragmen")
    assert err.value.code == "unsupported_rule"


def test_missing_budget_or_cost_in_helpers():
    """Helpers report a missing budget/cost with the engine's error codes."""
    inst = PbInstance(meta={}, projects=[{"project_id": "1", "cost": ""}], votes=[])
    with pytest.raises(RankingError) as err:
        inst.costs()
    assert err.value.code == "cost_required"
    with pytest.raises(RankingError) as err:
        _ = inst.budget
    assert err.value.code == "budget_required"


def test_generated_election_writes_and_reads_back():
    """A generated election exported as .pb reads back as the same ballots and costs."""
    approvals, costs, budget = generate_instance(200, 12, seed=5)
    inst = PbInstance.from_election(approvals, costs, budget, meta={"rule": "equalshares/add1"})
    back = parse(dumps(inst))
    assert back == inst
    again = back.approvals()
    assert np.array_equal(again.indptr, approvals.indptr)
    assert np.array_equal(again.indices, approvals.indices)
    assert np.array_equal(back.costs(), costs) and back.budget == budget
    assert run_rule(back) == run_rule(inst)


def test_empty_ballot_round_trips():
    """A voter who approved nothing keeps an empty vote field."""
    inst = PbInstance.from_election(Approvals.from_lists([[0], []]), np.array([10.0]), 10.0)
    back = parse(dumps(inst))
    assert back.votes[1]["vote"] == ""
    assert back.approvals().indptr.tolist() == [0, 1, 1]
