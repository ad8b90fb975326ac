"""Section 6: the public results page of a published 90-entry campaign under wrk.

The campaign (90 entries, 20,000 loaded ballots, 15 experts' scores) is ranked and
published through the API by a real ``votes worker``; then wrk (-t2 -c16) GETs
``/results/<slug>`` on the service and ``/healthz`` on the bare Flask app under the same
gunicorn config, and then the JSON results (``/api/v1/campaigns/<slug>/results``) the
same way (``out["json"]``). Every answer other than 200 is counted. Plain GETs without
``If-None-Match`` or ``Accept-Encoding``: each answer is the whole uncompressed body
(served from the cache after the first render per worker), not a 304. Then the page
once more with ``Accept-Encoding: gzip``, as browsers send it (``out["page_gzip"]``),
and the sizes of both bodies.
"""

from __future__ import annotations

import os
import time
import urllib.request
from datetime import datetime

import psycopg

from bench import load
from bench.campaigns import create_campaign
from bench.env import BENCH_DIR, Stack
from bench.ingest import run_wrk, summarise_wrk
from bench.ranking import Worker, ranking_run
from tests.processes import http

GET_LUA = BENCH_DIR / "get.lua"
SLUG = "results-90"
N_ENTRIES = 90
BALLOTS = 20_000


def _publish(stack: Stack, url: str, log) -> int:
    campaign = create_campaign(stack, SLUG, window="closed", n_entries=N_ENTRIES)
    with psycopg.connect(url) as conn:
        campaign_id = conn.execute("SELECT id FROM campaigns WHERE slug = %s", (SLUG,)).fetchone()[
            0
        ]
        entry_ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM entries WHERE campaign_id = %s ORDER BY code", (campaign_id,)
            )
        ]
        voting = campaign["voting"]
        load.load_ballots(
            conn,
            campaign_id,
            entry_ids,
            BALLOTS,
            datetime.fromisoformat(voting["opens_at"]),
            datetime.fromisoformat(voting["closes_at"]),
            seed=90,
        )
        load.load_experts(conn, campaign_id, entry_ids, seed=90)
    worker = Worker(stack)
    try:
        ranking_run(stack, SLUG)
        stack.call("POST", f"/api/v1/campaigns/{SLUG}/publications", {}, ok=(202,))
        deadline = time.monotonic() + 120
        while True:
            status, _, _ = http("GET", f"{stack.service}/api/v1/campaigns/{SLUG}/results")
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the publication did not appear within 120 s")
            time.sleep(0.1)
    finally:
        worker.stop()
    status, _, page = http("GET", f"{stack.service}/results/{SLUG}")
    size = len(page if isinstance(page, (bytes, str)) else b"")
    log(f"  published {SLUG}: {N_ENTRIES} entries, {BALLOTS:,} ballots; page status {status}")
    return size


def _measure(stack: Stack, path: str, what: str, rounds: int, duration: int, log) -> dict:
    """wrk on ``path`` and on the bare app's /healthz, round after round."""
    run_wrk(stack.service, path, "", "9", 2, script=GET_LUA)  # warm-up: a render per worker
    run_wrk(stack.bare, "/healthz", "", "9", 2, script=GET_LUA)
    service, bare = [], []
    for r in range(rounds):
        service.append(run_wrk(stack.service, path, "", "9", duration, script=GET_LUA))
        bare.append(run_wrk(stack.bare, "/healthz", "", "9", duration, script=GET_LUA))
        log(
            f"  {what} round {r + 1}: service {service[-1]['rps']:.0f} req/s "
            f"(p99 {service[-1]['p99_ms']:.1f} ms, non-200 {service[-1]['non201']}), "
            f"bare {bare[-1]['rps']:.0f} req/s (p99 {bare[-1]['p99_ms']:.1f} ms)"
        )
    out = summarise_wrk(service, bare)
    out["path"] = path
    return out


def _body_bytes(url: str, encoding: str | None) -> int:
    """Bytes on the wire of one answer, with or without Accept-Encoding."""
    headers = {"Accept-Encoding": encoding} if encoding else {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(url, headers=headers), timeout=60) as response:
        return len(response.read())


def run(stack: Stack, url: str, rounds: int, duration: int, log) -> dict:
    _publish(stack, url, log)
    page = f"/results/{SLUG}"
    out = _measure(stack, page, "results page", rounds, duration, log)
    out["entries"] = N_ENTRIES
    out["page_bytes"] = _body_bytes(stack.service + page, None)
    out["page_gzip_bytes"] = _body_bytes(stack.service + page, "gzip")
    log(f"  page: {out['page_bytes']:,} bytes, {out['page_gzip_bytes']:,} with gzip")
    json_path = f"/api/v1/campaigns/{SLUG}/results"
    x = _measure(stack, json_path, "results JSON", rounds, duration, log)
    out["json"] = {
        "path": json_path,
        "rps": x["service"]["rps"],
        "p50_ms": x["service"]["p50_ms"],
        "p99_ms": x["service"]["p99_ms"],
        "requests": x["service"]["requests"],
        "non200": x["non201"],
        "bare_rps": x["bare"]["rps"],
        "ratio": x["ratio"],
        "rounds": x["rounds"],
    }
    os.environ["BENCH_ACCEPT_ENCODING"] = "gzip"
    try:
        z = _measure(stack, page, "results page, gzip", rounds, duration, log)
    finally:
        del os.environ["BENCH_ACCEPT_ENCODING"]
    out["page_gzip"] = {k: z["service"][k] for k in ("rps", "p50_ms", "p99_ms", "requests")}
    out["page_gzip"]["non200"] = z["non201"]
    return out
