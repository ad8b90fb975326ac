"""Metrics, request ids and JSON logs."""

import json
import logging
import secrets
import uuid
from datetime import datetime

import pytest

from service.observability import JsonFormatter
from tests.support import ADMIN


def _sample(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}}" if want else name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_ballots_by_outcome(client, make_campaign, clock):
    """/metrics counts accepted ballots and refusals by their error code."""
    make_campaign()
    clock.set(datetime.fromisoformat("2026-11-22T10:00:00+08:00"))
    before = client.get("/metrics").get_data(as_text=True)
    body = {"ballot_id": str(uuid.uuid4()), "voter_id": "13812345678", "choices": ["A01"]}
    client.post("/api/v1/campaigns/c1/ballots", json=body)
    client.post("/api/v1/campaigns/c1/ballots", json=body)
    client.post("/api/v1/campaigns/c1/ballots", json={**body, "ballot_id": str(uuid.uuid4())})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    after = r.get_data(as_text=True)
    for outcome in ("accepted", "replayed", "already_voted"):
        delta = _sample(after, "votes_ballots_total", outcome=outcome) - _sample(
            before, "votes_ballots_total", outcome=outcome
        )
        assert delta == 1, outcome
    assert 'votes_request_seconds_count{endpoint="/api/v1/campaigns/<slug>/ballots"' in after
    assert 'votes_queue_depth{queue="rankings"}' in after


def test_request_id_is_echoed_or_made(client):
    """Every response carries a request id: the caller's if sane, else a new one."""
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz").headers["X-Request-ID"]
    assert len(made) == 32
    evil = client.get("/healthz", headers={"X-Request-ID": "<script>" + "x" * 100})
    assert "<" not in evil.headers["X-Request-ID"] and len(evil.headers["X-Request-ID"]) == 32


VOTER_LIKE_IDS = [
    "13912345678",
    "+8613912345678",
    "req-13912345678",
    "11010519491231002X",
    "0086-139-1234-5678",
    "12345678",
]


def test_request_id_that_could_carry_a_voter_id_is_replaced(client):
    """A phone or ID number sent as X-Request-ID is neither echoed nor logged: a new id is
    made. Ordinary ids (uuid, nginx's hex $request_id, short tokens) are kept."""
    for sent in VOTER_LIKE_IDS:
        r = client.get("/api/v1/nope", headers={"X-Request-ID": sent})
        made = r.headers["X-Request-ID"]
        assert len(made) == 32 and made != sent
        digits = "".join(c for c in sent if c.isdigit())[-8:]
        assert digits not in made
    for kept in (str(uuid.uuid4()), uuid.uuid4().hex, "abc-123", "web-1.req_42"):
        assert (
            client.get("/healthz", headers={"X-Request-ID": kept}).headers["X-Request-ID"] == kept
        )


@pytest.mark.slow  # a real gunicorn
def test_gunicorn_access_log_never_holds_a_voter_like_request_id(tmp_path):
    """The real gunicorn (gunicorn.conf.py) logs the response's request id, never the raw
    header: a phone number sent as X-Request-ID does not reach the access log."""
    import os

    from tests.processes import free_port, gunicorn, http, wait_healthy

    port = free_port()
    env = {**os.environ, "WEB_CONCURRENCY": "1", "VOTES_INSTANCE": str(tmp_path)}
    web = gunicorn(env, tmp_path, port).start()
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        answers = [
            http("GET", f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": sent})[1]
            for sent in VOTER_LIKE_IDS
        ]
        kept = http("GET", f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": "lb-7f3a"})
    finally:
        web.stop()
    log = web.output()
    access = [json.loads(line) for line in log.splitlines() if '"gunicorn.access"' in line]
    assert len(access) >= len(VOTER_LIKE_IDS) + 1
    for sent, headers in zip(VOTER_LIKE_IDS, answers, strict=True):
        assert headers["X-Request-ID"] != sent
        assert sent not in log
    assert "13912345678" not in log and "1231002X" not in log
    assert kept[1]["X-Request-ID"] == "lb-7f3a" and '"request_id":"lb-7f3a"' in log


def test_json_log_lines_mask_voter_identifiers():
    """A log line is one JSON object, and anything shaped like a phone or ID is masked."""
    record = logging.LogRecord(
        "t",
        logging.WARNING,
        __file__,
        1,
        "voter +86 138-1234-5678 and 11010519491231002X tried",
        None,
        None,
    )
    record.request_id = "r1"
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["request_id"] == "r1"
    assert "5678" not in line and "1231002X" not in line
    assert entry["msg"].count("[redacted]") == 2


def test_metrics_need_no_auth_but_admin_api_does(client):
    """Operators scrape /metrics without a token (bind it to the internal network)."""
    assert client.get("/metrics").status_code == 200
    assert client.get("/api/v1/kiosks").status_code == 401
    assert client.get("/api/v1/kiosks", headers=ADMIN).status_code == 200


def test_metrics_count_scores_by_outcome(client, make_campaign, clock):
    """/metrics counts first scores, revisions and refused scores."""
    make_campaign()
    clock.set(datetime.fromisoformat("2026-11-29T10:00:00+08:00"))
    token = client.post("/api/v1/campaigns/c1/experts", json={"name": "x"}, headers=ADMIN).json[
        "token"
    ]
    headers = {"Authorization": f"Bearer {token}"}
    before = client.get("/metrics").get_data(as_text=True)
    for points in (10, 20, 99):
        client.put(
            "/api/v1/campaigns/c1/entries/A01/score",
            headers=headers,
            json={"scores": {"impact": points, "novelty": 5}},
        )
    after = client.get("/metrics").get_data(as_text=True)
    for outcome in ("created", "revised", "out_of_range"):
        delta = _sample(after, "votes_scores_total", outcome=outcome) - _sample(
            before, "votes_scores_total", outcome=outcome
        )
        assert delta == 1, outcome


def test_worker_log_lines_are_json_once(monkeypatch):
    """rq's own plain handler is removed, so a worker line is printed once, as JSON."""
    import sys

    from service import observability

    rq_logger = logging.getLogger("rq.worker")
    plain = logging.StreamHandler(sys.stdout)
    rq_logger.addHandler(plain)
    root = logging.getLogger()
    monkeypatch.setattr(
        root, "handlers", [h for h in root.handlers if not getattr(h, "_votes_json", False)]
    )
    observability.configure_logging()
    try:
        assert plain not in rq_logger.handlers and rq_logger.propagate
        assert any(getattr(h, "_votes_json", False) for h in root.handlers)
    finally:
        for h in [h for h in root.handlers if getattr(h, "_votes_json", False)]:
            root.removeHandler(h)


def test_metrics_token_is_required_once_configured(make_app):
    """METRICS_TOKEN: /metrics answers only `Authorization: Bearer <token>`."""
    client = make_app(METRICS_TOKEN="scrape-token-0123456789abcdef").test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics").json["error"]["code"] == "unauthorized"
    wrong = {"Authorization": "Bearer scrape-token-0123456789abcdeX"}
    assert client.get("/metrics", headers=wrong).status_code == 401
    assert client.get("/metrics", headers=ADMIN).status_code == 401  # not an admin thing
    right = {"Authorization": "Bearer scrape-token-0123456789abcdef"}
    r = client.get("/metrics", headers=right)
    assert r.status_code == 200 and b"votes_request_seconds" in r.data


def test_metrics_are_off_in_production_without_a_token(make_app):
    client = make_app(
        VOTES_ENV="production", SECRET_KEY=secrets.token_hex(32), VOTER_PEPPER=secrets.token_hex(32)
    ).test_client()
    r = client.get("/metrics")
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
