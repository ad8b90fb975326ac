"""What the bench runs against: prerequisites, the dedicated database and Redis db, and
the gunicorn processes (the service and the bare baseline app) with the production config.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.processes import ROOT, Process, free_port, http, wait_healthy

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"  # logs and scratch files (git-ignored)
# BENCH_DB_NAME: several benches at once on one server each need their own database.
DB_NAME = os.environ.get("BENCH_DB_NAME", "votes_bench")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
# Two cores: two gunicorn processes (4 threads each, gunicorn.conf.py) leave room for
# PostgreSQL, Redis and wrk on the same two cores. Override with BENCH_WEB_CONCURRENCY.
WEB_CONCURRENCY = os.environ.get("BENCH_WEB_CONCURRENCY", "2")
# A single kiosk posts thousands of ballots a second here: lift its rate limit so that it
# never trips (Flask-Limiter still counts every request in Redis, so its cost is measured).
KIOSK_RATE_LIMIT = "100000000 per minute"
# Burst flagging (more than BURST_MAX_BALLOTS from one kiosk in BURST_WINDOW_SECONDS) never
# refuses a ballot, but flagging one costs an extra UPDATE, and the check counts up to
# BURST_MAX_BALLOTS + 1 recent ballots of the kiosk. Raised so that nothing is flagged,
# with a one-second window so that the count reads about one second of this kiosk's
# ballots (BENCH_* environment variables override both).
BURST = {
    "BURST_MAX_BALLOTS": os.environ.get("BENCH_BURST_MAX_BALLOTS", "1000000"),
    "BURST_WINDOW_SECONDS": os.environ.get("BENCH_BURST_WINDOW_SECONDS", "1"),
}
VOTES = str(Path(sys.executable).parent / "votes")


class Missing(Exception):
    """A prerequisite is not there; the message says what and how to get it."""


def _with_database(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@dataclass
class Settings:
    server_url: str = field(
        default_factory=lambda: os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    redis_url: str = field(
        default_factory=lambda: os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    )
    admin_token: str = field(default_factory=lambda: "adm_bench_" + secrets.token_urlsafe(24))

    @property
    def database_url(self) -> str:
        return _with_database(self.server_url, DB_NAME)


def check_prerequisites(settings: Settings, services: bool = True) -> None:
    """Raise Missing naming the first missing piece (PostgreSQL, Redis, wrk, pabutools);
    ``services=False`` (the MES section alone) checks only pabutools."""
    if services:
        _check_services(settings)
    try:
        import pabutools  # noqa: F401
    except ImportError:
        raise Missing(
            "pabutools (the reference MES implementation) is not installed: "
            ".venv/bin/pip install -e '.[dev]' (make bench does this)"
        ) from None


def _check_services(settings: Settings) -> None:
    import psycopg
    import redis

    try:
        with psycopg.connect(settings.server_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise Missing(
            f"PostgreSQL is not reachable at {settings.server_url} ({exc.__class__.__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}).\n"
            "  Start it (Debian: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) "
            "main start, or apt-get install postgresql),\n"
            "  or point BENCH_DATABASE_URL at a server where the user may CREATE DATABASE "
            "(e.g. postgresql://postgres@127.0.0.1:5432/postgres)."
        ) from None
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise Missing(
            f"Redis is not reachable at {settings.redis_url} ({exc}).\n"
            "  Start one (apt-get install redis-server; redis-server --daemonize yes "
            "--port 6379 --save ''),\n"
            "  or point BENCH_REDIS_URL at one (the bench flushes that db number: "
            "default redis://127.0.0.1:6379/9)."
        ) from None
    if shutil.which("wrk") is None:
        raise Missing(
            "wrk (HTTP load generator) is not installed: apt-get update && apt-get install -y wrk"
        )


def fresh_database(settings: Settings) -> None:
    """DROP and CREATE votes_bench, then `votes db upgrade` (the migrations) into it."""
    import psycopg

    with psycopg.connect(settings.server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    result = subprocess.run(
        [VOTES, "db", "upgrade"],
        env=service_env(settings, OUT_DIR / "migrate"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"votes db upgrade failed:\n{result.stdout}\n{result.stderr}")


def flush_redis(settings: Settings) -> None:
    import redis

    redis.Redis.from_url(settings.redis_url).flushdb()


_SECRETS = {"SECRET_KEY": secrets.token_hex(32), "VOTER_PEPPER": secrets.token_hex(32)}


def service_env(settings: Settings, instance: Path, **extra: str) -> dict[str, str]:
    """The service's environment: production mode, the bench database and Redis db."""
    instance.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "VOTES_ENV": "production",
        **_SECRETS,
        "ADMIN_TOKEN": settings.admin_token,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "VOTES_INSTANCE": str(instance),
        "VOTES_DEMO": "0",
        "RATELIMIT_BALLOTS_KIOSK": KIOSK_RATE_LIMIT,
        **BURST,
        "WEB_CONCURRENCY": WEB_CONCURRENCY,
    }
    env.update(extra)
    return env


class Stack:
    """The service under gunicorn (as `votes serve` runs it) and the bare app beside it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.logdir = OUT_DIR / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="votes-bench-", dir=OUT_DIR))
        self.service_port = free_port()
        self.bare_port = free_port()
        self.processes: list[Process] = []

    @property
    def service(self) -> str:
        return f"http://127.0.0.1:{self.service_port}"

    @property
    def bare(self) -> str:
        return f"http://127.0.0.1:{self.bare_port}"

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.admin_token}"}

    def env(self, **extra: str) -> dict[str, str]:
        return service_env(self.settings, self.scratch / "instance", **extra)

    def _gunicorn(self, name: str, app: str, port: int) -> Process:
        # What `votes serve` execs: gunicorn -c gunicorn.conf.py, with the metrics directory
        # it sets (prometheus multiprocess mode) and the production settings above.
        env = self.env(PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(self.scratch / f"prom-{name}"))
        argv = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), app]
        return Process(name, argv, env, self.logdir)

    def start(self) -> Stack:
        for name, app, port in (
            ("web", "service.wsgi:app", self.service_port),
            ("bare", "bench.bare_app:app", self.bare_port),
        ):
            log = self.logdir / f"{name}.log"
            log.unlink(missing_ok=True)
            process = self._gunicorn(name, app, port).start()
            self.processes.append(process)
        wait_healthy(self.service)
        wait_healthy(self.bare)
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def call(self, method: str, path: str, body=None, headers=None, timeout=60, ok=(200, 201)):
        status, _, parsed = http(
            method, self.service + path, body, headers or self.admin, timeout=timeout
        )
        if status not in ok:
            raise RuntimeError(f"{method} {path} -> {status}: {parsed}")
        return parsed


def server_version(settings: Settings) -> str:
    import psycopg

    with psycopg.connect(settings.server_url) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]
