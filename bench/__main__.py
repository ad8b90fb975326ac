"""`python -m bench` (`make bench`): run every section, write bench/results.json and .md.

Needs PostgreSQL (BENCH_DATABASE_URL, a server URL; the bench creates and drops its own
database ``votes_bench``), Redis (BENCH_REDIS_URL, default db 9, flushed), wrk and
pabutools; exits 2 naming whatever is missing. Takes about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench import env as bench_env

SECTIONS = ("kiosk", "batch", "ranking", "mes", "results")


def log(message: str) -> None:
    print(message, flush=True)


def machine() -> dict:
    def run(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""

    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((x.split(":", 1)[1].strip() for x in info if x.startswith("model name")), "")
    except OSError:
        pass
    mem = run("free", "-h").splitlines()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": run("nproc"),
        "memory": mem[1].split()[1] if len(mem) > 1 else "",
        "cpu": cpu,
        "python": platform.python_version(),
        "postgres": "",
        "web_concurrency": bench_env.WEB_CONCURRENCY,
        "commit": run("git", "rev-parse", "--short", "HEAD"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    p.add_argument("--rounds", type=int, default=3, help="rounds per figure (median)")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    p.add_argument("--batches", type=int, default=10, help="batch requests per round")
    p.add_argument("--singles", type=int, default=300, help="single ballots per round")
    p.add_argument(
        "--sizes", default="10000,100000,1000000", help="ballot counts of the ranking curve"
    )
    p.add_argument(
        "--out", default=str(bench_env.BENCH_DIR), help="where results.json/.md are written"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        log(f"unknown section(s): {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
        return 2
    settings = bench_env.Settings()
    # the MES section alone needs only pabutools and the pabulib files
    services = any(x in sections for x in ("kiosk", "batch", "ranking", "results"))
    try:
        bench_env.check_prerequisites(settings, services=services)
    except bench_env.Missing as exc:
        print(f"bench: cannot run: {exc}", file=sys.stderr)
        return 2

    from bench import report

    started = time.monotonic()
    results: dict = {
        "machine": machine(),
        "settings": vars(args),
        "sections": {},
        "notes": [
            f"Service env: VOTES_ENV=production, RATELIMIT_BALLOTS_KIOSK="
            f"'{bench_env.KIOSK_RATE_LIMIT}' (still counted: leases of Redis hits, one Redis "
            f"round trip per 20 ballots), BURST_MAX_BALLOTS={bench_env.BURST['BURST_MAX_BALLOTS']} with "
            f"BURST_WINDOW_SECONDS={bench_env.BURST['BURST_WINDOW_SECONDS']} (no ballot "
            "flagged; the check still runs for every kiosk ballot).",
            "Baselines: a bare Flask app (bench/bare_app.py) under the same gunicorn config; "
            "for batches it inserts the same ballots into the same tables with psycopg "
            "executemany; for rankings the bare GROUP BY count over the same tables.",
            "Ranking: a long-running `votes worker` (rq) picks the job up; the time runs "
            "from the POST to the poll that sees the run finished (50 ms polls).",
        ],
    }
    bench_env.OUT_DIR.mkdir(parents=True, exist_ok=True)
    if services:
        log(
            f"bench: database {settings.database_url} (fresh), Redis {settings.redis_url} (flushed)"
        )
        bench_env.fresh_database(settings)
        bench_env.flush_redis(settings)
        results["machine"]["postgres"] = bench_env.server_version(settings)

    if "mes" in sections:
        from bench import mes

        log("4. Method of Equal Shares vs pabutools")
        results["sections"]["mes"] = mes.run(args.rounds, log)

    stack = bench_env.Stack(settings).start() if services else None
    try:
        if "kiosk" in sections:
            from bench import ingest

            log(f"1. kiosk ballots: wrk -c16 -t2 -d{args.duration}s, service vs bare app")
            results["sections"]["kiosk"] = ingest.kiosk(stack, args.rounds, args.duration, log)
        if "batch" in sections:
            from bench import ingest

            log(f"2. batch uploads: {args.batches} x 500 ballots per round")
            results["sections"]["batch"] = ingest.batch(
                stack, args.rounds, args.batches, args.singles, log
            )
        if "ranking" in sections:
            from bench import ranking

            sizes = [int(s) for s in args.sizes.split(",") if s]
            log(f"3/5. ranking runs at {', '.join(f'{n:,}' for n in sizes)} ballots")
            results["sections"]["ranking"] = ranking.run(stack, sizes, args.rounds, log)
        if "results" in sections:
            from bench import results_page

            log(f"6. public results page: wrk -c16 -t2 -d{args.duration}s, service vs bare app")
            results["sections"]["results"] = results_page.run(
                stack, settings.database_url, args.rounds, args.duration, log
            )
    finally:
        if stack is not None:
            stack.stop()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    report.write(results, args.out)
    log(f"bench: done in {results['elapsed_s']:.0f} s; wrote {args.out}/results.json and .md")
    print(json.dumps({"elapsed_s": results["elapsed_s"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
