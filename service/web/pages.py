from urllib.parse import urlencode

from flask import has_request_context, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import select

from ..domain.campaigns import campaign_status
from ..extensions import db
from ..models import Campaign, Publication, RankingRun
from . import bp
from .render import in_voters_language


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


@bp.app_template_filter("in_lang")
def _in_lang(text: str | None) -> str:
    """A bilingual "中文 / English" text (a campaign title, say) in the page's language."""
    return in_voters_language(text) if text else ""


def _size_url(size: str) -> str:
    """The current page with the text size switched (kept in the session from then on)."""
    args = request.args.to_dict()
    args["size"] = size
    return f"{request.path}?{urlencode(args)}"


@bp.before_app_request
def _remember_text_size():
    """大字版: ``?size=large`` (or ``normal``) on any page sets the text size for the rest
    of the visit; it works with links alone, no script."""
    size = request.args.get("size")
    if size in ("large", "normal"):
        session["size"] = size


@bp.app_context_processor
def _language():
    if not has_request_context():
        return {}
    english = str(get_locale()) == "en"
    large = session.get("size") == "large"
    return {
        "large_text": large,
        # Not on pages whose URL carries a secret token (kiosk enrolment, expert link):
        # the switch's link would repeat it.
        "size_switch": None
        if "token" in request.args
        else (_("标准字"), _size_url("normal"))
        if large
        else (_("大字版"), _size_url("large")),
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
    # Drafts are invisible to the public.
    campaigns = list(
        db.session.scalars(select(Campaign).where(Campaign.draft.is_(False)).order_by(Campaign.id))
    )
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
