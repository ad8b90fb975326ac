"""The expert scoring pages: a personal link that starts a browser session, and the form.

An expert's review link (``/review/<slug>/login?token=…``) only shows a confirmation: the
session starts with a POST (CSRF-protected), so a link-preview bot that fetches the URL
changes nothing. The session holds the expert's id per campaign; the expert row is read
again on every request, so revoking the expert (``DELETE …/experts/{id}``) ends their
session at once. Scores go through ``submit_score``, the same function as the JSON API;
every rule (window, recusal, assignment, rubric) lives in the domain layer.
"""

from __future__ import annotations

import math
import unicodedata
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from marshmallow import ValidationError

from schemas.review import ScoreInSchema

from ..auth import principal_for
from ..domain.access import review_window
from ..domain.campaigns import get_campaign, list_entries
from ..domain.review import _assigned_ids, assignments, expert_for, is_recused, submit_score
from ..errors import ApiError
from ..extensions import db
from ..models import Campaign, Expert
from . import bp
from . import vote as vote_pages
from .render import error_page, in_voters_language

# Session key: {campaign id: expert id}, so one browser can hold the reviews of several
# campaigns without one login replacing another.
SESSION_KEY = "review_experts"
COMMENT_MAX = 5000
# Errors that concern the whole page rather than one entry's form.
PAGE_ERRORS = {"review_not_open", "review_closed", "not_found"}
ENDPOINTS = {"web.review_login", "web.review_logout", "web.review_page", "web.review_score"}


def _no_store(response):
    # The page shows an expert's own scores: never from a cache, never to the next user.
    response.headers["Cache-Control"] = "no-store"
    return response


def _points(value: Any) -> str:
    """Points as an expert would type them: 30, not 30.0."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _local(campaign: Campaign, at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(ZoneInfo(campaign.timezone)).strftime("%Y-%m-%d %H:%M")


def _window_state(campaign: Campaign) -> str:
    """For the notice only (the domain's window, named as its refusal codes);
    ``submit_score`` decides what is accepted."""
    state = review_window(campaign).state
    return {"not_open": "review_not_open", "closed": "review_closed"}.get(state, state)


# --- who is scoring --------------------------------------------------------------------


def _signed_in(campaign: Campaign) -> int | None:
    return (session.get(SESSION_KEY) or {}).get(str(campaign.id))


def _sign_in(campaign: Campaign, expert: Expert) -> None:
    experts = dict(session.get(SESSION_KEY) or {})
    experts[str(campaign.id)] = expert.id
    session[SESSION_KEY] = experts
    # An expert reviews over days; the link is opened once. Logout and revocation end it.
    session.permanent = True


def _sign_out(campaign: Campaign) -> None:
    experts = dict(session.get(SESSION_KEY) or {})
    if experts.pop(str(campaign.id), None) is not None:
        session[SESSION_KEY] = experts


def _expert_for_token(campaign: Campaign, token: str) -> Expert | ApiError:
    """The live expert of this campaign behind a token, or the reason to refuse it."""
    principal = principal_for(token)
    if principal is None or principal.role != "expert" or principal.expert_id is None:
        return ApiError(403, "invalid_expert_token")
    try:
        return expert_for(principal, campaign)
    except ApiError as exc:
        if exc.code == "forbidden":
            return ApiError(403, "wrong_campaign")
        return ApiError(403, "invalid_expert_token")


def _token_refused(error: ApiError):
    if error.code == "wrong_campaign":
        message = _("这个评审链接属于另一个评选活动。请打开主办方发给您的本活动评审链接。")
    else:
        message = _("评审链接无效，或您的评审资格已被撤销。请向主办方索取新的评审链接。")
    return error_page(403, error.code, message, {"Cache-Control": "no-store"})


def _current_expert(campaign: Campaign) -> Expert | None | ApiError:
    """The signed-in expert (None: nobody), checked against the database every time."""
    expert_id = _signed_in(campaign)
    if expert_id is None:
        return None
    expert = db.session.get(Expert, expert_id)
    if expert is None or expert.revoked_at is not None or expert.campaign_id != campaign.id:
        _sign_out(campaign)
        return ApiError(403, "expert_revoked")
    return expert


def _revoked_page():
    return error_page(
        403,
        "expert_revoked",
        _("您的评审资格已被撤销，不能再查看或提交评分。如有疑问，请联系主办方。"),
        {"Cache-Control": "no-store"},
    )


# --- messages --------------------------------------------------------------------------


def _window_text(code: str, campaign: Campaign) -> str:
    window = review_window(campaign)
    if code == "review_not_open":
        opens = _local(campaign, window.opens_at)
        text = _("评审尚未开始，现在只能浏览，不能评分。")
        return text + (" " + _("开始时间：%(t)s", t=opens) if opens else "")
    closes = _local(campaign, window.closes_at)
    text = _("评审已经结束，评分不能再提交或修改。")
    return text + (" " + _("截止时间：%(t)s", t=closes) if closes else "")


def _error_text(exc: ApiError, campaign: Campaign, field: str) -> str:
    """The expert-facing message for an error code, for one field, in their language."""
    details = exc.details or {}
    if exc.code in ("review_not_open", "review_closed"):
        return _window_text(exc.code, campaign)
    if exc.code == "validation_error":
        if field == "comment":
            return _("评语最多 %(n)s 字，请删减后再保存。", n=COMMENT_MAX)
        return _("请输入数字，例如 32 或 32.5。")
    messages = {
        "out_of_range": lambda: _(
            "分数须在 0 到 %(max)s 之间。", max=_points(details.get("max", 0))
        ),
        "missing_criterion": lambda: _("请填写这一项的分数。"),
        "recused": lambda: _("该项目与您同属一个居民区，按规定须回避，不能由您评分。"),
        "not_assigned": lambda: _("该项目没有分配给您评审。"),
        "unknown_criterion": lambda: _("表单中的评分项与本次评审不符，请刷新页面后重新填写。"),
        "not_found": lambda: _("本次评审中没有这个参评项目。"),
    }
    if exc.code in messages:
        return messages[exc.code]()
    # Codes without a translation here: the domain message is "中文 / English".
    return in_voters_language(exc.message)


def _placed_errors(exc: ApiError, campaign: Campaign, keys: list[str]) -> dict[str, dict[str, str]]:
    """Where each part of an error is shown: {criterion key | "comment" | "form": error}."""
    details = exc.details or {}
    fields: list[Any]
    if exc.code == "out_of_range":
        fields = [details.get("criterion")]
    elif exc.code == "missing_criterion":
        fields = list(details.get("criteria") or [])
    elif exc.code == "validation_error":
        found = details.get("fields") or {}
        fields = list(found.get("scores") or {}) + (["comment"] if "comment" in found else [])
    else:
        fields = []
    fields = [f for f in fields if f in keys or f == "comment"] or ["form"]
    return {f: {"code": exc.code, "message": _error_text(exc, campaign, f)} for f in fields}


# --- the page --------------------------------------------------------------------------


def _recused_count(campaign: Campaign, expert: Expert) -> int:
    """Entries this expert would score but for recusal (told, so none seems missing)."""
    assigned = _assigned_ids(expert)
    return sum(
        1
        for entry in list_entries(campaign)
        if (not assigned or entry.id in assigned) and is_recused(campaign, expert, entry)
    )


def _render_page(
    campaign: Campaign,
    expert: Expert,
    *,
    failed: str | None = None,
    typed: dict[str, Any] | None = None,
    error: ApiError | None = None,
    status: int = 200,
):
    state = _window_state(campaign)
    window = review_window(campaign)
    criteria = list(campaign.criteria)
    keys = [c.key for c in criteria]
    listed = assignments(campaign, expert)["entries"]
    codes = {e["code"] for e in listed}

    page_error = None
    entry_errors: dict[str, dict] = {}
    if error is not None:
        if error.code in PAGE_ERRORS or failed not in codes:
            if error.code != state:  # the window notice already says it
                page_error = {"code": error.code, "message": _error_text(error, campaign, "form")}
        else:
            entry_errors = _placed_errors(error, campaign, keys)

    entries = []
    for item in listed:
        score = item["score"]
        if item["code"] == failed and typed is not None:
            values, comment = typed["scores"], typed["comment"]
        elif score is not None:
            values = {k: _points(v) for k, v in score["scores"].items()}
            comment = score["comment"] or ""
        else:
            values, comment = {}, ""
        entries.append(
            {
                **item,
                "values": values,
                "comment": comment,
                "errors": entry_errors if item["code"] == failed else {},
                "total": _points(round(score["total"], 1)) if score else None,
            }
        )

    saved = request.args.get("saved")
    saved_entry = next((e for e in entries if e["code"] == saved and e["score"]), None)
    html = render_template(
        "review.html",
        campaign=campaign,
        expert=expert,
        state=state,
        window_text=_window_text(state, campaign) if state != "open" else None,
        opens_at=_local(campaign, window.opens_at),
        closes_at=_local(campaign, window.closes_at),
        criteria=[
            {
                "key": c.key,
                "label": c.label or c.key,
                "max": _points(c.max_points),
                "weight": _points(c.weight),
            }
            for c in criteria
        ],
        weighted=len({float(c.weight) for c in criteria}) > 1,
        entries=entries,
        scored=sum(1 for e in entries if e["score"]),
        recused=_recused_count(campaign, expert),
        saved=saved_entry,
        page_error=page_error,
        failed=failed if entry_errors else None,
        comment_max=COMMENT_MAX,
    )
    return _no_store(make_response(html, status))


def _parse_form(keys: list[str]) -> tuple[dict[str, Any], dict[str, Any], ApiError | None]:
    """The typed values, the scores to submit, and a per-field error for non-numbers.

    Blank fields are left out, so the domain names every missing criterion at once.
    """
    typed: dict[str, Any] = {"scores": {}, "comment": request.form.get("comment", "")}
    scores: dict[str, float] = {}
    not_numbers: dict[str, list[str]] = {}
    for key in keys:
        raw = request.form.get(f"score-{key}", "")
        typed["scores"][key] = raw
        # NFKC: a Chinese input method may type full-width digits (３２．５).
        text = unicodedata.normalize("NFKC", raw).strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            not_numbers[key] = ["not a number"]
            continue
        scores[key] = value
    fields: dict[str, Any] = {"scores": not_numbers} if not_numbers else {}
    comment = typed["comment"].strip() or None
    try:
        data = ScoreInSchema().load({"scores": scores, "comment": comment})
    except ValidationError as exc:
        fields.update(exc.messages if isinstance(exc.messages, dict) else {})
    if fields:
        return typed, {}, ApiError(422, "validation_error", details={"fields": fields})
    return typed, data, None


@bp.route("/review/<slug>/login", methods=["GET", "POST"])
def review_login(slug: str):
    """GET: confirm (or type) the token; POST: start the expert's session, 303 to the page."""
    campaign = get_campaign(slug)
    if request.method == "GET":
        token = request.args.get("token", "").strip()
        expert = None
        if token:
            expert = _expert_for_token(campaign, token)
            if isinstance(expert, ApiError):
                return _token_refused(expert)
        html = render_template("review_login.html", campaign=campaign, expert=expert, token=token)
        return _no_store(make_response(html))
    expert = _expert_for_token(campaign, request.form.get("token", "").strip())
    if isinstance(expert, ApiError):
        return _token_refused(expert)
    _sign_in(campaign, expert)
    return redirect(url_for("web.review_page", slug=slug), 303)


@bp.post("/review/<slug>/logout")
def review_logout(slug: str):
    """End this browser's session for the campaign (the link still works for a new one)."""
    _sign_out(get_campaign(slug))
    return redirect(url_for("web.review_login", slug=slug), 303)


@bp.get("/review/<slug>")
def review_page(slug: str):
    """The entries to score with the expert's own scores; read-only outside the window."""
    campaign = get_campaign(slug)
    expert = _current_expert(campaign)
    if expert is None:
        return redirect(url_for("web.review_login", slug=slug), 303)
    if isinstance(expert, ApiError):
        return _revoked_page()
    return _render_page(campaign, expert)


@bp.post("/review/<slug>/<code>")
def review_score(slug: str, code: str):
    """Score (or revise) one entry, commit, 303 back to it; errors re-render the page."""
    campaign = get_campaign(slug)
    expert = _current_expert(campaign)
    if expert is None:
        return redirect(url_for("web.review_login", slug=slug), 303)
    if isinstance(expert, ApiError):
        return _revoked_page()
    typed, data, error = _parse_form([c.key for c in campaign.criteria])
    if error is None:
        try:
            submit_score(campaign, expert, code, data["scores"], data["comment"])
        except ApiError as exc:
            db.session.rollback()
            error = exc
    if error is not None:
        return _render_page(
            campaign, expert, failed=code, typed=typed, error=error, status=error.status
        )
    db.session.commit()  # durable before the expert is told it is saved
    return redirect(url_for("web.review_page", slug=slug, saved=code, _anchor=f"entry-{code}"), 303)


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError):
    """The review pages' own wording; every other page keeps the voting form's.

    A blueprint has one handler per exception class: this module imports ``vote`` first,
    so this one replaces the voting form's handler and hands other pages back to it.
    """
    if request.endpoint in ENDPOINTS:
        return error_page(
            400,
            "csrf_failed",
            _("页面已过期，请返回评审页面刷新后重新提交。"),
            {"Cache-Control": "no-store"},
        )
    return vote_pages.csrf_failed(exc)
