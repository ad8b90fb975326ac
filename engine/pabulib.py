"""Reader and writer for the pabulib ``.pb`` format (https://pabulib.org/format).

A file has three sections, in this order, each opened by a line holding only its name:

* ``META``: a ``key;value`` header line, then one ``key;value`` row per property
  (``budget``, ``vote_type``, ``rule``, ...);
* ``PROJECTS``: a header line (``project_id;cost;...``), then one row per project;
* ``VOTES``: a header line (``voter_id;vote;...``), then one row per ballot; ``vote`` is
  a comma-separated list of project ids (``points`` the matching scores for cumulative
  and scoring ballots).

Rows are ``;``-separated CSV: a field may be quoted with ``"`` (``""`` inside quotes is
a literal quote), as Python's ``csv`` module and pabutools read them. A leading BOM and
CRLF line ends are accepted; blank lines are ignored; cell values are stripped of
surrounding spaces. Everything is kept as text, in file order; the helpers convert.
Malformed files raise ``RankingError("pb_parse_error", message, {"line": n})``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from engine.budget import equal_shares, greedy_budget
from engine.types import Approvals, Entry, RankingError

__all__ = ["APPROVAL_VOTE_TYPES", "PbInstance", "dumps", "parse", "read", "run_rule"]

SECTIONS = ("META", "PROJECTS", "VOTES")
APPROVAL_VOTE_TYPES = ("approval", "choose-1")


@dataclass
class PbInstance:
    """A parsed ``.pb`` file: every value as the text found in the file."""

    meta: dict[str, str] = field(default_factory=dict)
    projects: list[dict[str, str]] = field(default_factory=list)
    votes: list[dict[str, str]] = field(default_factory=list)

    # -- projects ---------------------------------------------------------------------

    @property
    def project_ids(self) -> list[str]:
        return [p["project_id"] for p in self.projects]

    def costs(self) -> np.ndarray:
        """Project costs (float64, file order); ``cost_required`` if one is missing."""
        out = np.empty(len(self.projects), dtype=np.float64)
        for i, p in enumerate(self.projects):
            try:
                out[i] = _number(p.get("cost", ""))
            except ValueError:
                raise RankingError(
                    "cost_required",
                    f"project {p.get('project_id')!r} has no valid cost",
                    {"project_id": p.get("project_id")},
                ) from None
        return out

    @property
    def budget(self) -> float:
        try:
            return _number(self.meta.get("budget", ""))
        except ValueError:
            raise RankingError("budget_required", "META has no valid budget") from None

    @property
    def vote_type(self) -> str:
        return self.meta.get("vote_type", "approval").strip().lower()

    @property
    def rule(self) -> str | None:
        return self.meta.get("rule")

    def selected(self) -> set[int] | None:
        """Positions of the officially selected projects, or None without the column."""
        if not self.projects or "selected" not in self.projects[0]:
            return None
        out = set()
        for i, p in enumerate(self.projects):
            value = p.get("selected", "").strip()
            if value and value.lower() != "none" and _number(value) > 0:
                out.add(i)
        return out

    def entries(self) -> list[Entry]:
        """Projects as engine entries (code = project_id, title = name)."""
        costs = self.costs()
        return [
            Entry(
                code=p["project_id"],
                title=p.get("name", ""),
                category=p.get("category") or None,
                area=p.get("district") or p.get("subunit") or None,
                cost=float(costs[i]),
            )
            for i, p in enumerate(self.projects)
        ]

    # -- ballots ----------------------------------------------------------------------

    def ballot_lists(self) -> list[list[int]]:
        """Each ballot's project positions in the order written (any vote type)."""
        where = {pid: i for i, pid in enumerate(self.project_ids)}
        return [[where[x] for x in _split_ids(v.get("vote", ""))] for v in self.votes]

    def approvals(self) -> Approvals:
        """Approval ballots over project positions; ``unsupported_vote_type`` otherwise."""
        if self.vote_type not in APPROVAL_VOTE_TYPES:
            raise RankingError(
                "unsupported_vote_type",
                f"only approval ballots are supported, this file has {self.vote_type!r}",
                {"vote_type": self.vote_type},
            )
        return Approvals.from_lists(self.ballot_lists())

    def scores(self) -> np.ndarray:
        """Per-project support: approvals counted from the ballots, or the points for
        cumulative/scoring ballots (``points`` column). Falls back to the PROJECTS
        ``score``/``votes`` column when there are no ballots."""
        n = len(self.projects)
        out = np.zeros(n, dtype=np.float64)
        if not self.votes:
            column = "score" if self.vote_type in ("cumulative", "scoring") else "votes"
            for i, p in enumerate(self.projects):
                value = p.get(column) or p.get("votes") or "0"
                out[i] = _number(value)
            return out
        points = self.vote_type in ("cumulative", "scoring")
        for ballot, v in zip(self.ballot_lists(), self.votes, strict=True):
            if points and v.get("points"):
                for pos, pts in zip(ballot, v["points"].split(","), strict=False):
                    out[pos] += _number(pts)
            else:
                out[ballot] += 1
        return out

    # -- building ---------------------------------------------------------------------

    @classmethod
    def from_election(
        cls,
        approvals: Approvals,
        costs: np.ndarray,
        budget: float,
        names: list[str] | None = None,
        meta: dict[str, str] | None = None,
    ) -> PbInstance:
        """An approval election as a pabulib instance (project ids ``1..n``)."""
        costs = np.asarray(costs, dtype=np.float64)
        n_projects = len(costs)
        ids = [str(i + 1) for i in range(n_projects)]
        counts = np.bincount(np.asarray(approvals.indices, dtype=np.int64), minlength=n_projects)
        projects = [
            {
                "project_id": ids[i],
                "cost": _fmt_number(costs[i]),
                "votes": str(int(counts[i])),
                "name": names[i] if names else f"Project {ids[i]}",
            }
            for i in range(n_projects)
        ]
        votes = []
        for b in range(approvals.n_ballots):
            chosen = approvals.indices[approvals.indptr[b] : approvals.indptr[b + 1]]
            votes.append({"voter_id": str(b + 1), "vote": ",".join(ids[int(j)] for j in chosen)})
        head = {
            "description": "generated",
            "num_projects": str(n_projects),
            "num_votes": str(approvals.n_ballots),
            "budget": _fmt_number(budget),
            "vote_type": "approval",
        }
        head.update(meta or {})
        return cls(meta=head, projects=projects, votes=votes)


def _number(text: str) -> float:
    text = str(text).strip().replace(",", ".")
    if not text:
        raise ValueError("empty")
    return float(text)


def _fmt_number(x: float) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def _split_ids(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _error(message: str, line: int) -> RankingError:
    return RankingError("pb_parse_error", f"line {line}: {message}", {"line": line})


def parse(text: str) -> PbInstance:
    """Parse ``.pb`` text (see the module docstring for what is accepted)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"')
    inst = PbInstance()
    section: str | None = None
    header: list[str] | None = None
    seen: list[str] = []
    project_pos: dict[str, int] = {}
    voter_ids: set[str] = set()
    try:
        for row in reader:
            line = reader.line_num
            cells = [c.strip() for c in row]
            if not cells or all(not c for c in cells):
                continue
            name = cells[0].upper()
            if name in SECTIONS and all(not c for c in cells[1:]):
                expected = SECTIONS[len(seen)] if len(seen) < len(SECTIONS) else None
                if name != expected:
                    raise _error(
                        f"section {name} out of place (expected {expected or 'end'})", line
                    )
                seen.append(name)
                section, header = name, None
                continue
            if section is None:
                raise _error("the file must start with META", line)
            if header is None:
                header = _header(section, cells, line)
                continue
            if len(cells) != len(header):
                raise _error(
                    f"{section} row has {len(cells)} fields, the header has {len(header)}", line
                )
            record = dict(zip(header, cells, strict=True))
            if section == "META":
                key = record[header[0]]
                if not key:
                    raise _error("META row without a key", line)
                if key in inst.meta:
                    raise _error(f"META key {key!r} repeated", line)
                inst.meta[key] = record[header[1]]
            elif section == "PROJECTS":
                pid = record["project_id"]
                if not pid:
                    raise _error("project without project_id", line)
                if pid in project_pos:
                    raise _error(f"project_id {pid!r} repeated", line)
                try:
                    cost = _number(record["cost"])
                except ValueError:
                    raise _error(
                        f"project {pid!r}: cost {record['cost']!r} is not a number", line
                    ) from None
                if cost < 0:
                    raise _error(f"project {pid!r}: negative cost", line)
                project_pos[pid] = len(inst.projects)
                inst.projects.append(record)
            else:
                vid = record["voter_id"]
                if vid in voter_ids:
                    raise _error(f"voter_id {vid!r} repeated", line)
                voter_ids.add(vid)
                ids = _split_ids(record["vote"])
                unknown = [x for x in ids if x not in project_pos]
                if unknown:
                    raise _error(f"vote for unknown project {unknown[0]!r}", line)
                if len(set(ids)) != len(ids):
                    raise _error("a ballot names the same project twice", line)
                points = record.get("points")
                if points is not None and points and len(points.split(",")) != len(ids):
                    raise _error("points and vote have different lengths", line)
                inst.votes.append(record)
    except csv.Error as exc:
        raise _error(f"malformed CSV: {exc}", reader.line_num) from None
    end = reader.line_num + 1
    if seen != list(SECTIONS):
        missing = [s for s in SECTIONS if s not in seen]
        raise _error(f"missing section(s): {', '.join(missing)}", end)
    if header is None:
        raise _error("VOTES section has no header line", end)
    if "budget" not in inst.meta:
        raise _error("META has no budget", end)
    try:
        _number(inst.meta["budget"])
    except ValueError:
        raise _error(f"META budget {inst.meta['budget']!r} is not a number", end) from None
    return inst


_REQUIRED = {
    "META": ("key", "value"),
    "PROJECTS": ("project_id", "cost"),
    "VOTES": ("voter_id", "vote"),
}


def _header(section: str, cells: list[str], line: int) -> list[str]:
    if len(set(cells)) != len(cells) or any(not c for c in cells):
        raise _error(f"{section} header has empty or repeated column names", line)
    if section == "META":
        if len(cells) != 2:
            raise _error("META header must be 'key;value'", line)
        return cells
    missing = [c for c in _REQUIRED[section] if c not in cells]
    if missing:
        raise _error(f"{section} header lacks column(s): {', '.join(missing)}", line)
    return cells


def read(path) -> PbInstance:
    """Parse a ``.pb`` file (UTF-8, optional BOM)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return parse(fh.read())


def dumps(inst: PbInstance) -> str:
    """``.pb`` text for ``inst`` (LF line ends; fields quoted only when needed).

    Columns are the union of the rows' keys in order of first appearance; a row without
    a column gets an empty field. ``parse(dumps(x)) == x`` for every parsed instance.
    """
    out = io.StringIO()
    writer = csv.writer(
        out, delimiter=";", quotechar='"', lineterminator="\n", quoting=csv.QUOTE_MINIMAL
    )
    out.write("META\n")
    writer.writerow(["key", "value"])
    for key, value in inst.meta.items():
        writer.writerow([key, value])
    for name, rows, first in (
        ("PROJECTS", inst.projects, ["project_id", "cost"]),
        ("VOTES", inst.votes, ["voter_id", "vote"]),
    ):
        out.write(name + "\n")
        columns: list[str] = []
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
        for key in reversed(first):
            if key not in columns:
                columns.insert(0, key)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    return out.getvalue()


RULES = ("greedy", "greedy-no-skip", "equalshares", "equalshares/add1", "equalshares/add1/greedy")


def run_rule(inst: PbInstance, rule: str | None = None) -> list[int]:
    """Run the rule named in META ``rule`` (or ``rule``); returns project positions.

    * ``greedy`` / ``greedy-no-skip``: projects by support (approvals, or points for
      cumulative/scoring ballots) descending, ties by file order; projects below META
      ``min_project_score_threshold`` are not eligible;
    * ``equalshares``, ``equalshares/add1``, ``equalshares/add1/greedy``: Method of Equal
      Shares with cost utilities (``budget.equal_shares``), ties by support then file
      order.
    """
    rule = (rule or inst.rule or "").strip().lower()
    costs, budget = inst.costs(), inst.budget
    support = inst.scores()
    by_support = sorted(range(len(costs)), key=lambda i: (-support[i], i))
    if rule in ("greedy", "greedy-no-skip"):
        threshold = inst.meta.get("min_project_score_threshold")
        if threshold:
            floor = _number(threshold)
            by_support = [i for i in by_support if support[i] >= floor]
        return greedy_budget(by_support, costs, budget, skip=rule == "greedy")
    completions = {
        "equalshares": None,
        "equalshares/add1": "add1",
        "equalshares/add1/greedy": "add1_greedy",
    }
    if rule in completions:
        return equal_shares(inst.approvals(), costs, budget, by_support, completions[rule])
    raise RankingError(
        "unsupported_rule", f"rule {rule!r} is not one of {', '.join(RULES)}", {"rule": rule}
    )
