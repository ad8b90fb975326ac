"""Sections 1 and 2: kiosk ballots under wrk, and batch uploads, against the bare app."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import uuid
from pathlib import Path

from bench.campaigns import N_ENTRIES, codes, create_campaign, register_kiosk
from bench.env import BENCH_DIR, Stack
from bench.stats import median
from tests.processes import http

LUA = BENCH_DIR / "ballots.lua"
CONNECTIONS = 16
WRK_THREADS = 2
BATCH_SIZE = 500


def run_wrk(
    base: str, path: str, token: str, prefix: str, duration: int, script: Path = LUA
) -> dict:
    """One wrk run; returns requests/s, latency percentiles (ms) and non-201 answers."""
    env = {
        **os.environ,
        "BENCH_PATH": path,
        "BENCH_TOKEN": token,
        "BENCH_RUN": str(random.getrandbits(32)),
        "BENCH_PREFIX": prefix,
        "BENCH_ENTRIES": str(N_ENTRIES),
    }
    argv = [
        "wrk",
        f"-c{CONNECTIONS}",
        f"-t{WRK_THREADS}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base,
    ]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    raw = json.loads(line[len("BENCH ") :])
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "rps": raw["requests"] / seconds,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "non201": raw["non201"],
        "socket_errors": raw["socket_errors"],
        "samples": raw["samples"].strip(" |"),
    }


def kiosk(stack: Stack, rounds: int, duration: int, log) -> dict:
    """Section 1: form-encoded kiosk ballots, 16 connections, service vs bare app."""
    create_campaign(stack, "kiosk")
    token = register_kiosk(stack, "bench kiosk")
    path_service = "/api/v1/campaigns/kiosk/ballots"
    path_bare = "/campaigns/kiosk/ballots"
    # Warm-up (imports, connection pools, caches): voters 19…, not part of any round.
    run_wrk(stack.service, path_service, token, "9", 2)
    run_wrk(stack.bare, path_bare, token, "9", 2)
    service, bare = [], []
    for r in range(rounds):
        # Phone numbers 13…, 14…, 15…: every round's voters are new to the campaign.
        service.append(run_wrk(stack.service, path_service, token, str(3 + r), duration))
        bare.append(run_wrk(stack.bare, path_bare, token, str(3 + r), duration))
        log(
            f"  kiosk round {r + 1}: service {service[-1]['rps']:.0f} req/s "
            f"(p99 {service[-1]['p99_ms']:.1f} ms, non-201 {service[-1]['non201']}), "
            f"bare {bare[-1]['rps']:.0f} req/s"
        )
    return summarise_wrk(service, bare)


def summarise_wrk(service: list[dict], bare: list[dict]) -> dict:
    def med(runs, key):
        return median([x[key] for x in runs])

    out = {
        "connections": CONNECTIONS,
        "wrk_threads": WRK_THREADS,
        "service": {k: med(service, k) for k in ("rps", "p50_ms", "p90_ms", "p99_ms")},
        "bare": {k: med(bare, k) for k in ("rps", "p50_ms", "p90_ms", "p99_ms")},
        "ratio": median([s["rps"] / b["rps"] for s, b in zip(service, bare, strict=True)]),
        "non201": sum(x["non201"] for x in service),
        "bare_non201": sum(x["non201"] for x in bare),
        "socket_errors": sum(x["socket_errors"] for x in service + bare),
        "non201_samples": [x["samples"] for x in service if x["samples"]],
        "rounds": {"service": service, "bare": bare},
    }
    out["service"]["requests"] = sum(x["requests"] for x in service)
    return out


def _phone(prefix: int, n: int) -> str:
    return f"1{prefix}{n:09d}"


class Voters:
    """Distinct valid mobile numbers, never repeated within one bench run."""

    def __init__(self, prefix: int = 3) -> None:
        self.prefix = prefix
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return _phone(self.prefix, self.n)


def make_batch(voters: Voters, size: int = BATCH_SIZE) -> dict:
    all_codes = codes()
    ballots = []
    for _ in range(size):
        ballots.append(
            {
                "ballot_id": str(uuid.uuid4()),
                "voter_id": voters.next(),
                "choices": random.sample(all_codes, 3),
            }
        )
    return {"ballots": ballots}


def post_batches(url: str, headers: dict, batches: list[dict]) -> tuple[float, int]:
    """Sequential batch posts; (seconds, number of ballots not accepted)."""
    rejected = 0
    started = time.perf_counter()
    for body in batches:
        status, _, parsed = http("POST", url, body, headers, timeout=120)
        if status != 200:
            raise RuntimeError(f"batch POST {url} -> {status}: {str(parsed)[:300]}")
        rejected += sum(1 for r in parsed["results"] if r["status"] != "accepted")
    return time.perf_counter() - started, rejected


def post_singles(url: str, headers: dict, ballots: list[dict]) -> tuple[float, int]:
    """Sequential single-ballot posts (form-encoded, like a kiosk); (seconds, answers that were not 201)."""
    bad = 0
    started = time.perf_counter()
    for ballot in ballots:
        if http("POST", url, ballot, headers, form=True, timeout=30)[0] != 201:
            bad += 1
    return time.perf_counter() - started, bad


def batch(stack: Stack, rounds: int, requests: int, singles: int, log) -> dict:
    """Section 2: ballots/s through POST …/ballots/batch (500 each), service vs bare."""
    create_campaign(stack, "batch")
    create_campaign(stack, "batch-bare")
    token = register_kiosk(stack, "bench batch kiosk")
    auth = {"Authorization": f"Bearer {token}"}
    url_service = f"{stack.service}/api/v1/campaigns/batch/ballots/batch"
    url_bare = f"{stack.bare}/campaigns/batch-bare/ballots/batch"
    voters = Voters(prefix=3)
    post_batches(url_service, auth, [make_batch(voters)])  # warm-up
    post_batches(url_bare, auth, [make_batch(voters)])
    service, bare, single, single_bare, rejected = [], [], [], [], 0
    for r in range(rounds):
        batches = [make_batch(voters) for _ in range(requests)]
        n = requests * BATCH_SIZE
        seconds, bad = post_batches(url_service, auth, batches)
        rejected += bad
        service.append(n / seconds)
        batches = [make_batch(voters) for _ in range(requests)]
        seconds, _ = post_batches(url_bare, auth, batches)
        bare.append(n / seconds)
        ones = make_batch(voters, singles)["ballots"]
        seconds, bad = post_singles(f"{stack.service}/api/v1/campaigns/batch/ballots", auth, ones)
        rejected += bad
        single.append(singles / seconds)
        ones = make_batch(voters, singles)["ballots"]
        seconds, _ = post_singles(f"{stack.bare}/campaigns/batch/ballots", auth, ones)
        single_bare.append(singles / seconds)
        log(
            f"  batch round {r + 1}: service {service[-1]:.0f} ballots/s, bare insert "
            f"{bare[-1]:.0f} ballots/s; single {single[-1]:.0f}/s (bare {single_bare[-1]:.0f}/s)"
        )
    return {
        "batch_size": BATCH_SIZE,
        "requests_per_round": requests,
        "service_ballots_per_s": median(service),
        "bare_ballots_per_s": median(bare),
        "ratio": median([s / b for s, b in zip(service, bare, strict=True)]),
        "single_ballots_per_s": median(single),
        "single_bare_per_s": median(single_bare),
        "single_ratio": median([s / b for s, b in zip(single, single_bare, strict=True)]),
        "batch_vs_single": median(service) / median(single),
        "rejected": rejected,
        "rounds": {"service": service, "bare": bare, "single": single, "single_bare": single_bare},
    }
