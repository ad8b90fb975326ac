"""The console's home: the campaigns this staff member may see."""

from __future__ import annotations

from flask import render_template
from flask_babel import gettext as _
from sqlalchemy import func, select

from ..domain import staff as staff_domain
from ..domain.campaigns import campaign_status
from ..extensions import db
from ..models import Campaign, Entry
from ..web.pages import status_label
from . import bp
from .guard import current_staff, staff_required


def visible_campaigns() -> list[Campaign]:
    staff = current_staff()
    query = select(Campaign).order_by(Campaign.id.desc())
    if staff is not None and staff.role == "manager":
        query = query.where(Campaign.id.in_(staff_domain.managed_campaign_ids(staff)))
    return list(db.session.scalars(query))


@bp.get("")
@bp.get("/")
@staff_required("admin", "manager", "observer")
def home():
    campaigns = visible_campaigns()
    counts = dict(
        db.session.execute(
            select(Entry.campaign_id, func.count()).group_by(Entry.campaign_id)
        ).all()
    )
    rows = [
        {
            "campaign": c,
            "status": campaign_status(c),
            "label": status_label(campaign_status(c)),
            "entries": counts.get(c.id, 0),
        }
        for c in campaigns
    ]
    return render_template("console/home.html", rows=rows)


def role_label(role: str) -> str:
    return {"admin": _("管理员"), "manager": _("活动负责人"), "observer": _("监督员")}.get(
        role, role
    )


@bp.context_processor
def _console_helpers():
    return {"console_staff": current_staff, "role_label": role_label}
