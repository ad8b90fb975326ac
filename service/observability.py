"""Logs as one JSON object per line, request ids, and Prometheus metrics.

Metrics work under several gunicorn processes: with PROMETHEUS_MULTIPROC_DIR set
(`votes serve` sets it for gunicorn, whose on_starting hook empties it) every process
writes its samples there and /metrics aggregates them (prometheus-client multiprocess
mode). /metrics is for Prometheus on the internal network: with METRICS_TOKEN set it needs
`Authorization: Bearer <token>`; without a token it is open in development and off (404)
in production. The nginx config never passes it on.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from .errors import ApiError
from .queues import ALL
from .queues import depth as queue_depth
from .redis_conn import get_redis

_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _MULTIPROC_DIR and not os.path.isdir(_MULTIPROC_DIR):
    # Set (an image or a shell exports it for every process) but only gunicorn's
    # on_starting creates it: a one-off command (`votes demo load`, `votes pb import`)
    # crashed on its first metric. Create it, as multiprocess mode expects. Its samples
    # are real counts; in the web container they are added to /metrics, elsewhere nobody
    # scrapes them. (Samples are written to it from the first metric on, not at import.)
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)


BALLOTS = Counter(
    "votes_ballots_total",
    "Ballots by outcome (accepted, replayed, or the refusal code)",
    ["outcome"],
)
SCORES = Counter(
    "votes_scores_total",
    "Expert scores by outcome (created, revised, or the refusal code)",
    ["outcome"],
)
SMS_SENDS = Counter(
    "votes_sms_sends_total",
    "SMS one-time code requests by outcome (sent, failed, or the refusal code)",
    ["outcome"],
)
SMS_CHECKS = Counter(
    "votes_sms_checks_total",
    "SMS codes checked on ballots by outcome (accepted, or the refusal code)",
    ["outcome"],
)
SMS_BUDGET_EXHAUSTED = Counter(
    "votes_sms_budget_exhausted_total",
    "Code requests refused because the campaign's daily SMS budget was used up",
    ["campaign"],
)
LATENCY = Histogram(
    "votes_request_seconds",
    "Request latency by endpoint",
    ["endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# A caller's X-Request-ID is kept only if it is a short token that cannot carry a voter
# identifier: safe characters, at least one letter (a phone number is all digits) and
# nothing phone- or ID-shaped (checked with _VOTER_LIKE below); otherwise a new id.
_REQUEST_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9._-]{1,64}$")
# Whatever looks like a phone or ID number is masked in log messages: a last line of
# defence (the code never logs voter identifiers on purpose).
_VOTER_LIKE = re.compile(
    r"(?<!\d)(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}(?!\d)|(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])"
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _VOTER_LIKE.sub("[redacted]", record.getMessage()),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exc"] = _VOTER_LIKE.sub("[redacted]", self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.request_id = g.get("request_id")
        except RuntimeError:  # outside a request
            record.request_id = None
        return True


def configure_logging(level: str | None = None) -> None:
    """One JSON object per line on stdout, for every logger (idempotent)."""
    root = logging.getLogger()
    if any(getattr(h, "_votes_json", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler._votes_json = True  # type: ignore[attr-defined]  # our marker
    root.handlers = [
        h
        for h in root.handlers
        if not isinstance(h, logging.StreamHandler)
        or getattr(h, "stream", None) not in (sys.stdout, sys.stderr)
    ]
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    # rq's command line gives its loggers a plain handler of their own: every worker line
    # came out twice, once not as JSON. Its records now go through the root handler only.
    for name in ("rq", "rq.worker", "rq.scheduler", "rq.job", "rq.queue"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True


def init_app(app: Flask) -> None:
    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-ID", "")
        sane = _REQUEST_ID.match(incoming) and not _VOTER_LIKE.search(incoming)
        g.request_id = incoming if sane else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        started = g.get("started")
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule else "unmatched"
            LATENCY.labels(endpoint, request.method).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def metrics():
        _check_metrics_access(app)
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        body = generate_latest(registry) + generate_latest(_StateCollector(app))
        return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _check_metrics_access(app: Flask) -> None:
    token = app.config.get("METRICS_TOKEN")
    if not token:
        if app.config.get("VOTES_ENV") == "production":
            # No token, no metrics: an unauthenticated /metrics must not reach the public.
            raise ApiError(404, "not_found")
        return
    sent = request.headers.get("Authorization", "")
    scheme, _, credentials = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    ):
        raise ApiError(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})


class _StateCollector:
    """Gauges read at scrape time: queue depth and the last successful nightly run."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self):
        depth = GaugeMetricFamily(
            "votes_queue_depth", "Jobs waiting per RQ queue", labels=["queue"]
        )
        try:
            conn = get_redis(self.app.config["REDIS_URL"])
            for name in ALL:
                depth.add_metric([name], queue_depth(name, conn))
        except Exception:  # Redis down: /readyz says so; metrics must still answer
            pass
        yield depth
        nightly = GaugeMetricFamily(
            "votes_nightly_last_success_timestamp_seconds",
            "When the last nightly run finished successfully",
        )
        try:
            conn = get_redis(self.app.config["REDIS_URL"])
            value = conn.get(NIGHTLY_SUCCESS_KEY)
            if value:
                nightly.add_metric([], float(value))
        except Exception:
            pass
        yield nightly


NIGHTLY_SUCCESS_KEY = "votes:nightly:last_success"
