"""Load the campaigns of the source article, and one open campaign (service/demo/)."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import exists, select

from ..clock import frozen
from ..errors import ApiError
from ..extensions import db
from ..models import Campaign, Entry, Kiosk
from . import publications, rankings, verification
from .ballots import cast_ballot, entry_ids
from .campaigns import CSV_HEADER, create_campaign_from_doc, import_entries_csv
from .review import add_expert, is_recused, submit_score
from .roll import add_voters
from .voters import resident_id_check_char

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
_PLACEHOLDER = re.compile(r"^\{now(?:([+-])(\d+)([dh]))?\}$")
CAMPAIGN_FILES = ("cases", "groups", "featured", "grids", "grids2")


def load_demo(at: datetime | None = None, base_url: str = "") -> Iterator[str]:
    """Create each demo campaign that does not exist yet, with its entries.

    ``base_url`` (e.g. ``http://127.0.0.1:8000``) makes the printed expert links absolute.
    """
    at = at or datetime.now(ZoneInfo("Asia/Shanghai")).replace(microsecond=0)
    experts = json.loads((DEMO_DIR / "experts.json").read_text("utf-8"))
    for name in CAMPAIGN_FILES:
        doc = substitute_times(json.loads((DEMO_DIR / f"{name}.json").read_text("utf-8")), at)
        # Loader-only hints: simulated turnout, where the entries come from, and when the
        # final results were published (null: the campaign is still open, rank only).
        hints = doc.pop("demo", {})
        if db.session.scalar(select(exists().where(Campaign.slug == doc["slug"]))):
            yield f"{doc['slug']}: exists, skipped"
            continue
        opens = datetime.fromisoformat(doc["voting"]["opens_at"])
        # The demo replays history: the campaign is set up before its voting opened.
        with frozen(opens - timedelta(days=1)):
            campaign = create_campaign_from_doc(doc, actor="demo")
            if hints.get("entries_from"):
                text, weights = winners_csv(hints["entries_from"])
            else:
                text, weights = split_weights((DEMO_DIR / f"{name}.csv").read_text("utf-8"))
            result = import_entries_csv(campaign, text, "demo")
            roll = demo_roll(campaign)
        db.session.commit()
        cast = simulate_ballots(campaign, hints.get("ballots", 200), at, roll, weights)
        db.session.commit()
        scored, links = simulate_review(campaign, experts.get(campaign.slug, []), at, weights)
        db.session.commit()
        published = hints.get("published_at")
        if published:
            # The final results, published when they were (the clock the service uses).
            with frozen(datetime.fromisoformat(published)):
                state = f"published v{publish_now(campaign)}"
        else:
            state = f"ranked (provisional, run {rank_now(campaign)}), not published"
        yield (
            f"{campaign.slug}: created with {result['created']} entries, {cast} ballots, "
            f"{len(links)} experts, {scored} scores, {state}"
        )
        for name, link in links:
            yield f"  expert {name}: {base_url}{link}"


def split_weights(text: str) -> tuple[str, dict[str, float]]:
    """An entry file with an extra ``weight`` column: the import CSV without it, and each
    entry's weight (how much the simulated residents and experts like it)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "weight" not in rows[0]:
        return text, {}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_HEADER, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue(), {r["code"]: float(r["weight"]) for r in rows}


def winners_csv(name: str) -> tuple[str, dict[str, float]]:
    """The entries of an honour given among the winners of demo campaign ``name``: the
    selected rows of its latest publication, with the weights of its entry file."""
    slug = json.loads((DEMO_DIR / f"{name}.json").read_text("utf-8"))["slug"]
    source = db.session.scalar(select(Campaign).where(Campaign.slug == slug))
    assert source is not None  # loaded and published before the honours that use it
    latest = publications.latest_publication(source.id)
    assert latest is not None
    selected = {r["code"] for r in latest.document["rows"] if r["selected"]}
    _, weights = split_weights((DEMO_DIR / f"{name}.csv").read_text("utf-8"))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for e in db.session.scalars(
        select(Entry).where(Entry.campaign_id == source.id).order_by(Entry.code)
    ):
        if e.code in selected:
            writer.writerow([e.code, e.title, e.summary, e.category, e.area, e.grid, e.cost])
    return out.getvalue(), {c: w for c, w in weights.items() if c in selected}


def _fake_voter(kind: str, rng: random.Random) -> str:
    if kind == "cn_resident_id":
        first17 = (
            "310108" + f"{rng.randint(1940, 2005)}{rng.randint(1, 12):02d}"
            f"{rng.randint(1, 28):02d}" + f"{rng.randint(0, 999):03d}"
        )
        return first17 + resident_id_check_char(first17)
    if kind == "member_code":
        return f"M{rng.randint(0, 10**8):08d}"
    return f"1{rng.choice('3456789')}{rng.randint(0, 10**9 - 1):09d}"


def demo_roll(campaign: Campaign) -> list[str] | None:
    """For a campaign with ``eligibility: roll``: a generated roll of 25–45 residents per
    居民区 of its entries, added through the roll's domain function (stored as keyed
    hashes only). Returns the identifiers, which live only in this process, so that the
    simulated ballots come from voters on the roll."""
    if not campaign.rules.voting.on_roll:
        return None
    rng = random.Random(campaign.slug + ":roll")
    areas = sorted(
        {
            a
            for a in db.session.scalars(select(Entry.area).where(Entry.campaign_id == campaign.id))
            if a
        }
    )
    seen: set[str] = set()
    rows: list[tuple[int, dict[str, Any]]] = []
    for area in areas:
        for _ in range(rng.randint(25, 45)):
            voter = _fake_voter(campaign.rules.voting.voter_id, rng)
            if voter not in seen:
                seen.add(voter)
                rows.append((len(rows), {"voter_id": voter, "area": area, "grid": None}))
    add_voters(campaign, rows, "demo", source="json")
    return [row["voter_id"] for _, row in rows]


class _Handsets:
    """The simulated residents' phones: a code "sent" to them is read back, not sent."""

    name = "demo"

    def __init__(self) -> None:
        self.last: str | None = None

    def send(self, phone: str, code: str) -> None:
        self.last = code


def _verified(campaign: Campaign, voter_id: str, handsets: _Handsets) -> dict:
    """A code for a simulated web voter through the real request_code (limits, budget)."""
    extensions = current_app.extensions
    previous = extensions.get("sms_provider")
    extensions["sms_provider"] = handsets
    try:
        issued = verification.request_code(campaign, voter_id)
    finally:
        if previous is None:
            extensions.pop("sms_provider", None)
        else:
            extensions["sms_provider"] = previous
    return {"id": issued.id, "code": handsets.last}


def simulate_ballots(
    campaign: Campaign,
    n: int,
    at: datetime,
    roll: list[str] | None = None,
    weights: dict[str, float] | None = None,
) -> int:
    """Cast n plausible ballots through cast_ballot, the function every channel uses.

    Deterministic per campaign (seeded by the slug); popularity is the entry file's
    ``weight`` column, else skewed at random so rankings have a shape; ballots are spread
    over the voting window up to `at`. With a roll the voters are drawn from it (each
    once), otherwise invented. Web ballots of a ``verify: sms`` campaign ask for a code
    and carry it, as a resident's would.
    """
    rng = random.Random(campaign.slug)
    voters = rng.sample(roll, min(n, len(roll))) if roll is not None else None
    voting = campaign.rules.voting
    assert voting.opens_at is not None and voting.closes_at is not None  # demo windows
    opens, closes = voting.opens_at, min(voting.closes_at, at)
    codes = entry_ids(campaign)
    order = sorted(codes)
    popularity = [1.0 / (1 + rank) ** 0.8 for rank in range(len(order))]
    rng.shuffle(popularity)
    if weights:
        popularity = [weights[code] for code in order]
    kiosk = _demo_kiosk()
    span = (closes - opens).total_seconds()
    handsets = _Handsets()
    cast = 0
    for i in range(n):
        k = rng.randint(voting.min_choices, voting.max_choices)
        chosen: set[str] = set()
        while len(chosen) < min(k, len(order)):
            chosen.add(rng.choices(order, popularity)[0])
        when = opens + timedelta(seconds=span * (i + rng.random()) / n)
        channel = "kiosk" if rng.random() < 0.6 and "kiosk" in voting.channels else "web"
        if channel not in voting.channels:
            channel = voting.channels[0]
        ballot_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        voter_id = voters[i % len(voters)] if voters else _fake_voter(voting.voter_id, rng)
        with frozen(when):
            try:
                code = None
                if verification.required(campaign, channel):
                    code = _verified(campaign, voter_id, handsets)
                cast_ballot(
                    campaign,
                    ballot_id=ballot_id,
                    voter_id=voter_id,
                    choices=sorted(chosen),
                    channel=channel,
                    kiosk_id=kiosk.id if channel == "kiosk" else None,
                    codes=codes,
                    verification=code,
                )
                cast += 1
            except ApiError:
                continue  # a simulated voter who already voted: refused, as in life
    return cast


def _demo_kiosk() -> Kiosk:
    kiosk = db.session.scalar(select(Kiosk).where(Kiosk.name == "演示终端 / demo kiosk"))
    if kiosk is None:
        kiosk = Kiosk(name="演示终端 / demo kiosk", location="彭浦镇社区党群服务中心")
        db.session.add(kiosk)
        db.session.flush()
    return kiosk


def simulate_review(
    campaign: Campaign, panel: list[dict], at: datetime, weights: dict[str, float] | None = None
) -> tuple[int, list]:
    """Register the demo panel and let it score, through the same domain functions.

    Each expert has a personal leniency and each entry a hidden quality, so the
    calibration options have something to correct; with ``weights`` the quality follows
    the entry file's weight (0.45 to 0.95). Recused entries are skipped.
    """
    if not campaign.criteria or not panel:
        return 0, []
    rng = random.Random(campaign.slug + ":review")
    review = campaign.rules.review
    assert review.opens_at is not None and review.closes_at is not None  # demo windows
    opens, closes = review.opens_at, min(review.closes_at, at)
    entries = db.session.scalars(
        select(Entry).where(Entry.campaign_id == campaign.id).order_by(Entry.code)
    ).all()
    quality = {e.code: rng.uniform(0.45, 0.95) for e in entries}
    if weights:
        top = max(weights.values())
        quality = {code: 0.45 + 0.5 * w / top for code, w in weights.items()}
    scored, links = 0, []
    for member in panel:
        expert, token = add_expert(campaign, member["name"], member.get("area"), "demo")
        links.append((member["name"], f"/review/{campaign.slug}/login?token={token}"))
        leniency = rng.uniform(-0.1, 0.1)
        for entry in entries:
            if is_recused(campaign, expert, entry) or rng.random() < 0.15:
                continue
            points = {}
            for c in campaign.criteria:
                share = min(1.0, max(0.0, quality[entry.code] + leniency + rng.gauss(0, 0.07)))
                points[c.key] = round(share * c.max_points)
            when = opens + (closes - opens) * rng.uniform(0.05, 0.95)
            with frozen(when):
                submit_score(campaign, expert, entry.code, points, None)
            scored += 1
    return scored, links


def rank_now(campaign: Campaign) -> str:
    """Rank in-process (for an open campaign, its interim state: ranked, not published)."""
    run = rankings.create_run(campaign, "demo")
    db.session.commit()
    rankings.compute(run)
    db.session.commit()
    return run.id


def publish_now(campaign: Campaign) -> int:
    """Rank and publish in-process, so the demo shows results without waiting for a worker.

    Uses the same domain functions as the ranking and publication jobs.
    """
    publication = publications.publish_run(campaign.id, rank_now(campaign), actor="demo")
    assert publication is not None  # no if_changed: always a new version
    db.session.commit()
    return publication.version


def substitute_times(doc, at: datetime | None = None):
    """Replace "{now}", "{now+7d}", "{now-2h}" with RFC 3339 times (demo files)."""
    at = at or datetime.now(ZoneInfo("Asia/Shanghai"))

    def walk(value):
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            m = _PLACEHOLDER.match(value)
            if m:
                delta = timedelta()
                if m.group(1):
                    n = int(m.group(2)) * (1 if m.group(1) == "+" else -1)
                    delta = timedelta(days=n) if m.group(3) == "d" else timedelta(hours=n)
                return (at + delta).replace(microsecond=0).isoformat()
        return value

    return walk(doc)
