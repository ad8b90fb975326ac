"""Web abuse flags: velocity per client address and per network, without storing addresses.

A client address is personal data. A web ballot stores only keyed hashes
(``HMAC-SHA256(VOTER_PEPPER, "ip:" + address)`` and ``"net:" + its /24 or /64``), never
the address; the anomalies list shows the first ``LABEL_CHARS`` hex characters of a hash.
Ballots are flagged, never dropped: a person decides (exclusions).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from datetime import datetime, timedelta

from flask import current_app, has_request_context, request
from sqlalchemy import func, select

from ..extensions import db
from ..models import Ballot

# 48 bits: two addresses of one campaign sharing a label is negligible (about 2e-5 for
# 100,000 addresses), and the label still reveals nothing without the pepper.
LABEL_CHARS = 12


def _keyed(message: str) -> str:
    pepper = current_app.config["VOTER_PEPPER"].encode()
    return hmac.new(pepper, message.encode(), hashlib.sha256).hexdigest()


def address_hashes(address: str | None) -> tuple[str | None, str | None]:
    """(hash of the address, hash of its /24 (IPv4) or /64 (IPv6)); None when unknown."""
    if not address:
        return None, None
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return _keyed(f"ip:{address.strip()}"), None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:1.2.3.4 is the IPv4 client 1.2.3.4
    prefix = 24 if ip.version == 4 else 64
    network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    return _keyed(f"ip:{ip.compressed}"), _keyed(f"net:{network.compressed}")


def label(digest: str | None) -> str | None:
    return digest[:LABEL_CHARS] if digest else None


def _recent(campaign_id: int, column, digest: str, at: datetime, limit: int) -> int:
    """Accepted ballots of this campaign with this hash in the window, counted up to
    ``limit`` only (an index range scan of at most ``limit`` rows)."""
    window = timedelta(seconds=current_app.config["WEB_BURST_WINDOW_SECONDS"])
    rows = (
        select(Ballot.id)
        .where(
            Ballot.campaign_id == campaign_id,
            column == digest,
            Ballot.accepted_at > at - window,
            Ballot.accepted_at <= at,
        )
        .limit(limit)
        .subquery()
    )
    return db.session.execute(select(func.count()).select_from(rows)).scalar_one()


def add_flag(row: dict, flag: str) -> None:
    """Add a flag to a ballot row; several flags are stored comma-separated."""
    row["flagged"] = f"{row['flagged']},{flag}" if row["flagged"] else flag


def mark_web_ballot(row: dict, at: datetime) -> None:
    """Store the address hashes on a web ballot row and flag ``web_burst`` /
    ``subnet_burst`` when this ballot takes its address or network over the threshold."""
    address = request.remote_addr if has_request_context() else None
    row["client_hash"], row["subnet_hash"] = address_hashes(address)
    cfg = current_app.config
    checks = (
        ("client_hash", Ballot.client_hash, cfg["WEB_BURST_MAX"], "web_burst"),
        ("subnet_hash", Ballot.subnet_hash, cfg["SUBNET_BURST_MAX"], "subnet_burst"),
    )
    for key, column, limit, flag in checks:
        if row[key] and _recent(row["campaign_id"], column, row[key], at, limit) + 1 > limit:
            add_flag(row, flag)
