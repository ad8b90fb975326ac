from urllib.parse import urlencode

from flask import has_request_context, render_template, request
from flask_babel import get_locale
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


def _lang_url(lang: str) -> str:
    """The current page in another language (a relative URL; the choice is kept in the
    session, so later pages, the receipt's refresh included, stay in it)."""
    args = request.args.to_dict()
    args["lang"] = lang
    return f"{request.path}?{urlencode(args)}"


@bp.app_context_processor
def _language():
    if not has_request_context():
        return {}
    english = str(get_locale()) == "en"
    return {
        "html_lang": "en" if english else "zh-CN",
        "other_lang": (
            ("中文", "zh-CN", _lang_url("zh")) if english else ("English", "en", _lang_url("en"))
        ),
    }


@bp.get("/")
def index():
    campaigns = db.session.scalars(select(Campaign).order_by(Campaign.id)).all()
    rows = [(c, campaign_status(c)) for c in campaigns]
    rows = [(c, STATUS_LABELS[status], status == "voting") for c, status in rows]
    return render_template("index.html", rows=rows)
