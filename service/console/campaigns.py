"""Console pages: campaigns (new from a template, the form, publish)."""

from __future__ import annotations

from flask import render_template

from ..domain.campaigns import campaign_status
from ..web.pages import status_label
from . import bp
from .guard import campaign_for, staff_required


@bp.get("/campaigns/new")
@staff_required("admin", "manager")
def campaign_new():
    return render_template("console/message.html", heading="…", message="…")


@bp.get("/campaigns/<slug>")
@staff_required("admin", "manager", "observer")
def campaign_page(slug: str):
    campaign = campaign_for(slug)
    status = campaign_status(campaign)
    return render_template(
        "console/campaign.html", campaign=campaign, status=status, label=status_label(status)
    )
