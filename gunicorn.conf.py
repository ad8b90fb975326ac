"""gunicorn settings for the web tier (`votes serve`, the compose file, the benchmarks)."""

import multiprocessing
import os
import shutil

# HOST and PORT as service/config.py's web_address(): this machine only (127.0.0.1) in
# development, every interface in production (the container, behind the proxy).
_host = os.environ.get("HOST") or (
    "0.0.0.0" if os.environ.get("VOTES_ENV") == "production" else "127.0.0.1"
)
_port = os.environ.get("PORT") or "8000"
bind = f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"
# Two processes per core with a few threads each: requests mostly wait on the database.
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count() * 2)))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 30
# SIGTERM: stop accepting, let in-flight requests finish (ballots are committed before
# the answer, so a request cut short never half-records a vote).
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then (memory creep), not all at once.
max_requests = 5000
max_requests_jitter = 500
accesslog = "-"
access_log_format = (
    '{"ts":"%(t)s","level":"info","logger":"gunicorn.access","request_id":"%({x-request-id}o)s",'
    '"method":"%(m)s","path":"%(U)s","status":%(s)s,"bytes":"%(B)s","duration_ms":%(M)s}'
)
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):
    # prometheus-client multiprocess mode: a clean directory per server start.
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
