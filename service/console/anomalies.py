"""Console: flagged ballots grouped as ``GET …/anomalies`` groups them (by kiosk, or by
whatever key a group carries: new kinds of group show without changes here), with
times and counts; exclude a group or single ballots with a reason, restore an
exclusion. Everything goes through ``domain/exclusions.py`` and is audited."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..domain import exclusions as domain
from ..domain import staff as staff_domain
from ..errors import ApiError
from ..extensions import db
from . import bp
from .forms import in_chinese
from .guard import actor, campaign_for, current_staff, staff_required

# Keys every group has; any other key (kiosk_id, a client address, a subnet…) names
# where the group's ballots came from.
COMMON = {"flag", "count", "first", "last", "ballots", "kiosk", "day", "threshold"}
MAX_REASON = 500


def flag_words(flag: str) -> str:
    return {
        "burst": _("短时间内大量投票"),
        "late_upload": _("延迟上传"),
        "volume_outlier": _("单日票数异常"),
    }.get(flag, flag)


def _when(zone: ZoneInfo, value: str | None) -> str:
    if not value:
        return "—"
    return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _source(group: dict[str, Any]) -> str:
    if group.get("kiosk"):
        return _("终端：%(name)s", name=group["kiosk"])
    keys = [f"{k}: {v}" for k, v in group.items() if k not in COMMON and v is not None]
    return "，".join(keys) or _("网上")


def groups_for(campaign) -> list[dict[str, Any]]:
    zone = ZoneInfo(campaign.timezone)
    groups = []
    for n, group in enumerate(domain.anomalies(campaign)):
        open_ids = [b["ballot_id"] for b in group["ballots"] if not b["excluded"]]
        groups.append(
            {
                "n": n,
                "flag": group["flag"],
                "flag_words": flag_words(group["flag"]),
                "source": _source(group),
                "key": {k: v for k, v in group.items() if k not in COMMON},
                "count": group["count"],
                "first": _when(zone, group.get("first")),
                "last": _when(zone, group.get("last")),
                "day": group.get("day"),
                "threshold": group.get("threshold"),
                "excluded": group["count"] - len(open_ids),
                "open_ids": open_ids,
                "ballots": group["ballots"],
            }
        )
    return groups


def exclusion_batches(campaign) -> list[dict[str, Any]]:
    """Exclusions grouped as they were made (same reason, same person, same minute)."""
    zone = ZoneInfo(campaign.timezone)
    batches: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
    for row in domain.list_exclusions(campaign):
        at = row.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        key = (row.reason, row.actor, at, row.active)
        batch = batches.setdefault(
            key,
            {
                "reason": row.reason,
                "actor": row.actor,
                "at": at,
                "active": row.active,
                "ids": [],
            },
        )
        batch["ids"].append(row.id)
    return list(reversed(batches.values()))


@bp.get("/campaigns/<slug>/anomalies")
@staff_required("admin", "manager", "observer")
def anomalies_page(slug: str):
    campaign = campaign_for(slug)
    staff = current_staff()
    return render_template(
        "console/anomalies.html",
        campaign=campaign,
        groups=groups_for(campaign),
        batches=exclusion_batches(campaign),
        may_change=staff is not None and staff_domain.can_change(staff, campaign),
        reason=request.args.get("reason", ""),
    )


@bp.post("/campaigns/<slug>/anomalies/exclude")
@staff_required("admin", "manager")
def anomalies_exclude(slug: str):
    campaign = campaign_for(slug, change=True)
    reason = (request.form.get("reason") or "").strip()
    ids = [i for i in request.form.getlist("ballot_id") if i]
    back = url_for("console.anomalies_page", slug=slug)
    if not reason or len(reason) > MAX_REASON:
        flash(_("请写明排除的理由（最多 500 个字符）。"), "error")
        return redirect(back, 303)
    if not ids:
        flash(_("没有选中任何选票。"), "error")
        return redirect(back, 303)
    try:
        rows = domain.exclude(campaign, {"ballot_ids": ids, "reason": reason}, actor())
    except ApiError as exc:
        db.session.rollback()
        flash(in_chinese(exc.message), "error")
        return redirect(back, 303)
    db.session.commit()
    flash(_("已排除 %(n)s 张选票，理由：%(r)s。下次计算时不再计入。", n=len(rows), r=reason))
    return redirect(back, 303)


@bp.post("/campaigns/<slug>/exclusions/restore")
@staff_required("admin", "manager")
def exclusions_restore(slug: str):
    campaign = campaign_for(slug, change=True)
    try:
        ids = [int(i) for i in request.form.getlist("exclusion_id")]
    except ValueError:
        abort(400)
    back = url_for("console.anomalies_page", slug=slug)
    if not ids:
        flash(_("没有选中任何排除记录。"), "error")
        return redirect(back, 303)
    try:
        for exclusion_id in ids:
            domain.revoke(campaign, exclusion_id, actor())
    except ApiError as exc:
        db.session.rollback()
        flash(in_chinese(exc.message), "error")
        return redirect(back, 303)
    db.session.commit()
    flash(_("已恢复 %(n)s 张选票，下次计算时重新计入。", n=len(ids)))
    return redirect(back, 303)
