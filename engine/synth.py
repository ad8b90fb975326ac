"""Deterministic synthetic approval elections for tests and benchmarks."""

from __future__ import annotations

import numpy as np

from engine.types import Approvals

__all__ = ["generate_instance"]


def generate_instance(
    n_voters: int, n_projects: int, seed: int = 0
) -> tuple[Approvals, np.ndarray, float]:
    """A participatory-budget-like approval election: ``(approvals, costs, budget)``.

    Same arguments, same result (NumPy ``default_rng(seed)``). Costs are integers from
    1,000 to about 500,000 (log-uniform, rounded to 100), project popularity varies
    (some projects are approved by half the voters, most by a few percent), cheap
    projects are a little more popular, every voter approves at least one project, and
    the budget is a quarter of the total cost (rounded to 1,000).
    """
    if n_voters < 0 or n_projects < 1:
        raise ValueError("need n_voters >= 0 and n_projects >= 1")
    rng = np.random.default_rng(seed)
    costs = np.round(np.exp(rng.uniform(np.log(1_000), np.log(500_000), n_projects)), -2)
    costs = np.maximum(costs, 100.0)
    popularity = rng.beta(0.8, 6.0, n_projects)
    popularity *= 1.5 - 0.5 * (np.log(costs) - np.log(1_000)) / np.log(500)
    popularity = np.clip(popularity, 0.002, 0.9)
    chosen = rng.random((n_voters, n_projects)) < popularity[None, :]
    nobody = ~chosen.any(axis=1)
    if nobody.any():
        fallback = rng.choice(n_projects, size=int(nobody.sum()), p=popularity / popularity.sum())
        chosen[np.flatnonzero(nobody), fallback] = True
    rows, cols = np.nonzero(chosen)
    indptr = np.zeros(n_voters + 1, dtype=np.int64)
    np.cumsum(chosen.sum(axis=1), out=indptr[1:])
    budget = float(max(1_000.0, np.round(costs.sum() / 4, -3)))
    return Approvals(indptr=indptr, indices=cols.astype(np.int64)), costs, budget
