"""Console pages: staff accounts (admins only)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..domain import staff as staff_domain
from ..domain.campaigns import get_campaign
from ..errors import ApiError
from ..extensions import db
from ..models.staff import STAFF_ROLES
from ..urls import absolute_url
from ..web.render import in_voters_language
from . import bp
from .guard import actor, staff_required
from .home import visible_campaigns


def _page(link=None, error=None, status=200):
    members = staff_domain.list_staff()
    managed = {m.id: staff_domain.managed_campaign_ids(m) for m in members}
    return (
        render_template(
            "console/staff.html",
            members=members,
            managed=managed,
            campaigns=visible_campaigns(),
            roles=STAFF_ROLES,
            link=link,
            error=error,
        ),
        status,
    )


@bp.get("/staff")
@staff_required("admin")
def staff_list():
    return _page()


@bp.post("/staff")
@staff_required("admin")
def staff_add():
    try:
        member = staff_domain.add_staff(
            request.form.get("name", ""), request.form.get("role", ""), actor()
        )
        token = staff_domain.issue_password_link(member, actor())
    except ApiError as exc:
        db.session.rollback()
        return _page(error=in_voters_language(exc.message), status=exc.status)
    db.session.commit()
    link = (member.name, absolute_url(url_for("console.set_password", token=token)))
    return _page(link=link)


@bp.post("/staff/<int:staff_id>/link")
@staff_required("admin")
def staff_new_link(staff_id: int):
    member = staff_domain.get_staff(staff_id)
    token = staff_domain.issue_password_link(member, actor())
    db.session.commit()
    return _page(link=(member.name, absolute_url(url_for("console.set_password", token=token))))


@bp.post("/staff/<int:staff_id>")
@staff_required("admin")
def staff_update(staff_id: int):
    member = staff_domain.get_staff(staff_id)
    try:
        staff_domain.set_role(
            member,
            request.form.get("role", member.role),
            request.form.get("active") == "1",
            actor(),
        )
    except ApiError as exc:
        db.session.rollback()
        return _page(error=in_voters_language(exc.message), status=exc.status)
    db.session.commit()
    flash(_("已保存。"))
    return redirect(url_for("console.staff_list"))


@bp.post("/staff/<int:staff_id>/campaigns")
@staff_required("admin")
def staff_assign(staff_id: int):
    member = staff_domain.get_staff(staff_id)
    campaign = get_campaign(request.form.get("slug", ""))
    try:
        if request.form.get("remove") == "1":
            staff_domain.unassign_campaign(member, campaign, actor())
        else:
            staff_domain.assign_campaign(member, campaign, actor())
    except ApiError as exc:
        db.session.rollback()
        return _page(error=in_voters_language(exc.message), status=exc.status)
    db.session.commit()
    flash(_("已保存。"))
    return redirect(url_for("console.staff_list"))
