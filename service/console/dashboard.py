"""Console: a campaign's dashboard (phase and dates, ballots in total, today, per channel
and per kiosk, a server-rendered SVG chart over time, turnout, review progress and the
review gaps with their fix) and its windows (close voting early, extend, the
``results.live`` switch), which go through ``update_campaign`` like a PATCH."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..clock import now
from ..domain import campaigns as domain
from ..domain import review as review_domain
from ..domain import staff as staff_domain
from ..domain.dashboard import ballot_stats
from ..domain.exclusions import anomalies
from ..domain.publications import latest_publication
from ..domain.rankings import latest_finished_run
from ..errors import ApiError
from ..extensions import db
from ..web.pages import status_label
from . import bp
from .forms import field_errors, in_chinese, local_input
from .guard import actor, campaign_for, current_staff, staff_required
from .review_gaps import gap_rows

CHART_W, CHART_H, PAD_L, PAD_B, PAD_T = 720, 220, 44, 34, 14


def chart(series: dict[str, Any]) -> dict[str, Any] | None:
    """Bars of ballots per hour or day, laid out here; the template only draws them."""
    points = series["points"]
    if not points:
        return None
    top = max(c for _, c in points) or 1
    plot_w, plot_h = CHART_W - PAD_L - 8, CHART_H - PAD_T - PAD_B
    step = plot_w / len(points)
    every = max(1, round(len(points) / 8))
    fmt = "%m-%d %H:00" if series["unit"] == "hour" else "%m-%d"
    bars = []
    for k, (start, count) in enumerate(points):
        h = plot_h * count / top
        width = min(max(step * 0.8, 1), 48)
        bars.append(
            {
                "x": round(PAD_L + k * step + (step - width) / 2, 2),
                "y": round(PAD_T + plot_h - h, 2),
                "w": round(width, 2),
                "h": round(h, 2),
                "count": count,
                "when": start.strftime(fmt),
                "label": start.strftime(fmt) if k % every == 0 else None,
                "label_x": round(PAD_L + k * step + step / 2, 2),
            }
        )
    return {
        "width": CHART_W,
        "height": CHART_H,
        "unit": series["unit"],
        "bars": bars,
        "axis_y": PAD_T + plot_h,
        "label_y": PAD_T + plot_h + 18,
        "left": PAD_L,
        "right": CHART_W - 8,
        "top": top,
        "top_y": PAD_T + 4,
    }


def _local(campaign, value: str | None) -> str:
    return local_input(value, campaign.timezone).replace("T", " ") if value else "—"


@bp.get("/campaigns/<slug>/dashboard")
@staff_required("admin", "manager", "observer")
def dashboard(slug: str):
    campaign = campaign_for(slug)
    status = domain.campaign_status(campaign)
    stats = ballot_stats(campaign)
    progress = review_domain.progress(campaign)
    flagged = anomalies(campaign)
    staff = current_staff()
    voting, review = campaign.voting or {}, campaign.review or {}
    run = latest_finished_run(campaign.id)
    publication = latest_publication(campaign.id)
    return render_template(
        "console/dashboard.html",
        campaign=campaign,
        status=status,
        label=status_label(status),
        stats=stats,
        chart=chart(stats["series"]),
        turnout=progress.get("turnout"),
        progress=progress,
        gaps=gap_rows(campaign),
        reviews_matter=float(campaign.rules.ranking.expert_weight or 0) > 0,
        flagged=sum(g["count"] for g in flagged),
        flagged_open=sum(1 for g in flagged for b in g["ballots"] if not b["excluded"]),
        windows={
            "voting_opens": _local(campaign, voting.get("opens_at")),
            "voting_closes": _local(campaign, voting.get("closes_at")),
            "review_opens": _local(campaign, review.get("opens_at")),
            "review_closes": _local(campaign, review.get("closes_at")),
            "voting_closes_input": local_input(voting.get("closes_at"), campaign.timezone)
            if voting.get("closes_at")
            else "",
            "review_closes_input": local_input(review.get("closes_at"), campaign.timezone)
            if review.get("closes_at")
            else "",
        },
        live=bool((campaign.results or {}).get("live")),
        run=run,
        publication=publication,
        may_change=staff is not None and staff_domain.can_change(staff, campaign),
    )


def _patch(campaign, patch: dict[str, Any], done: str):
    """``update_campaign`` (the PATCH's rules and audit); errors come back as a flash."""
    try:
        domain.update_campaign(campaign, patch, actor())
    except ApiError as exc:
        db.session.rollback()
        fields = exc.details.get("fields")
        if isinstance(fields, dict):
            text = "；".join(f"{k}：{v}" for k, v in field_errors(fields).items())
        else:
            text = in_chinese(exc.message)
        flash(_("没有修改：%(why)s", why=text), "error")
    else:
        db.session.commit()
        flash(done)
    return redirect(url_for("console.dashboard", slug=campaign.slug) + "#windows", 303)


@bp.post("/campaigns/<slug>/windows/close-voting")
@staff_required("admin", "manager")
def close_voting(slug: str):
    campaign = campaign_for(slug, change=True)
    at = now().astimezone(ZoneInfo(campaign.timezone)).replace(microsecond=0)
    return _patch(
        campaign,
        {"voting": {"closes_at": at.isoformat()}},
        _("投票已提前结束（%(at)s）。", at=at.strftime("%Y-%m-%d %H:%M")),
    )


@bp.post("/campaigns/<slug>/windows")
@staff_required("admin", "manager")
def change_windows(slug: str):
    """Extend (or move) the closing times; the same validation as PATCH."""
    campaign = campaign_for(slug, change=True)
    zone = ZoneInfo(campaign.timezone)
    patch: dict[str, Any] = {}
    for section in ("voting", "review"):
        raw = (request.form.get(f"{section}.closes_at") or "").strip()
        if not raw:
            continue
        try:
            value = datetime.fromisoformat(raw).replace(tzinfo=zone).isoformat()
        except ValueError:
            flash(_("没有修改：请填写日期和时间。"), "error")
            return redirect(url_for("console.dashboard", slug=slug) + "#windows", 303)
        if value != (getattr(campaign, section) or {}).get("closes_at"):
            patch[section] = {"closes_at": value}
    if not patch:
        flash(_("时间没有变化。"))
        return redirect(url_for("console.dashboard", slug=slug) + "#windows", 303)
    return _patch(campaign, patch, _("结束时间已修改。"))


@bp.post("/campaigns/<slug>/results-live")
@staff_required("admin", "manager")
def results_live(slug: str):
    campaign = campaign_for(slug, change=True)
    live = request.form.get("live") == "1"
    return _patch(
        campaign,
        {"results": {"live": live}},
        _("结果页面现在显示最新计算的暂定结果。")
        if live
        else _("结果页面现在只显示正式公示的结果。"),
    )
