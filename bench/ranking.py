"""Sections 3 and 5: ranking runs at scale against the bare GROUP BY, and the cost curve.

For each size (ascending: 10k, 100k, 1M ballots) a campaign with 40 entries is created
through the API with its voting window in the past, its ballots are COPY-loaded
(bench.load), 15 experts score every entry, and then, for each round:

* the baseline: ``SELECT entry_id, count(*) FROM ballot_choices WHERE campaign_id = %s
  GROUP BY entry_id`` over the same tables (psycopg, all rows fetched);
* the service: ``POST /api/v1/campaigns/{slug}/rankings`` to the running gunicorn, then a
  real ``votes worker --burst`` (rq) started right after the POST, polling
  ``GET /api/v1/rankings/{run_id}`` until it is finished. The worker runs under
  bench.rusage, which reports the peak resident memory of the worker and its work-horse.

Ingestion at each size: after the load, a few batches of 500 ballots go through the
service's batch endpoint and the bare app's batch insert into the same tables, so the
ballots/s are measured with the tables holding 10k, 110k and 1.11M ballots.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime

import psycopg

from bench import load
from bench.campaigns import create_campaign, register_kiosk
from bench.env import ROOT, VOTES, Stack
from bench.ingest import BATCH_SIZE, Voters, make_batch, post_batches
from bench.stats import median
from tests.processes import http

POLL = 0.05
SAMPLE_BATCHES = 2  # batches of 500 per round and size for the ingestion curve


def bare_count(url: str, campaign_id: int) -> tuple[float, int]:
    with psycopg.connect(url) as conn:
        # the catalog lookups of a new connection are not part of the query
        conn.execute("SELECT entry_id FROM ballot_choices WHERE false").fetchall()
        started = time.perf_counter()
        rows = conn.execute(
            "SELECT entry_id, count(*) FROM ballot_choices WHERE campaign_id = %s"
            " GROUP BY entry_id",
            (campaign_id,),
        ).fetchall()
        return time.perf_counter() - started, sum(n for _, n in rows)


class Worker:
    """A long-running ``votes worker`` (rq) under bench.rusage, as production runs it."""

    def __init__(self, stack: Stack) -> None:
        import redis

        self.stack = stack
        self.redis = redis.Redis.from_url(stack.settings.redis_url)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.rusage", VOTES, "worker"],
            env=stack.env(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=open(stack.logdir / "worker.log", "ab"),  # noqa: SIM115
            text=True,
        )
        from rq import Worker as RqWorker

        deadline = time.monotonic() + 60
        while not RqWorker.all(connection=self.redis):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the rq worker did not start; see {stack.logdir}")
            time.sleep(0.1)

    def stop(self) -> float:
        """Warm shut-down; the peak RSS (MB) of the worker and its work-horses."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=120)
        line = next(x for x in out.splitlines() if x.startswith("RUSAGE "))
        return json.loads(line[len("RUSAGE ") :])["maxrss_mb"]


def ranking_run(stack: Stack, slug: str) -> dict:
    """POST the ranking and poll until the (already running) worker has finished it."""
    started = time.perf_counter()
    accepted = stack.call("POST", f"/api/v1/campaigns/{slug}/rankings", {}, ok=(202,))
    run_id = accepted["run_id"]
    deadline = started + 600
    while True:
        status, _, run = http("GET", f"{stack.service}/api/v1/rankings/{run_id}", None, stack.admin)
        if status == 200 and run["status"] in ("finished", "failed"):
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"ranking run {run_id} still {run.get('status')} after 600 s")
        time.sleep(POLL)
    elapsed = time.perf_counter() - started
    if run["status"] != "finished":
        raise RuntimeError(f"ranking run {run_id} {run['status']}: {run.get('error')}")
    job = (
        datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])
    ).total_seconds()
    return {
        "seconds": elapsed,
        "job_seconds": job,
        "ballots_counted": run["result"]["ballots_counted"],
        "result_digest": run["result"]["result_digest"],
    }


def _ingest_sample(stack: Stack, auth: dict, voters: Voters, rounds: int) -> dict:
    service, bare = [], []
    for _ in range(rounds):
        batches = [make_batch(voters) for _ in range(SAMPLE_BATCHES)]
        seconds, rejected = post_batches(
            f"{stack.service}/api/v1/campaigns/curve/ballots/batch", auth, batches
        )
        if rejected:
            raise RuntimeError(f"{rejected} ballots rejected in the curve's ingestion sample")
        service.append(SAMPLE_BATCHES * BATCH_SIZE / seconds)
        batches = [make_batch(voters) for _ in range(SAMPLE_BATCHES)]
        seconds, _ = post_batches(f"{stack.bare}/campaigns/curve-bare/ballots/batch", {}, batches)
        bare.append(SAMPLE_BATCHES * BATCH_SIZE / seconds)
    return {
        "service_ballots_per_s": median(service),
        "bare_ballots_per_s": median(bare),
        "service_us_per_ballot": 1e6 / median(service),
        "bare_us_per_ballot": 1e6 / median(bare),
        "ratio": median([s / b for s, b in zip(service, bare, strict=True)]),
        "rounds": {"service": service, "bare": bare},
    }


def run(stack: Stack, sizes: list[int], rounds: int, log) -> dict:
    url = stack.settings.database_url
    create_campaign(stack, "curve")
    create_campaign(stack, "curve-bare")
    auth = {"Authorization": f"Bearer {register_kiosk(stack, 'bench curve kiosk')}"}
    voters = Voters(prefix=6)
    post_batches(
        f"{stack.service}/api/v1/campaigns/curve/ballots/batch", auth, [make_batch(voters)]
    )
    results = []
    for n in sorted(sizes):
        slug = f"rank-{n}"
        campaign = create_campaign(stack, slug, window="closed")
        t0 = time.perf_counter()
        with psycopg.connect(url) as conn:
            campaign_id = conn.execute(
                "SELECT id FROM campaigns WHERE slug = %s", (slug,)
            ).fetchone()[0]
            entry_ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM entries WHERE campaign_id = %s ORDER BY code", (campaign_id,)
                )
            ]
            voting = campaign["voting"]
            counts = load.load_ballots(
                conn,
                campaign_id,
                entry_ids,
                n,
                datetime.fromisoformat(voting["opens_at"]),
                datetime.fromisoformat(voting["closes_at"]),
                seed=n,
            )
            counts["scores"] = load.load_experts(conn, campaign_id, entry_ids, seed=n)
            total = conn.execute("SELECT count(*) FROM ballots").fetchone()[0]
        load.vacuum_analyze(url)
        load_s = time.perf_counter() - t0
        log(
            f"  {n:,} ballots: loaded {counts['ballots']:,} ballots, {counts['choices']:,} "
            f"choices, {counts['scores']} scores in {load_s:.0f} s (COPY)"
        )
        ingest = _ingest_sample(stack, auth, voters, rounds)
        log(
            f"  {n:,}: ingestion with {total:,} ballots in the table: service "
            f"{ingest['service_ballots_per_s']:.0f} ballots/s, bare "
            f"{ingest['bare_ballots_per_s']:.0f} ballots/s"
        )
        bare, service = [], []
        worker = Worker(stack)
        for r in range(rounds):
            seconds, counted = bare_count(url, campaign_id)
            bare.append(seconds)
            service.append(ranking_run(stack, slug))
            if service[-1]["ballots_counted"] != n:
                raise RuntimeError(f"run counted {service[-1]['ballots_counted']} of {n} ballots")
            log(
                f"  {n:,} round {r + 1}: ranking {service[-1]['seconds']:.2f} s "
                f"(in the job {service[-1]['job_seconds']:.2f} s), bare GROUP BY {seconds:.3f} s"
            )
        peak = worker.stop()
        log(f"  {n:,}: peak RSS of the worker and its work-horses {peak:.0f} MB")
        digests = {x["result_digest"] for x in service}
        results.append(
            {
                "ballots": n,
                "choices": counts["choices"],
                "table_ballots": total,
                "load_seconds": load_s,
                "ranking_seconds": median(x["seconds"] for x in service),
                "job_seconds": median(x["job_seconds"] for x in service),
                "bare_seconds": median(bare),
                "ratio": median(s["seconds"] / b for s, b in zip(service, bare, strict=True)),
                "job_ratio": median(
                    s["job_seconds"] / b for s, b in zip(service, bare, strict=True)
                ),
                "peak_rss_mb": peak,
                "ranking_us_per_ballot": 1e6 * median(x["seconds"] for x in service) / n,
                "bare_us_per_ballot": 1e6 * median(bare) / n,
                "same_digest_every_round": len(digests) == 1,
                "ingest": ingest,
                "rounds": {"service": service, "bare": bare},
            }
        )
    return {"sizes": results}
