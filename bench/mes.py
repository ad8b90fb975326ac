"""Section 4: the engine's Method of Equal Shares against pabutools (the reference).

* Real pabulib elections with ``equalshares/add1`` (``PABULIB_ADD1``: Assen 2024, 84
  voters; Świecie 2023, when its file is in ``PABULIB_DIR``): the engine's ``run_rule``
  against pabutools' ``method_of_equal_shares(sat_class=Cost_Sat,
  voter_budget_increment=1)``, side by side in the same rounds; both must give the same
  winners, and the official ones where the file has them. A missing file is reported as
  skipped (not measured), never as met.
* ``generate_instance(20000, 100, seed=1)``: plain MES (no completion) on both:
  pabutools' add1 runs for minutes there (it was stopped after more than two minutes
  on this machine), far beyond the bench's time budget.

Only the rule is timed (each side's election object is built beforehand). The engine's
times are milliseconds, so each of its rounds is the mean of several calls.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.stats import median
from engine.budget import equal_shares
from engine.pabulib import read, run_rule
from engine.synth import generate_instance

ROOT = Path(__file__).resolve().parent.parent
GENERATED = (20000, 100, 1)  # voters, projects, seed


def pabulib_dir() -> Path:
    env = os.environ.get("PABULIB_DIR")
    return Path(env) if env else ROOT / ".." / "shared" / "data" / "pabulib"


def _time(fn, repeat: int = 1):
    started = time.perf_counter()
    for _ in range(repeat):
        result = fn()
    return (time.perf_counter() - started) / repeat, result


def _engine_repeat(seconds: float) -> int:
    return max(1, min(50, int(0.5 / max(seconds, 1e-6))))


# key -> (label, file name patterns in PABULIB_DIR, first match wins)
PABULIB_ADD1 = {
    "assen": ("Assen 2024", ("Netherlands_Assen_2024.pb",)),
    "swiecie": ("Świecie 2023", ("Poland_Swiecie_2023*.pb", "Poland_Świecie_2023*.pb")),
}


def _find(patterns) -> Path | None:
    folder = pabulib_dir()
    for pattern in patterns:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    return None


def pabulib_add1(key: str, rounds: int, log) -> dict:
    from pabutools.election import Cost_Sat, parse_pabulib
    from pabutools.rules import method_of_equal_shares

    label, patterns = PABULIB_ADD1[key]
    path = _find(patterns)
    if path is None:
        return {
            "instance": label,
            "skipped": f"no {' or '.join(patterns)} in {pabulib_dir()} (set PABULIB_DIR)",
        }
    inst = read(path)
    p_inst, p_profile = parse_pabulib(str(path))
    first, _ = _time(lambda: run_rule(inst, "equalshares/add1"))
    repeat = _engine_repeat(first)
    engine, reference, speedups = [], [], []
    selected = inst.selected()
    official = None if selected is None else {inst.project_ids[j] for j in selected}
    for r in range(rounds):
        e, ours = _time(lambda: run_rule(inst, "equalshares/add1"), repeat)
        p, theirs = _time(
            lambda: method_of_equal_shares(
                p_inst, p_profile, sat_class=Cost_Sat, voter_budget_increment=1
            )
        )
        ours_ids = {inst.project_ids[j] for j in ours}
        theirs_ids = {str(p.name) for p in theirs}
        assert ours_ids == theirs_ids, f"{label}: engine {ours_ids} != pabutools {theirs_ids}"
        if official is not None:
            assert ours_ids == official, f"{label}: engine {ours_ids} != official {official}"
        engine.append(e)
        reference.append(p)
        speedups.append(p / e)
        log(f"  {label} round {r + 1}: engine {e * 1000:.2f} ms, pabutools {p * 1000:.0f} ms")
    return {
        "instance": f"{label} ({path.name})",
        "rule": "equalshares/add1",
        "voters": len(inst.votes),
        "projects": len(inst.projects),
        "engine_seconds": median(engine),
        "pabutools_seconds": median(reference),
        "speedup": median(speedups),
        "same_winners": True,
        "official_winners": official is not None,
        "winners": sorted(ours_ids, key=lambda x: (len(x), x)),
    }


def generated(rounds: int, log) -> dict:
    from pabutools.election import ApprovalBallot, ApprovalProfile, Cost_Sat, Instance, Project
    from pabutools.rules import method_of_equal_shares

    n_voters, n_projects, seed = GENERATED
    approvals, costs, budget = generate_instance(n_voters, n_projects, seed)
    tie_order = list(range(n_projects))
    # Names sort like tie_order, so pabutools' tie-breaking (by name) is the engine's.
    projects = [Project(f"p{i:03d}", int(c)) for i, c in enumerate(costs)]
    p_inst = Instance(projects, budget_limit=int(budget))
    p_profile = ApprovalProfile(
        [
            ApprovalBallot([projects[j] for j in approvals.indices[lo:hi]])
            for lo, hi in zip(approvals.indptr[:-1], approvals.indptr[1:], strict=True)
        ]
    )
    first, _ = _time(lambda: equal_shares(approvals, costs, budget, tie_order, None))
    repeat = _engine_repeat(first)
    engine, reference, speedups = [], [], []
    for r in range(rounds):
        e, ours = _time(lambda: equal_shares(approvals, costs, budget, tie_order, None), repeat)
        p, theirs = _time(lambda: method_of_equal_shares(p_inst, p_profile, sat_class=Cost_Sat))
        theirs_pos = [int(p.name[1:]) for p in theirs]
        assert sorted(ours) == sorted(theirs_pos), "generated: different MES winners"
        engine.append(e)
        reference.append(p)
        speedups.append(p / e)
        log(f"  generated round {r + 1}: engine {e * 1000:.1f} ms, pabutools {p:.2f} s")
    return {
        "instance": f"generate_instance({n_voters}, {n_projects}, seed={seed})",
        "rule": "equalshares (plain MES; pabutools' add1 takes minutes here)",
        "voters": n_voters,
        "projects": n_projects,
        "engine_seconds": median(engine),
        "pabutools_seconds": median(reference),
        "speedup": median(speedups),
        "same_winners": True,
        "winners": len(ours),
    }


def run(rounds: int, log) -> dict:
    out = {key: pabulib_add1(key, rounds, log) for key in PABULIB_ADD1}
    out["generated"] = generated(rounds, log)
    return out
