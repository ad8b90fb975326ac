"""Flagged ballots and explicit, audited, reversible exclusions."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Integer, func, select

from ..clock import now
from ..errors import ApiError, validation_error
from ..extensions import db
from ..models import Ballot, Campaign, Exclusion, Kiosk
from .audit import audit


def anomalies(campaign: Campaign) -> list[dict]:
    """Flagged ballots grouped by kiosk and flag, with whether each is currently excluded.

    ``burst`` and ``late_upload`` are stored on the ballot when it is accepted (a ballot
    may carry both); ``volume_outlier`` is computed here, per kiosk and campaign-local day.
    """
    excluded = set(
        db.session.scalars(
            select(Exclusion.ballot_id).where(
                Exclusion.campaign_id == campaign.id, Exclusion.active.is_(True)
            )
        )
    )
    rows = db.session.execute(
        select(Ballot.id, Ballot.kiosk_id, Ballot.accepted_at, Ballot.flagged, Kiosk.name)
        .outerjoin(Kiosk, Kiosk.id == Ballot.kiosk_id)
        .where(Ballot.campaign_id == campaign.id, Ballot.flagged.is_not(None))
        .order_by(Ballot.kiosk_id, Ballot.accepted_at)
    ).all()
    groups: dict[tuple, dict] = {}
    for ballot_id, kiosk_id, accepted_at, flags, name in rows:
        for flag in flags.split(","):
            group = groups.setdefault(
                (kiosk_id, flag),
                {
                    "kiosk_id": kiosk_id,
                    "kiosk": name,
                    "flag": flag,
                    "count": 0,
                    "first": accepted_at.isoformat(),
                    "last": None,
                    "ballots": [],
                },
            )
            group["count"] += 1
            group["last"] = accepted_at.isoformat()
            group["ballots"].append({"ballot_id": ballot_id, "excluded": ballot_id in excluded})
    return list(groups.values()) + _volume_outliers(campaign, excluded)


def _hour_bucket():
    """The UTC hour of accepted_at as an integer (hours since the epoch), in SQL."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.floor(func.extract("epoch", Ballot.accepted_at) / 3600).cast(Integer)
    return func.cast(func.strftime("%s", Ballot.accepted_at), Integer) / 3600


def _volume_outliers(campaign: Campaign, excluded: set[str]) -> list[dict]:
    """Kiosk-days whose volume is far above the kiosk's own earlier days and its peers'.

    A kiosk's count on a campaign-local day is flagged when it is above
    max(VOLUME_FLOOR, VOLUME_FACTOR x the kiosk's largest earlier day, VOLUME_FACTOR x the
    median of the other kiosks' daily counts up to that day). One grouped count by hour;
    ballot ids are read only for the flagged days.
    """
    cfg = current_app.config
    factor, floor = cfg["VOLUME_FACTOR"], cfg["VOLUME_FLOOR"]
    zone = ZoneInfo(campaign.timezone)
    hour = _hour_bucket()
    per_hour = db.session.execute(
        select(Ballot.kiosk_id, hour, func.count())
        .where(Ballot.campaign_id == campaign.id, Ballot.kiosk_id.is_not(None))
        .group_by(Ballot.kiosk_id, hour)
    ).all()
    daily: dict[int, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for kiosk_id, bucket, count in per_hour:
        day = datetime.fromtimestamp(int(bucket) * 3600, UTC).astimezone(zone).date()
        daily[kiosk_id][day] += count
    if not daily or max(c for days in daily.values() for c in days.values()) <= floor:
        return []
    found = []
    for kiosk_id, days in daily.items():
        for day, count in sorted(days.items()):
            own = max((c for d, c in days.items() if d < day), default=0)
            peers = [
                c
                for other, other_days in daily.items()
                if other != kiosk_id
                for d, c in other_days.items()
                if d <= day
            ]
            threshold = max(floor, factor * own, factor * statistics.median(peers or [0]))
            if count > threshold:
                found.append((kiosk_id, day, count, int(threshold)))
    groups = []
    for kiosk_id, day, count, threshold in found:
        start = datetime.combine(day, time(), zone)
        end = datetime.combine(day + timedelta(days=1), time(), zone)
        ballots = db.session.execute(
            select(Ballot.id, Ballot.accepted_at)
            .where(
                Ballot.campaign_id == campaign.id,
                Ballot.kiosk_id == kiosk_id,
                Ballot.accepted_at >= start,
                Ballot.accepted_at < end,
            )
            .order_by(Ballot.accepted_at)
        ).all()
        if not ballots:
            continue
        groups.append(
            {
                "kiosk_id": kiosk_id,
                "kiosk": db.session.scalar(select(Kiosk.name).where(Kiosk.id == kiosk_id)),
                "flag": "volume_outlier",
                "day": day.isoformat(),
                "threshold": threshold,
                "count": count,
                "first": ballots[0][1].isoformat(),
                "last": ballots[-1][1].isoformat(),
                "ballots": [{"ballot_id": b, "excluded": b in excluded} for b, _ in ballots],
            }
        )
    return groups


def list_exclusions(campaign: Campaign) -> list[Exclusion]:
    return list(
        db.session.scalars(
            select(Exclusion).where(Exclusion.campaign_id == campaign.id).order_by(Exclusion.id)
        )
    )


def exclude(campaign: Campaign, data: dict, actor: str) -> list[Exclusion]:
    query = select(Ballot.id).where(Ballot.campaign_id == campaign.id)
    if data.get("ballot_ids"):
        wanted = [str(b) for b in data["ballot_ids"]]
        found = set(db.session.scalars(query.where(Ballot.id.in_(wanted))))
        missing = sorted(set(wanted) - found)
        if missing:
            raise ApiError(
                404, "not_found", "选票不存在 / Unknown ballots", {"ballot_ids": missing}
            )
        ids = wanted
    elif data.get("kiosk_id") is not None and data.get("from_") and data.get("to"):
        ids = list(
            db.session.scalars(
                query.where(
                    Ballot.kiosk_id == data["kiosk_id"],
                    Ballot.accepted_at >= data["from_"],
                    Ballot.accepted_at < data["to"],
                )
            )
        )
    else:
        raise validation_error(
            {
                "ballot_ids": [
                    "需要 ballot_ids,或 kiosk_id 加 from/to / give ballot_ids, or kiosk_id with from "
                    "and to"
                ]
            }
        )
    already = set(
        db.session.scalars(
            select(Exclusion.ballot_id).where(
                Exclusion.campaign_id == campaign.id,
                Exclusion.active.is_(True),
                Exclusion.ballot_id.in_(ids),
            )
        )
    )
    rows = [
        Exclusion(
            campaign_id=campaign.id,
            ballot_id=b,
            reason=data["reason"],
            actor=actor,
            active=True,
            created_at=now(),
        )
        for b in ids
        if b not in already
    ]
    db.session.add_all(rows)
    db.session.flush()
    audit(
        "ballots.exclude",
        actor,
        campaign.id,
        count=len(rows),
        reason=data["reason"],
        ballot_ids=[r.ballot_id for r in rows][:1000],
    )
    return rows


def revoke(campaign: Campaign, exclusion_id: int, actor: str) -> None:
    row = db.session.get(Exclusion, exclusion_id)
    if row is None or row.campaign_id != campaign.id:
        raise ApiError(404, "not_found", f"排除记录不存在 / No exclusion {exclusion_id}")
    if row.active:
        row.active = False
        row.revoked_at = now()
        audit(
            "ballots.exclude.revoke",
            actor,
            campaign.id,
            exclusion_id=exclusion_id,
            ballot_id=row.ballot_id,
        )
