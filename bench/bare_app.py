"""The baseline: a bare Flask app served by the same gunicorn config as the service.

* ``POST /campaigns/<slug>/ballots`` parses the same form (``ballot_id``, ``voter_id``,
  ``choices`` repeated, optional ``cast_at``) and answers 201 with a body like the
  service's ``{ballot_id, receipt, accepted_at, choices, channel}``; no database, no
  Redis: what HTTP + gunicorn + Flask cost on this machine.
* ``POST /campaigns/<slug>/ballots/batch`` takes the service's batch document and writes
  the ballots and their choices into the same tables with one psycopg ``executemany``
  per table in one transaction (keyed voter hash, digest, receipt and nonce computed as
  plainly as possible, the ``leaf`` and ``choice_ids`` columns the service writes too,
  no per-ballot savepoint): the least a batch write must cost.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
import threading
import uuid
from datetime import UTC, datetime

from flask import Flask, jsonify, request

app = Flask(__name__)
_local = threading.local()
_campaigns: dict[str, tuple[int, dict[str, int]]] = {}
_PEPPER = os.environ.get("VOTER_PEPPER", "bench").encode()


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.post("/campaigns/<slug>/ballots")
def ballot(slug: str):
    form = request.form
    ballot_id = str(uuid.UUID(form["ballot_id"]))
    voter_id = form["voter_id"]
    choices = sorted(form.getlist("choices"))
    if not voter_id or not choices:
        return jsonify(error="validation_error"), 422
    receipt = hashlib.sha256(f"{ballot_id}{choices}".encode()).hexdigest()[:16].upper()
    body = {
        "ballot_id": ballot_id,
        "receipt": "-".join(receipt[i : i + 4] for i in range(0, 16, 4)),
        "accepted_at": datetime.now(UTC).isoformat(),
        "choices": choices,
        "channel": "kiosk",
    }
    return jsonify(body), 201


def _conn():
    import psycopg

    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        url = os.environ["DATABASE_URL"]
        conn = _local.conn = psycopg.connect(url, autocommit=True)
    return conn


def _campaign(conn, slug: str) -> tuple[int, dict[str, int]]:
    if slug not in _campaigns:
        campaign_id = conn.execute("SELECT id FROM campaigns WHERE slug = %s", (slug,)).fetchone()[
            0
        ]
        codes = dict(
            conn.execute("SELECT code, id FROM entries WHERE campaign_id = %s", (campaign_id,))
        )
        _campaigns[slug] = (campaign_id, codes)
    return _campaigns[slug]


@app.post("/campaigns/<slug>/ballots/batch")
def batch(slug: str):
    items = request.get_json()["ballots"]
    conn = _conn()
    campaign_id, codes = _campaign(conn, slug)
    now = datetime.now(UTC)
    ballots, choices, results = [], [], []
    for item in items:
        ballot_id = str(uuid.UUID(item["ballot_id"]))
        key = hmac.new(_PEPPER, f"cn_mobile:{item['voter_id']}".encode(), "sha256").hexdigest()
        chosen = sorted(item["choices"])
        digest = hashlib.sha256(f"{campaign_id}{key}{chosen}".encode()).hexdigest()
        nonce = secrets.token_hex(16)
        raw = hashlib.sha256(f"{ballot_id}{chosen}{nonce}".encode()).hexdigest()[:16].upper()
        receipt = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
        # As the service stores them for the ranking run: the Merkle leaf of the receipt
        # and the entry ids ascending, big-endian int32.
        leaf = hashlib.sha256(b"\x00" + receipt.encode()).digest()
        ids = sorted(codes[c] for c in chosen)
        choice_ids = struct.pack(f">{len(ids)}i", *ids)
        ballots.append(
            (ballot_id, campaign_id, key, "once", "kiosk", now, now, digest, receipt, nonce)
            + (leaf, choice_ids)
        )
        choices.extend((ballot_id, codes[c], campaign_id) for c in chosen)
        results.append({"ballot_id": ballot_id, "status": "accepted", "receipt": receipt})
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ballots (id, campaign_id, voter_key, dedup_slot, channel, cast_at,"
            " accepted_at, content_digest, receipt, nonce, leaf, choice_ids) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            ballots,
        )
        cur.executemany(
            "INSERT INTO ballot_choices (ballot_id, entry_id, campaign_id) VALUES (%s, %s, %s)",
            choices,
        )
    return {"results": results}
