"""gunicorn settings for the web tier (`votes serve`, the compose file, the benchmarks)."""

import multiprocessing
import os
import shutil

# service.config.MAX_CONTENT_LENGTH (not imported: that would load the whole app package
# into the master process before it forks; tests/test_deployment.py checks they agree).
MAX_CONTENT_LENGTH = 1024 * 1024

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
# Recycle workers now and then (memory creep), not all at once. Not too often: a worker
# restarted under load drops its per-process caches (the rendered results page, the hot
# cache) and the requests queued behind its start-up showed up in the p99. At 5,000 a
# worker serving the results page at 1,000 req/s restarted every 5 s.
max_requests = 50000
max_requests_jitter = 5000
accesslog = "-"
access_log_format = (
    '{"ts":"%(t)s","level":"info","logger":"gunicorn.access","request_id":"%({x-request-id}o)s",'
    '"method":"%(m)s","path":"%(U)s","status":%(s)s,"bytes":"%(B)s","duration_ms":%(M)s}'
)
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn 25.1+ opens a control socket for `gunicornc` at one path per user
# ($XDG_RUNTIME_DIR or ~/.gunicorn/gunicorn.ctl): every instance on a machine took over
# the same socket, and stopping one removed the other's. Nothing here uses gunicornc
# (deployments use signals), so it is off.
control_socket_disable = True


def pre_request(worker, req):
    """Close, and say so, after a request whose body the service will not read whole.

    Flask answers a body over MAX_CONTENT_LENGTH with 413 without reading it; gunicorn
    then drains at most 64 KiB of what is left before reusing the connection, and closes
    it otherwise, after having announced `Connection: keep-alive`, so a kiosk's next
    request on that connection failed. Marking the request for closing makes the 413
    say `Connection: close` (gunicorn then shuts the socket down gracefully). A chunked
    body's size is unknown beforehand, so it is treated the same way (one reconnection).
    """
    for name, value in req.headers:
        if name == "CONTENT-LENGTH":
            if value.strip().isdigit() and int(value) > MAX_CONTENT_LENGTH:
                req.force_close()
        elif name == "TRANSFER-ENCODING" and "chunked" in value.lower():
            req.force_close()


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
