"""Figures for the office dashboard: ballots in total, today, per channel, per kiosk and
over time (grouped counts in SQL: nothing is read per ballot)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, func, select

from ..clock import now
from ..extensions import db
from ..models import Ballot, Campaign, Exclusion, Kiosk


def _hour_bucket():
    """The UTC hour of accepted_at as an integer (hours since the epoch), in SQL."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.floor(func.extract("epoch", Ballot.accepted_at) / 3600).cast(Integer)
    return func.cast(func.strftime("%s", Ballot.accepted_at), Integer) / 3600


def ballot_stats(campaign: Campaign) -> dict[str, Any]:
    """``{total, today, excluded, channels: {channel: n}, kiosks: [{id, name, count,
    today, last}], series: {unit, points: [(local start, count)]}}``.

    The series is by hour when the ballots span at most three days, else by
    campaign-local day; empty buckets in between are included (a flat line is news too).
    """
    zone = ZoneInfo(campaign.timezone)
    at = now().astimezone(zone)
    midnight = datetime.combine(at.date(), time(), zone)
    base = Ballot.campaign_id == campaign.id
    hour = _hour_bucket()
    rows = db.session.execute(
        select(Ballot.channel, Ballot.kiosk_id, hour, func.count(), func.max(Ballot.accepted_at))
        .where(base)
        .group_by(Ballot.channel, Ballot.kiosk_id, hour)
    ).all()
    today_rows = dict(
        db.session.execute(
            select(Ballot.kiosk_id, func.count())
            .where(base, Ballot.accepted_at >= midnight)
            .group_by(Ballot.kiosk_id)
        ).all()
    )
    channels: dict[str, int] = defaultdict(int)
    per_kiosk: dict[int, dict[str, Any]] = {}
    per_hour: dict[int, int] = defaultdict(int)
    for channel, kiosk_id, bucket, count, last in rows:
        channels[channel] += count
        per_hour[int(bucket)] += count
        if kiosk_id is not None:
            k = per_kiosk.setdefault(kiosk_id, {"id": kiosk_id, "count": 0, "last": None})
            k["count"] += count
            k["last"] = max(filter(None, [k["last"], last]))
    names = dict(
        db.session.execute(
            select(Kiosk.id, Kiosk.name).where(Kiosk.id.in_(list(per_kiosk) or [0]))
        ).all()
    )
    kiosks = sorted(
        (
            {
                **k,
                "name": names.get(k["id"], str(k["id"])),
                "today": today_rows.get(k["id"], 0),
                "last": k["last"].astimezone(zone) if k["last"] else None,
            }
            for k in per_kiosk.values()
        ),
        key=lambda k: (-k["count"], k["name"]),
    )
    excluded = db.session.scalar(
        select(func.count(func.distinct(Exclusion.ballot_id))).where(
            Exclusion.campaign_id == campaign.id, Exclusion.active.is_(True)
        )
    )
    return {
        "total": sum(channels.values()),
        "today": sum(today_rows.values()),
        "excluded": int(excluded or 0),
        "channels": dict(sorted(channels.items())),
        "kiosks": kiosks,
        "series": _series(per_hour, zone),
    }


def _series(per_hour: dict[int, int], zone: ZoneInfo) -> dict[str, Any]:
    if not per_hour:
        return {"unit": "hour", "points": []}
    first, last = min(per_hour), max(per_hour)
    if last - first < 72:
        points = [
            (datetime.fromtimestamp(h * 3600, UTC).astimezone(zone), per_hour.get(h, 0))
            for h in range(first, last + 1)
        ]
        return {"unit": "hour", "points": points}
    per_day: dict = defaultdict(int)
    for h, count in per_hour.items():
        per_day[datetime.fromtimestamp(h * 3600, UTC).astimezone(zone).date()] += count
    day, end = min(per_day), max(per_day)
    points = []
    while day <= end:
        points.append((datetime.combine(day, time(), zone), per_day.get(day, 0)))
        day += timedelta(days=1)
    return {"unit": "day", "points": points}
