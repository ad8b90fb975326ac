"""Flagged ballots and explicit, audited, reversible exclusions."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Integer, exists, func, select
from sqlalchemy.orm import aliased

from ..clock import now
from ..errors import ApiError, validation_error
from ..extensions import db
from ..models import Ballot, Campaign, Exclusion, Kiosk
from .audit import audit
from .web_flags import label


def anomalies(campaign: Campaign) -> list[dict]:
    """Flagged ballots grouped by kiosk and flag (web flags: by address or network hash and
    flag), with whether each is currently excluded.

    ``burst``, ``late_upload``, ``web_burst`` and ``subnet_burst`` are stored on the ballot
    when it is accepted (a ballot may carry several); ``volume_outlier`` (per kiosk and
    campaign-local day) and ``first_time_surge`` (per hour) are computed here.
    """
    excluded = set(
        db.session.scalars(
            select(Exclusion.ballot_id).where(
                Exclusion.campaign_id == campaign.id, Exclusion.active.is_(True)
            )
        )
    )
    rows = db.session.execute(
        select(
            Ballot.id,
            Ballot.kiosk_id,
            Ballot.accepted_at,
            Ballot.flagged,
            Kiosk.name,
            Ballot.client_hash,
            Ballot.subnet_hash,
        )
        .outerjoin(Kiosk, Kiosk.id == Ballot.kiosk_id)
        .where(Ballot.campaign_id == campaign.id, Ballot.flagged.is_not(None))
        .order_by(Ballot.kiosk_id, Ballot.accepted_at)
    ).all()
    groups: dict[tuple, dict] = {}
    key: tuple[Any, ...]
    extra: dict[str, Any]
    for ballot_id, kiosk_id, accepted_at, flags, name, client, subnet in rows:
        assert flags is not None  # the query keeps flagged ballots only
        for flag in flags.split(","):
            if flag == "web_burst":
                key, extra = (flag, client), {"client": label(client)}
            elif flag == "subnet_burst":
                key, extra = (flag, subnet), {"subnet": label(subnet), "addresses": set()}
            else:
                key, extra = (kiosk_id, flag), {}
            group = groups.setdefault(
                key,
                {
                    "kiosk_id": kiosk_id,
                    "kiosk": name,
                    "flag": flag,
                    **extra,
                    "count": 0,
                    "first": accepted_at.isoformat(),
                    "last": None,
                    "ballots": [],
                },
            )
            group["count"] += 1
            group["last"] = accepted_at.isoformat()
            group["ballots"].append({"ballot_id": ballot_id, "excluded": ballot_id in excluded})
            if "addresses" in group:
                group["addresses"].add(client)
    for group in groups.values():
        if "addresses" in group:
            group["addresses"] = len(group["addresses"])
    return (
        list(groups.values())
        + _volume_outliers(campaign, excluded)
        + _first_time_surges(campaign, excluded)
    )


def _hour_bucket():
    """The UTC hour of accepted_at as an integer (hours since the epoch), in SQL."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.floor(func.extract("epoch", Ballot.accepted_at) / 3600).cast(Integer)
    return func.cast(func.strftime("%s", Ballot.accepted_at), Integer) // 3600


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


def _first_time_surges(campaign: Campaign, excluded: set[str]) -> list[dict]:
    """Hours with a sudden rise of first-time web voters.

    A first-time web voter is a web ballot whose voter key has no earlier ballot in this
    campaign (with ``limit: once`` that is every ballot). Hours are clock hours (UTC, which
    are the campaign's local hours in whole-hour time zones). An hour is a surge when its
    count is above max(FIRST_TIME_FLOOR, FIRST_TIME_FACTOR x the median count of the
    earlier hours that had such voters and were not surges themselves), so a long attack
    does not raise its own baseline. One grouped count; ids only for the flagged hours.
    """
    cfg = current_app.config
    factor, floor = cfg["FIRST_TIME_FACTOR"], cfg["FIRST_TIME_FLOOR"]
    first_time = [Ballot.campaign_id == campaign.id, Ballot.channel == "web"]
    if campaign.rules.voting.limit == "daily":
        earlier = aliased(Ballot)
        first_time.append(
            ~exists().where(
                earlier.campaign_id == Ballot.campaign_id,
                earlier.voter_key == Ballot.voter_key,
                earlier.accepted_at < Ballot.accepted_at,
            )
        )
    hour = _hour_bucket()
    per_hour = db.session.execute(
        select(hour, func.count()).where(*first_time).group_by(hour).order_by(hour)
    ).all()
    if not per_hour or max(count for _, count in per_hour) <= floor:
        return []
    zone = ZoneInfo(campaign.timezone)
    baseline: list[int] = []
    groups = []
    for bucket, count in per_hour:
        threshold = int(max(floor, factor * statistics.median(baseline or [0])))
        if count <= threshold:
            baseline.append(count)
            continue
        start = datetime.fromtimestamp(int(bucket) * 3600, UTC)
        ballots = db.session.execute(
            select(Ballot.id, Ballot.accepted_at)
            .where(
                *first_time,
                Ballot.accepted_at >= start,
                Ballot.accepted_at < start + timedelta(hours=1),
            )
            .order_by(Ballot.accepted_at)
        ).all()
        groups.append(
            {
                "kiosk_id": None,
                "kiosk": None,
                "flag": "first_time_surge",
                "hour": start.astimezone(zone).isoformat(),
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
    elif (data.get("client") or data.get("subnet")) and data.get("from_") and data.get("to"):
        # A web group: its hash label (or the whole hash) and a time range.
        column = Ballot.client_hash if data.get("client") else Ballot.subnet_hash
        ids = list(
            db.session.scalars(
                query.where(
                    column.startswith(data.get("client") or data["subnet"]),
                    Ballot.accepted_at >= data["from_"],
                    Ballot.accepted_at < data["to"],
                )
            )
        )
    else:
        raise validation_error(
            {
                "ballot_ids": [
                    "需要 ballot_ids，或 kiosk_id、client、subnet 之一加 from/to / give "
                    "ballot_ids, or kiosk_id, client or subnet with from and to"
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
        **{k: data[k][:12] for k in ("client", "subnet") if data.get(k)},
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
