"""Console: rank and publish. A button starts a run (``domain.runs.start_run``, the same
function as ``POST …/rankings``); the page follows the job (it reloads itself while the
run is queued or running) and shows a failure's error in words; a finished run is
previewed as the public page will show it, with what changed against the last
publication; publishing asks for confirmation naming the version and calls
``publish_run`` (what the publish job calls) in the request. The publications list has
version, time, digest, ballots root and links (page, JSON, CSV, .pb export)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from ..domain import rankings as domain
from ..domain import staff as staff_domain
from ..domain.pabulib_io import export_pb
from ..domain.publications import (
    PublishError,
    latest_publication,
    publication_for_run,
    publish_run,
)
from ..domain.runs import start_run
from ..errors import ApiError
from ..extensions import db
from ..models import Publication, RankingRun
from ..web.results import _flag_words, _method_items, page_context
from . import bp
from .forms import in_chinese
from .guard import actor, campaign_for, current_staff, staff_required

RUNS_SHOWN = 10


def error_words(error: dict[str, Any] | None) -> str:
    """A failed run's error in the page's language (engine messages are English)."""
    if not error:
        return _("计算失败，原因不明。")
    code = error.get("code")
    details = error.get("details") or {}
    words = {
        "selection_impossible": _(
            "入选名额的设置无法满足（例如类别的保底名额加起来超过总名额，或符合条件的项目不够）。"
        ),
        "calibration_graph_disconnected": _(
            "评委偏差校正需要专家之间有共同评审的项目把所有专家连起来，现在没有连通。"
        ),
        "budget_required": _("所选的评选规则需要预算，请在设置中填写预算。"),
        "cost_required": _(
            "所选的评选规则需要每个项目的经费：%(codes)s 没有经费。",
            codes="、".join(details.get("entries") or []),
        ),
        "queue_unavailable": _("任务队列暂时不可用（Redis 未连接），请稍后再试。"),
        "job_failed": _("计算过程多次出错后放弃（数据库或工作进程故障），请检查服务后重新计算。"),
        "invalid_method": _("计算方法的设置有误。"),
        "invalid_entries": _("参评对象的数据有误。"),
        "invalid_review": _("评分数据有误。"),
    }
    text = words.get(code or "")
    if text is None:
        text = in_chinese(error.get("message") or code or "")
    return text


def status_words(status: str) -> str:
    return {
        "queued": _("排队中"),
        "running": _("计算中"),
        "finished": _("已完成"),
        "failed": _("失败"),
    }.get(status, status)


def _local(campaign, value) -> str:
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(campaign.timezone)).strftime("%Y-%m-%d %H:%M:%S")


def differences(doc: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """Rank moves, entries newly selected or dropped, against the last publication."""
    if before is None:
        return {"first": True, "moves": [], "selected": [], "dropped": [], "new": []}
    old = {r["code"]: r for r in before.get("rows", [])}
    moves, selected, dropped, new = [], [], [], []
    for r in doc.get("rows", []):
        o = old.get(r["code"])
        if o is None:
            new.append(r)
            continue
        if o["rank"] != r["rank"]:
            moves.append({"row": r, "from": o["rank"], "by": o["rank"] - r["rank"]})
        if r["selected"] and not o["selected"]:
            selected.append(r)
        if o["selected"] and not r["selected"]:
            dropped.append(r)
    return {"first": False, "moves": moves, "selected": selected, "dropped": dropped, "new": new}


def _preview_rows(doc: dict[str, Any], before: dict[str, Any] | None) -> list[dict[str, Any]]:
    old = {r["code"]: r for r in (before or {}).get("rows", [])}
    rows = []
    for r in doc.get("rows", []):
        o = old.get(r["code"])
        move = None if o is None else o["rank"] - r["rank"]
        rows.append(
            {
                **r,
                "move": move,
                "was_selected": None if o is None else o["selected"],
                "flag_words": [_flag_words(f) for f in r.get("flags") or []],
            }
        )
    return rows


def _next_version(campaign) -> int:
    return (
        db.session.scalar(
            select(func.max(Publication.version)).where(Publication.campaign_id == campaign.id)
        )
        or 0
    ) + 1


def publication_rows(campaign) -> list[dict[str, Any]]:
    api = f"/api/v1/campaigns/{campaign.slug}"
    latest = latest_publication(campaign.id)
    rows = []
    for p in db.session.scalars(
        select(Publication)
        .where(Publication.campaign_id == campaign.id)
        .order_by(Publication.version.desc())
    ):
        is_latest = latest is not None and p.version == latest.version
        rows.append(
            {
                "version": p.version,
                "at": _local(campaign, p.published_at),
                "digest": p.digest,
                "ballots_root": p.document.get("ballots_root"),
                "selected": sum(1 for r in p.document.get("rows", []) if r.get("selected")),
                "page": url_for("web.results_page", slug=campaign.slug) if is_latest else None,
                "json": f"{api}/publications/{p.version}",
                "csv": f"{api}/results.csv" if is_latest else None,
            }
        )
    return rows


@bp.get("/campaigns/<slug>/ranking")
@staff_required("admin", "manager", "observer")
def ranking_page(slug: str):
    campaign = campaign_for(slug)
    runs = list(
        db.session.scalars(
            select(RankingRun)
            .where(RankingRun.campaign_id == campaign.id)
            .order_by(RankingRun.created_at.desc())
            .limit(RUNS_SHOWN)
        )
    )
    wanted = request.args.get("run")
    run = next((r for r in runs if r.id == wanted), None) if wanted else (runs[0] if runs else None)
    if wanted and run is None:
        run = db.session.get(RankingRun, wanted)
        if run is None or run.campaign_id != campaign.id:
            abort(404)
    latest = latest_publication(campaign.id)
    before = latest.document if latest is not None else None
    published = publication_for_run(run.id) if run is not None else None
    doc = run.result if run is not None and run.status == "finished" else None
    staff = current_staff()
    return render_template(
        "console/ranking.html",
        campaign=campaign,
        runs=[
            {
                "run": r,
                "status": status_words(r.status),
                "at": _local(campaign, r.created_at),
                "publication": publication_for_run(r.id),
            }
            for r in runs
        ],
        run=run,
        run_status=status_words(run.status) if run else None,
        run_error=error_words(domain.parse_error(run.error)) if run and run.error else None,
        raw_error=domain.parse_error(run.error) if run and run.error else None,
        following=run is not None and run.status in ("queued", "running"),
        doc=doc,
        preview_rows=_preview_rows(doc, before) if doc else [],
        method_items=_method_items(doc) if doc else [],
        diff=differences(doc, before) if doc else None,
        before_version=latest.version if latest else None,
        published=published,
        next_version=_next_version(campaign),
        can_publish=doc is not None
        and run is not None
        and published is None
        and domain.has_ballot_tree(run),
        publications=publication_rows(campaign),
        may_change=staff is not None and staff_domain.can_change(staff, campaign),
        at=_local,
    )


@bp.post("/campaigns/<slug>/ranking")
@staff_required("admin", "manager")
def ranking_start(slug: str):
    campaign = campaign_for(slug, change=True)
    try:
        run, _job = start_run(campaign, actor())
    except ApiError as exc:
        flash(error_words({"code": exc.code, "message": exc.message}), "error")
        return redirect(url_for("console.ranking_page", slug=slug), 303)
    flash(_("已开始计算。页面会自动刷新，直到计算完成。"))
    return redirect(url_for("console.ranking_page", slug=slug, run=run.id), 303)


@bp.get("/campaigns/<slug>/runs/<run_id>/preview")
@staff_required("admin", "manager", "observer")
def run_preview(slug: str, run_id: str):
    """The run as the public results page will show it once published."""
    campaign = campaign_for(slug)
    run = db.session.get(RankingRun, run_id)
    if run is None or run.campaign_id != campaign.id or run.status != "finished":
        abort(404)
    published = publication_for_run(run.id)
    version = published.version if published else _next_version(campaign)
    doc = {**(run.result or {}), "version": version, "published_at": None}
    context = page_context(campaign, doc)
    context.update(preview=version, at="—")
    return render_template("results.html", **context)


@bp.get("/campaigns/<slug>/runs/<run_id>/publish")
@staff_required("admin", "manager")
def publish_confirm(slug: str, run_id: str):
    campaign = campaign_for(slug, change=True)
    run = db.session.get(RankingRun, run_id)
    if run is None or run.campaign_id != campaign.id or run.status != "finished":
        abort(404)
    return render_template(
        "console/publish_confirm.html",
        campaign=campaign,
        run=run,
        version=_next_version(campaign),
        selected=[r for r in (run.result or {}).get("rows", []) if r.get("selected")],
        at=_local(campaign, run.finished_at),
    )


@bp.post("/campaigns/<slug>/runs/<run_id>/publish")
@staff_required("admin", "manager")
def publish(slug: str, run_id: str):
    campaign = campaign_for(slug, change=True)
    back = url_for("console.ranking_page", slug=slug, run=run_id)
    run = db.session.get(RankingRun, run_id)
    if run is None or run.campaign_id != campaign.id:
        abort(404)
    version = _next_version(campaign)
    if request.form.get("version") != str(version):
        # Someone published meanwhile: the version confirmed is no longer the next one.
        flash(_("公示的版本号已变化（下一版是第 %(v)s 版），请重新确认。", v=version), "error")
        return redirect(back, 303)
    if publication_for_run(run.id) is None and (
        run.status != "finished" or not domain.has_ballot_tree(run)
    ):
        flash(_("这次计算不能公示（未完成，或选票树已清理），请重新计算。"), "error")
        return redirect(back, 303)
    try:
        publication = publish_run(campaign.id, run.id, actor=actor())
    except PublishError as exc:
        db.session.rollback()
        flash(in_chinese(exc.message), "error")
        return redirect(back, 303)
    db.session.commit()
    assert publication is not None  # publish_run without if_changed always publishes
    flash(_("已公示第 %(v)s 版。", v=publication.version))
    return redirect(url_for("console.ranking_page", slug=slug) + "#publications", 303)


@bp.get("/campaigns/<slug>/export.pb")
@staff_required("admin", "manager", "observer")
def export_pb_file(slug: str):
    """The campaign as a pabulib .pb file (what ``votes pb export`` writes)."""
    campaign = campaign_for(slug)
    try:
        text = export_pb(campaign)
    except ApiError as exc:
        flash(in_chinese(exc.message), "error")
        return redirect(url_for("console.ranking_page", slug=slug), 303)
    return Response(
        text,
        mimetype="text/plain",
        headers={"Content-Disposition": f'attachment; filename="{campaign.slug}.pb"'},
    )
