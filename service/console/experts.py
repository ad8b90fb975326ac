"""Console pages: experts (invite with an absolute personal link, its QR code and a
message to paste; assign entries in a grid; withdraw; issue a new link)."""

from __future__ import annotations

import segno
from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from ..domain import review as review_domain
from ..domain.campaigns import list_entries
from ..domain.expert_links import reissue_expert_token, review_path
from ..domain.staff import can_change
from ..errors import ApiError
from ..extensions import db
from ..models import Assignment
from ..urls import absolute_url
from . import bp
from .forms import in_chinese
from .guard import actor, campaign_for, current_staff, staff_required
from .review_gaps import flash_gaps


def qr_data_uri(url: str) -> str:
    """A QR code as an SVG data URI (the CSP allows data: images, nothing external)."""
    return segno.make(url, error="m").svg_data_uri(scale=4, border=2)


def _invitation(campaign, expert, token: str) -> dict:
    link = absolute_url(review_path(campaign.slug, token))
    message = _(
        "%(name)s 您好：请您为“%(title)s”评审。请用手机或电脑打开下面的个人链接（仅供您本人使用，"
        "请勿转发）：%(link)s",
        name=expert.name,
        title=campaign.title,
        link=link,
    )
    return {"name": expert.name, "link": link, "qr": qr_data_uri(link), "message": message}


def _page(slug, invitation=None, error=None, status=200):
    campaign = campaign_for(slug)
    experts = review_domain.list_experts(campaign)
    entries = list_entries(campaign)
    assigned: dict[int, set[int]] = {}
    for expert_id, entry_id in db.session.execute(
        select(Assignment.expert_id, Assignment.entry_id).where(
            Assignment.expert_id.in_([e.id for e in experts] or [0])
        )
    ):
        assigned.setdefault(expert_id, set()).add(entry_id)
    staff = current_staff()
    return (
        render_template(
            "console/experts.html",
            campaign=campaign,
            experts=experts,
            entries=entries,
            assigned=assigned,
            invitation=invitation,
            error=error,
            may_change=staff is not None and can_change(staff, campaign),
        ),
        status,
    )


@bp.get("/campaigns/<slug>/experts")
@staff_required("admin", "manager", "observer")
def experts_page(slug: str):
    return _page(slug)


@bp.post("/campaigns/<slug>/experts")
@staff_required("admin", "manager")
def expert_invite(slug: str):
    campaign = campaign_for(slug, change=True)
    name = (request.form.get("name") or "").strip()
    area = (request.form.get("area") or "").strip() or None
    if not name or len(name) > 200:
        return _page(slug, error=_("请填写专家姓名（最多 200 个字符）。"), status=422)
    expert, token = review_domain.add_expert(campaign, name, area, actor())
    db.session.commit()
    flash_gaps(campaign)
    return _page(slug, invitation=_invitation(campaign, expert, token))


@bp.post("/campaigns/<slug>/experts/<int:expert_id>/link")
@staff_required("admin", "manager")
def expert_new_link(slug: str, expert_id: int):
    campaign = campaign_for(slug, change=True)
    expert = review_domain.get_expert(campaign, expert_id)
    try:
        token = reissue_expert_token(campaign, expert, actor())
    except ApiError as exc:
        db.session.rollback()
        return _page(slug, error=in_chinese(exc.message), status=exc.status)
    db.session.commit()
    return _page(slug, invitation=_invitation(campaign, expert, token))


@bp.post("/campaigns/<slug>/experts/<int:expert_id>/withdraw")
@staff_required("admin", "manager")
def expert_withdraw(slug: str, expert_id: int):
    campaign = campaign_for(slug, change=True)
    review_domain.revoke_expert(campaign, expert_id, actor())
    db.session.commit()
    flash(_("已撤销该专家，其链接已失效；已提交的评分保留。"))
    flash_gaps(campaign)
    return redirect(url_for("console.experts_page", slug=slug), 303)


@bp.post("/campaigns/<slug>/experts/assignments")
@staff_required("admin", "manager")
def expert_assignments(slug: str):
    """The grid of checkboxes: one set_assignments per live expert, all in one commit."""
    campaign = campaign_for(slug, change=True)
    try:
        for expert in review_domain.list_experts(campaign):
            if expert.revoked_at is None:
                codes = request.form.getlist(f"assign.{expert.id}")
                review_domain.set_assignments(campaign, expert, codes, actor())
    except ApiError as exc:
        db.session.rollback()
        return _page(slug, error=in_chinese(exc.message), status=exc.status)
    db.session.commit()
    flash(_("评审分配已保存。"))
    flash_gaps(campaign)
    return redirect(url_for("console.experts_page", slug=slug), 303)
