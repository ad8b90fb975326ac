from urllib.parse import urlencode

from flask import has_request_context, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import select

from ..domain.campaigns import campaign_status
from ..extensions import db
from ..models import Campaign, Publication, RankingRun
from . import bp


def status_label(status: str) -> str:
    """A campaign's phase (``campaign_status``) in the reader's language."""
    return {
        "draft": _("筹备中"),
        "upcoming": _("即将开始"),
        "voting": _("投票中"),
        "review": _("专家评审中"),
        "closed": _("已结束"),
    }.get(status, status)


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


def results_shown(campaigns: list[Campaign]) -> dict[int, str]:
    """{campaign id: "published" | "provisional"} for campaigns whose results page has
    something to show: the cases in which ``results_document`` answers, found with two
    queries instead of loading every campaign's document."""
    published = set(db.session.scalars(select(Publication.campaign_id).distinct()))
    computed = set(
        db.session.scalars(
            select(RankingRun.campaign_id).where(RankingRun.status == "finished").distinct()
        )
    )
    shown = {}
    for c in campaigns:
        if c.id in published:
            shown[c.id] = "published"
        elif c.rules.results.live and c.id in computed:
            shown[c.id] = "provisional"
    return shown


@bp.get("/")
def index():
    campaigns = list(db.session.scalars(select(Campaign).order_by(Campaign.id)))
    shown = results_shown(campaigns)
    rows = []
    for c in campaigns:
        status = campaign_status(c)
        rows.append(
            {
                "campaign": c,
                "status": status,
                "label": status_label(status),
                "vote_url": url_for("web.vote", slug=c.slug) if status == "voting" else None,
                "results": shown.get(c.id),
                "results_url": url_for("web.results_page", slug=c.slug) if c.id in shown else None,
            }
        )
    return render_template("index.html", rows=rows)
