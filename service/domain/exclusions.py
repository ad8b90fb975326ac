"""Flagged ballots and explicit, audited, reversible exclusions."""

from __future__ import annotations

from sqlalchemy import select

from ..clock import now
from ..errors import ApiError, validation_error
from ..extensions import db
from ..models import Ballot, Campaign, Exclusion, Kiosk
from .audit import audit


def anomalies(campaign: Campaign) -> list[dict]:
    """Flagged ballots grouped by kiosk, with whether each is currently excluded."""
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
    for ballot_id, kiosk_id, accepted_at, flag, name in rows:
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
    return list(groups.values())


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
