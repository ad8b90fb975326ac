"""Console pages: campaigns (new from a template, the form with every section, the
method in words before saving, publish)."""

from __future__ import annotations

import contextlib
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError
from sqlalchemy import func, select

from schemas.campaign import CampaignSchema

from ..domain import campaigns as domain
from ..domain import staff as staff_domain
from ..errors import ApiError
from ..extensions import db
from ..models import Entry
from ..web.pages import status_label
from ..web.results import _method_items
from . import bp
from .forms import (
    CHOICES,
    TEMPLATES,
    FormProblem,
    field_errors,
    form_echo,
    form_values,
    in_chinese,
    parse_form,
    template_document,
    template_names,
)
from .guard import actor, campaign_for, current_staff, staff_required


def choice_labels() -> dict[str, dict[str, str]]:
    """Words for the values of every select and checkbox group of the form."""
    return {
        "voter_id": {
            "cn_mobile": _("手机号"),
            "cn_resident_id": _("身份证号"),
            "member_code": _("成员编号"),
        },
        "channels": {"kiosk": _("现场投票终端"), "web": _("网上（手机或电脑）")},
        "limit": {"once": _("每人一次"), "daily": _("每人每天一次")},
        "eligibility": {"open": _("凡有有效证件号码者"), "roll": _("仅限选民名册上的人")},
        "verify": {"none": _("不验证"), "sms": _("短信验证码")},
        "vote_score": {
            "max": _("相对最高票（最高票 100 分）"),
            "approval_rate": _("支持率"),
            "share": _("得票占比"),
            "rank_points": _("按名次给分"),
            "log": _("对数压缩"),
        },
        "aggregate": {
            "mean": _("平均值"),
            "trimmed_mean": _("去掉最高最低后平均"),
            "median": _("中位数"),
        },
        "calibration": {
            "none": _("不校正"),
            "zscore": _("标准分校正"),
            "additive": _("评委偏差校正"),
        },
        "tie_break": {
            "votes": _("票数多者优先"),
            "expert": _("专家得分高者优先"),
            "reviews": _("评审份数多者优先"),
            "cost": _("经费少者优先"),
            "lot": _("公开抽签"),
        },
        "rule": {
            "top": _("按排名取前若干名"),
            "greedy_budget": _("预算内按排名选取（放不下的跳过）"),
            "greedy_budget_no_skip": _("预算内按排名选取（放不下即停止）"),
            "equal_shares": _("均等份额法"),
        },
    }


def method_summary(doc: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The settings in plain words, as the results page will explain them."""
    labels = choice_labels()
    voting = doc.get("voting") or {}
    channels = "、".join(labels["channels"].get(c, c) for c in voting.get("channels", []))
    lines = [
        _(
            "每位投票人选 %(min)s 至 %(max)s 项，%(limit)s；以%(kind)s识别投票人；渠道：%(ch)s。",
            min=voting.get("min_choices", 1),
            max=voting.get("max_choices", 1),
            limit=labels["limit"].get(voting.get("limit", "once"), ""),
            kind=labels["voter_id"].get(voting.get("voter_id", "cn_mobile"), ""),
            ch=channels,
        )
    ]
    if voting.get("eligibility") == "roll":
        lines.append(_("只有选民名册上的人可以投票。"))
    if voting.get("verify") == "sms":
        lines.append(_("网上投票需要短信验证码。"))
    method = {
        **(doc.get("ranking") or {}),
        **{k: v for k, v in (doc.get("review") or {}).items() if k != "criteria"},
        **(doc.get("selection") or {}),
    }
    items = [(_("投票"), lines)]
    # An incomplete form says nothing more: its errors say what is missing.
    with contextlib.suppress(KeyError, TypeError, ValueError):
        items += _method_items({"method": method, "lot_seed": _("（计算时由数据得出）")})
    return items


def _render_form(values, errors=None, *, campaign=None, summary=None, status=200):
    return (
        render_template(
            "console/campaign_form.html",
            v=values,
            errors=errors or {},
            campaign=campaign,
            summary=summary,
            labels=choice_labels(),
            choices=CHOICES,
            timezones=("Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Urumqi"),
        ),
        status,
    )


def _with_blank_rows(values: dict[str, Any]) -> dict[str, Any]:
    action = request.form.get("action", "")
    if action == "add_criterion" or not values["criteria"]:
        values["criteria"].append({})
    if action == "add_category" or not values["categories"]:
        values["categories"].append({})
    return values


def _handle(campaign=None):
    """POST of the form: re-render (preview, add a row), or validate and save."""
    action = request.form.get("action", "save")
    try:
        doc, rows = parse_form(request.form)
    except FormProblem as problem:
        return _render_form(
            _with_blank_rows(form_echo(request.form)), problem.errors, campaign=campaign, status=422
        )
    if campaign is not None:
        doc["slug"] = campaign.slug
    try:
        loaded = CampaignSchema().load(doc)
    except ValidationError as exc:
        errors = field_errors(exc.messages, rows)
        return _render_form(
            _with_blank_rows(form_echo(request.form)),
            errors,
            campaign=campaign,
            status=422 if action == "save" else 200,
        )
    summary = method_summary(CampaignSchema().dump(loaded))
    if action != "save":
        return _render_form(
            _with_blank_rows(form_echo(request.form)), campaign=campaign, summary=summary
        )
    try:
        if campaign is None:
            created = domain.create_campaign({**loaded, "draft": True}, actor())
            staff = current_staff()
            if staff is not None and staff.role == "manager":
                staff_domain.assign_campaign(staff, created, actor())
            slug = created.slug
        else:
            patch = {k: v for k, v in doc.items() if k != "slug"}
            domain.update_campaign(campaign, patch, actor())
            slug = campaign.slug
    except ApiError as exc:
        db.session.rollback()
        errors = {}
        if exc.code == "slug_taken":
            errors["slug"] = in_chinese(exc.message)
        elif exc.code == "validation_error":
            errors = field_errors(exc.details.get("fields") or {}, rows)
        else:
            fields = exc.details.get("fields") or []
            errors["_form"] = in_chinese(exc.message) + (
                (" (" + ", ".join(fields) + ")") if fields else ""
            )
        return _render_form(
            _with_blank_rows(form_echo(request.form)), errors, campaign=campaign, status=exc.status
        )
    db.session.commit()
    flash(_("已保存。"))
    return redirect(url_for("console.campaign_page", slug=slug), 303)


@bp.get("/campaigns/new")
@staff_required("admin", "manager")
def campaign_new():
    key = request.args.get("template")
    if key not in TEMPLATES:
        return render_template("console/campaign_templates.html", templates=template_names())
    doc = template_document(key)
    return _render_form(_with_blank_rows(form_values(doc)), summary=method_summary(doc))


@bp.post("/campaigns/new")
@staff_required("admin", "manager")
def campaign_create():
    return _handle()


@bp.get("/campaigns/<slug>/edit")
@staff_required("admin", "manager")
def campaign_edit(slug: str):
    campaign = campaign_for(slug, change=True)
    doc = domain.campaign_document(campaign)
    return _render_form(
        _with_blank_rows(form_values(doc)), campaign=campaign, summary=method_summary(doc)
    )


@bp.post("/campaigns/<slug>/edit")
@staff_required("admin", "manager")
def campaign_update(slug: str):
    return _handle(campaign_for(slug, change=True))


@bp.post("/campaigns/<slug>/publish")
@staff_required("admin", "manager")
def campaign_publish(slug: str):
    campaign = campaign_for(slug, change=True)
    try:
        domain.publish_campaign(campaign, actor())
    except ApiError as exc:
        db.session.rollback()
        flash(in_chinese(exc.message), "error")
        return redirect(url_for("console.campaign_page", slug=slug), 303)
    db.session.commit()
    flash(_("活动已发布，公众现在可以看到它。"))
    return redirect(url_for("console.campaign_page", slug=slug), 303)


@bp.get("/campaigns/<slug>")
@staff_required("admin", "manager", "observer")
def campaign_page(slug: str):
    campaign = campaign_for(slug)
    status = domain.campaign_status(campaign)
    doc = domain.campaign_document(campaign)
    entries = db.session.scalar(
        select(func.count()).select_from(Entry).where(Entry.campaign_id == campaign.id)
    )
    staff = current_staff()
    return render_template(
        "console/campaign.html",
        campaign=campaign,
        status=status,
        label=status_label(status),
        summary=method_summary(doc),
        entries=entries,
        may_change=staff is not None and staff_domain.can_change(staff, campaign),
        entries_locked=domain.entries_locked(campaign),
        rules_locked=domain.rules_locked(campaign),
        values=form_values(doc),
    )
