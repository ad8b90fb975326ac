from flask import render_template
from sqlalchemy import select

from ..domain.campaigns import campaign_status
from ..extensions import db
from ..models import Campaign
from . import bp

STATUS_LABELS = {
    "draft": ("筹备中", "Draft"),
    "upcoming": ("即将开始", "Upcoming"),
    "voting": ("投票中", "Voting open"),
    "review": ("专家评审中", "Expert review"),
    "closed": ("已结束", "Closed"),
}


@bp.get("/")
def index():
    campaigns = db.session.scalars(select(Campaign).order_by(Campaign.id)).all()
    rows = [(c, STATUS_LABELS[campaign_status(c)]) for c in campaigns]
    return render_template("index.html", rows=rows)
