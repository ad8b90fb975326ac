"""The kiosk and web voting form, the receipt page and the receipt lookup.

Plain HTML forms, no JavaScript. The view only parses the form, decides the channel from
the kiosk cookie and calls ``cast_ballot`` (the same function as the JSON API); every
rule lives in the domain layer.

A long ballot (90 buildings) is filtered by 居民区, category and a name search: the
filter button posts the ballot form itself (``action=filter``), so the ticked entries,
the ballot id and the SMS step survive it; ``GET ?area=&category=&q=`` gives the same
filtered form fresh. Entries that are ticked but outside the filter stay on the page, in
a group of their own. On a personal device what the voter typed comes back after a
refused ballot or a filter; on an enrolled kiosk (shared by strangers) it never does.
"""

from __future__ import annotations

import math
import time
import typing
import uuid
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import segno
from flask import current_app, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError
from marshmallow import ValidationError
from sqlalchemy import select

from schemas.ballot import BallotFormSchema
from schemas.rules import VotingRules

from .. import ratelimit
from ..api.verifications import SMS_LIMIT_SCOPE, sms_rate_key, sms_rate_limit
from ..clock import now
from ..domain import verification as verify
from ..domain.access import check_channel, voting_window
from ..domain.ballots import cast_ballot, normalise_receipt, receipt_lookup
from ..domain.campaigns import campaign_for_ballots, list_entries, visible_campaign
from ..errors import ApiError
from ..extensions import db, limiter
from ..models import Ballot, Campaign
from . import bp
from .kiosk import current_device, kiosk_refused
from .pages import results_shown
from .render import error_page, in_voters_language

# Seconds the receipt stays on screen before a kiosk returns to a fresh form.
RECEIPT_SECONDS = 8

# Where an error is shown: next to the voter-id input, the entry list, or the form top.
ERROR_FIELD = {
    "invalid_voter_id": "voter_id",
    "already_voted": "voter_id",
    "too_few_choices": "choices",
    "too_many_choices": "choices",
    "duplicate_choice": "choices",
    "unknown_entry": "choices",
    "not_on_roll": "voter_id",
    "outside_area": "choices",
    "resend_too_soon": "voter_id",
    "too_many_codes": "voter_id",
    "sms_unavailable": "voter_id",
    "verification_required": "code",
    "invalid_code": "code",
    "code_expired": "code",
    "too_many_attempts": "code",
}
# After these the ballot id can never succeed again, so the next attempt gets a new one.
FRESH_BALLOT_ID_AFTER = {"already_voted", "ballot_id_reused"}
# After these the code can never succeed again: the voter asks for a new one.
FRESH_CODE_AFTER = {"code_expired", "too_many_attempts", "already_voted"}


def _rate_key() -> str:
    return f"ip:{get_remote_address()}"


def _rate_limit() -> str:
    return current_app.config["RATELIMIT_BALLOTS_WEB"]


def _web_limit_exempt() -> bool:
    # A filter only re-renders the form; an enrolled kiosk is limited by leases (vote()).
    return _filtering() or current_device().is_kiosk


def _local(campaign: Campaign, at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(ZoneInfo(campaign.timezone)).strftime("%Y-%m-%d %H:%M")


def _voter_field(kind: str) -> dict:
    if kind == "cn_resident_id":
        return {
            "label": _("身份证号"),
            "inputmode": "text",
            "maxlength": 24,
            "hint": _("18 位，最后一位可以是 X。号码只用于防止重复投票，不会被保存。"),
        }
    if kind == "member_code":
        return {
            "label": _("会员编号"),
            "inputmode": "text",
            "maxlength": 64,
            "hint": _("编号只用于防止重复投票，不会被保存。"),
        }
    return {
        "label": _("手机号"),
        "inputmode": "numeric",
        "maxlength": 20,
        "hint": _("11 位手机号。号码只用于防止重复投票，不会被保存。"),
    }


def _rule_text(voting: VotingRules) -> str:
    low, high = voting.min_choices, voting.max_choices
    if low == high:
        rule = _("请选择 %(n)s 项。", n=high)
    else:
        rule = _("请选择 %(min)s–%(max)s 项。", min=low, max=high)
    if voting.limit == "daily":
        return rule + " " + _("每人每天限投一次。")
    return rule + " " + _("每人限投一次。")


def _error_text(exc: ApiError, kind: str) -> str:
    """The voter-facing message for an error code, in the voter's language."""
    details = exc.details or {}
    if exc.code == "invalid_voter_id":
        return {
            "cn_resident_id": _("请输入正确的 18 位身份证号（最后一位可以是 X）。"),
            "member_code": _("请输入会员编号（1–64 个字符）。"),
        }.get(kind, _("请输入正确的 11 位手机号。"))
    if exc.code == "invalid_code":
        left = details.get("attempts_left")
        if left:
            return _("验证码不正确，请核对短信后重新输入（还可以再试 %(n)s 次）。", n=left)
        return _("验证码不正确，请核对短信后重新输入。")
    if exc.code == "resend_too_soon":
        return _("验证码刚刚发送过，请 %(n)s 秒后再重新发送。", n=details.get("retry_after", 60))
    if exc.code == "already_voted":
        if details.get("limit") == "daily":
            return _("您今天已经投过票了，每人每天限投一次。")
        return _("您已经投过票了，每人限投一次。")
    messages = {
        "too_few_choices": lambda: _("请至少选择 %(n)s 项。", n=details.get("min", 1)),
        "too_many_choices": lambda: _(
            "最多只能选择 %(n)s 项，请取消多余的选择。", n=details.get("max", 1)
        ),
        "duplicate_choice": lambda: _("同一项目不能重复选择。"),
        "unknown_entry": lambda: _("所选项目不在本次评选中，请重新选择。"),
        "not_on_roll": lambda: _(
            "您填写的信息不在本次评选的选民名册中，无法投票。如有疑问，请联系居委会。"
        ),
        "outside_area": lambda: _(
            "只能选择您所在居民区或网格的项目，请取消以下项目：%(codes)s。",
            codes="、".join(details.get("codes", [])),
        ),
        "voting_not_open": lambda: _("投票尚未开始。"),
        "voting_closed": lambda: _("投票已经结束，感谢您的关注。"),
        "channel_not_allowed": lambda: _("本次评选不接受这种投票方式。"),
        "ballot_id_reused": lambda: _("这张选票已经提交过。如需再次投票，请重新填写。"),
        "bad_request": lambda: _("表单不完整，请重新填写并提交。"),
        "verification_required": lambda: _("请先点击“发送验证码”，再填写短信中的 6 位验证码。"),
        "code_expired": lambda: _("验证码已过期，请重新发送验证码。"),
        "too_many_attempts": lambda: _("验证码错误次数过多，请重新发送验证码。"),
        "too_many_codes": lambda: _(
            "这个号码今天获取验证码的次数已达上限，请明天再试或到现场投票点投票。"
        ),
        "sms_unavailable": lambda: _("短信暂时发送失败，请稍后重试。"),
        "sms_budget_exhausted": lambda: _("今日短信验证码已发完，请明天再试或到现场投票点投票。"),
    }
    if exc.code in messages:
        return messages[exc.code]()
    # Codes without a translation here: the domain message is "中文 / English".
    return in_voters_language(exc.message)


# The longest search text and area/category value kept from a request.
FILTER_MAX = 100


def _filters(source) -> dict[str, str]:
    """The list filter from a query string or the posted form: 居民区， category, words."""
    return {
        key: " ".join(str(source.get(key, "")).split())[:FILTER_MAX]
        for key in ("area", "category", "q")
    }


def _matches(entry, filters: dict[str, str]) -> bool:
    if filters["area"] and (entry.area or "") != filters["area"]:
        return False
    if filters["category"] and (entry.category or "") != filters["category"]:
        return False
    words = filters["q"].casefold()
    if words:
        text = " ".join(filter(None, (entry.code, entry.title, entry.area, entry.grid)))
        return all(word in text.casefold() for word in words.split())
    return True


def _money(value) -> str:
    number = float(value)
    return f"{int(number):,}" if number.is_integer() else f"{number:,.2f}"


def _ballot_list(campaign: Campaign, filters: dict[str, str], chosen: set[str]) -> dict:
    """The entries to show, grouped by category, and what the filter controls offer.

    Ticked entries outside the filter are listed first in a group of their own, so a
    filter never hides (or silently drops) a choice."""
    entries = list_entries(campaign)
    shown = [e for e in entries if _matches(e, filters)]
    kept = [e for e in entries if e.code in chosen and e not in shown]
    groups: dict[str, list] = {}
    for entry in shown:
        groups.setdefault(entry.category or _("其他"), []).append(entry)
    return {
        "groups": list(groups.items()),
        "kept": kept,
        "areas": sorted({e.area for e in entries if e.area}),
        "categories": list(dict.fromkeys(e.category for e in entries if e.category)),
        "shown_count": len(shown),
        "total_count": len(entries),
        "filtered": any(filters.values()),
        "with_cost": any(e.cost is not None for e in entries),
        "money": _money,
    }


def _no_store(response):
    # The form carries a ballot id and the voter's input: a kiosk must never show a cached
    # copy to the next voter (back button, bfcache).
    response.headers["Cache-Control"] = "no-store"
    return response


def _render_form(
    campaign: Campaign,
    *,
    ballot_id: str | None = None,
    chosen: Sequence[str] | None = None,
    error: ApiError | None = None,
    status: int = 200,
    sms: dict | None = None,
    filters: dict[str, str] | None = None,
    typed: str = "",
):
    """The form; ``sms`` carries the SMS step's state (verification id, and right after
    sending: where and until when); ``typed`` the voter's identifier as they typed it,
    shown again on a personal device only."""
    voting = campaign.rules.voting
    kind = voting.voter_id
    device = current_device()
    errors: dict[str, dict] = {}
    if error is not None:
        errors[ERROR_FIELD.get(error.code, "form")] = {
            "code": error.code,
            "message": _error_text(error, kind),
        }
    window = voting_window(campaign)
    chosen_set = set(chosen or ())
    filters = filters or _filters({})
    closed_results = None
    if window.state == "closed" and results_shown([campaign]):
        closed_results = url_for("web.results_page", slug=campaign.slug)
    html = render_template(
        "vote.html",
        campaign=campaign,
        state=window.state,
        opens_at=_local(campaign, window.opens_at),
        closes_at=_local(campaign, window.closes_at),
        rule=_rule_text(voting),
        voter=_voter_field(kind),
        ballot_id=ballot_id or str(uuid.uuid4()),
        chosen=chosen_set,
        chosen_count=len(chosen_set),
        errors=errors,
        device=device,
        verify_sms=verify.required(campaign, "kiosk" if device.is_kiosk else "web"),
        sms=sms or {},
        typed="" if device.is_kiosk else typed[:FILTER_MAX],
        filters=filters,
        results_url=closed_results,
        **_ballot_list(campaign, filters, chosen_set),
    )
    return _no_store(make_response(html, status))


def _local_time(campaign: Campaign, at: datetime) -> str:
    return at.astimezone(ZoneInfo(campaign.timezone)).strftime("%H:%M:%S")


def _send_code(campaign: Campaign, ballot_id: str, form: dict, channel: str):
    """The form's 发送验证码 button: send a code, and show the form again with the typed
    number kept, the code field and when a new code may be asked for (no script)."""
    chosen = form["choices"]
    number = form["voter_id"][:20]
    sms = {"verification_id": form["verification_id"][:36]}
    kept = {"filters": _filters(form), "typed": number}
    try:
        issued = verify.request_code(campaign, number, channel)
    except ApiError as exc:
        db.session.rollback()
        return _render_form(
            campaign,
            ballot_id=ballot_id,
            chosen=chosen,
            error=exc,
            status=exc.status,
            sms=sms,
            **kept,
        )
    sms.update(
        # The number the code was sent to stays in the field, on a kiosk too: the code
        # only goes with it (not an error: the voter is mid-way through the step).
        voter_id=number,
        verification_id=issued.id,
        sent_to=issued.masked,
        expires_at=_local_time(campaign, issued.expires_at),
        resend_at=_local_time(campaign, issued.resend_after),
        resend_seconds=int((issued.resend_after - now()).total_seconds()),
    )
    return _render_form(campaign, ballot_id=ballot_id, chosen=chosen, sms=sms, **kept)


def _refusal(campaign: Campaign):
    """An error page when this browser may not vote in the campaign at all, else None."""
    device = current_device()
    if device.revoked:
        return kiosk_refused()
    try:
        check_channel(campaign, "kiosk" if device.is_kiosk else "web")
    except ApiError as exc:
        if device.is_kiosk:
            message = _("本次评选不接受投票终端投票，请使用网页投票。")
        else:
            message = _(
                "本次评选只接受投票终端投票，本设备不是已登记的投票终端。请到现场投票点投票。"
            )
        return error_page(exc.status, exc.code, message, {"Cache-Control": "no-store"})
    return None


def _not_sending() -> bool:
    return request.form.get("action") != "send_code"


def _filtering() -> bool:
    # The filter button only re-renders the form, as a GET would: not a ballot attempt.
    return request.form.get("action") in ("filter", "show_all")


@bp.route("/vote/<slug>", methods=["GET", "POST"])
@limiter.limit(_rate_limit, key_func=_rate_key, methods=["POST"], exempt_when=_web_limit_exempt)
@limiter.shared_limit(
    sms_rate_limit,
    scope=SMS_LIMIT_SCOPE,
    key_func=sms_rate_key,
    methods=["POST"],
    exempt_when=_not_sending,
)
def vote(slug: str):
    """GET: a fresh form with a new ballot id. POST: cast, commit, 303 to the receipt."""
    if request.method == "GET":
        campaign = visible_campaign(slug, False)
        refused = _refusal(campaign)
        if refused is not None:
            return refused
        return _render_form(campaign, filters=_filters(request.args))
    return _post_ballot(slug)


def _post_ballot(slug: str):
    """A ballot (or a filter, or the SMS step) posted. The ballot itself reads the cached
    campaign (rules and entry codes, as the JSON API); the ORM row is loaded only to
    render the form again."""
    # A LockedCampaign has all that the checks and cast_ballot read of a Campaign.
    locked = typing.cast(Campaign, campaign_for_ballots(slug))  # locked: never a draft
    if locked.draft:
        locked = visible_campaign(slug, False)  # 404 for the public
    loaded: list[Campaign] = []

    def full() -> Campaign:
        if isinstance(locked, Campaign):  # not locked yet: the ORM row already
            return locked
        if not loaded:
            loaded.append(visible_campaign(slug, False))
        return loaded[0]

    refused = _refusal(locked)
    if refused is not None:
        return refused
    device = current_device()
    if device.is_kiosk and not _filtering():
        retry = ratelimit.hit(
            f"form:kiosk:{device.kiosk_id}", current_app.config["RATELIMIT_BALLOTS_KIOSK"]
        )
        if retry is not None:
            return _rate_limited_page(retry)
    campaign = locked
    posted = {**request.form.to_dict(), "choices": request.form.getlist("choices")}
    try:
        form = BallotFormSchema().load(posted)
    except ValidationError:
        error = ApiError(400, "bad_request")
        return _render_form(
            full(),
            chosen=posted["choices"],
            error=error,
            status=400,
            filters=_filters(posted),
            typed=str(posted.get("voter_id", "")),
        )
    ballot_id, chosen = str(form["ballot_id"]), form["choices"]
    channel = "kiosk" if device.is_kiosk else "web"
    sms_step = verify.required(campaign, channel)
    if form["action"] in ("filter", "show_all"):
        sms = {"verification_id": form["verification_id"][:36]} if sms_step else None
        return _render_form(
            full(),
            ballot_id=ballot_id,
            chosen=chosen,
            sms=sms,
            filters=_filters(form if form["action"] == "filter" else {}),
            typed=form["voter_id"],
        )
    if sms_step and form["action"] == "send_code":
        return _send_code(full(), ballot_id, form, channel)
    verification = None
    if sms_step and form["verification_id"]:
        verification = {"id": form["verification_id"][:36], "code": form["code"][:16]}
    try:
        result = cast_ballot(
            campaign,
            ballot_id=ballot_id,
            voter_id=form["voter_id"],
            choices=chosen,
            channel=channel,
            kiosk_id=device.kiosk_id,
            codes=getattr(campaign, "codes", None),
            isolated=False,  # one ballot: the request's transaction is its own
            autocommit=True,  # an enrolled kiosk on a locked campaign: one statement
            verification=verification,
        )
    except ApiError as exc:
        db.session.rollback()
        sms = None
        if sms_step:  # the code step stays on the page
            keep = verification and exc.code not in FRESH_CODE_AFTER
            sms = {"verification_id": verification["id"] if verification and keep else ""}
        return _render_form(
            full(),
            ballot_id=None if exc.code in FRESH_BALLOT_ID_AFTER else ballot_id,
            chosen=chosen,
            error=exc,
            status=exc.status,
            sms=sms,
            filters=_filters(form),
            typed=form["voter_id"],
        )
    receipt = result.ballot.receipt
    db.session.commit()  # the ballot is durable before the voter sees a receipt
    return redirect(url_for("web.receipt", slug=slug, receipt=receipt), 303)


def receipt_address(code: str) -> str:
    """The absolute address of a receipt's plain-words page: what the QR code holds."""
    return url_for("web.receipt_status_page", code=code, _external=True)


def receipt_qr(address: str) -> str:
    """The receipt page's QR code (inline SVG) for ``address``."""
    return segno.make(address, error="m").svg_inline(
        scale=4, omitsize=True, svgclass="qr", lineclass="qr-line"
    )


@bp.get("/vote/<slug>/receipt/<receipt>")
def receipt(slug: str, receipt: str):
    """The receipt code, large and as a QR code of its lookup address; on an enrolled
    kiosk only, the page returns to a fresh form by itself for the next voter."""
    ballot = db.session.scalar(
        select(Ballot)
        .join(Campaign, Campaign.id == Ballot.campaign_id)
        .where(Campaign.slug == slug, Ballot.receipt == normalise_receipt(receipt))
    )
    if ballot is None:
        return error_page(404, "not_found", _("未找到该回执。"))
    campaign = db.session.get(Campaign, ballot.campaign_id)
    assert campaign is not None  # the ballot's foreign key
    address = receipt_address(ballot.receipt)
    html = render_template(
        "receipt.html",
        campaign=campaign,
        receipt=ballot.receipt,
        lookup_url=address,
        qr_svg=receipt_qr(address),
        seconds=RECEIPT_SECONDS,
        vote_url=url_for("web.vote", slug=campaign.slug),
        # On a kiosk a link would leave the page that returns to the form for the next
        # voter: the lookup address is shown as text to note down, not to follow.
        on_kiosk=current_device().is_kiosk,
    )
    return _no_store(make_response(html))


def _status_text(result: dict) -> str:
    status = result.get("status")
    if status == "counted":
        return _("已计入：您的选票已计入第 %(v)s 版公示结果。", v=result.get("publication", "?"))
    if status == "excluded":
        if result.get("publication"):
            return _("已排除：这张选票没有计入第 %(v)s 版公示结果。", v=result.get("publication"))
        return _("已排除：这张选票没有计入结果。")
    return _("已记录：您的选票已安全保存，结果公示后将计入统计。")


@bp.get("/receipt")
def receipt_lookup_page():
    """The lookup form; a typed code goes to its page, ``/receipt/<code>``."""
    code = request.args.get("code", "").strip()
    if code:
        normalised = normalise_receipt(code[:64])
        if normalised:
            return redirect(url_for("web.receipt_status_page", code=normalised), 303)
    return make_response(render_template("receipt_lookup.html", code=code, result=None))


@bp.get("/receipt/<code>")
def receipt_status_page(code: str):
    """A receipt's status in plain words: recorded, counted (in which publication) or
    excluded (and why). The QR code on the receipt page holds this address."""
    normalised = normalise_receipt(code[:64])
    context: dict = {"code": normalised, "result": None, "status_text": None, "campaign": None}
    try:
        result = receipt_lookup(normalised)
    except ApiError as exc:
        if exc.status != 404:
            raise
        context["not_found"] = True
        return make_response(render_template("receipt_lookup.html", **context), 404)
    context.update(
        result=result,
        status_text=_status_text(result),
        campaign=db.session.scalar(select(Campaign).where(Campaign.slug == result["campaign"])),
        normalised=normalised,
    )
    return make_response(render_template("receipt_lookup.html", **context))


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError):
    slug = (request.view_args or {}).get("slug")
    if slug:
        message = _("页面已过期，请返回投票页重新填写后提交。")
    else:
        message = _("页面已过期，请返回上一页刷新后重试。")
    return error_page(400, "csrf_failed", message, {"Cache-Control": "no-store"})


@bp.errorhandler(429)
def rate_limited(exc):
    current = limiter.current_limit
    retry = 60
    if current is not None:
        retry = max(1, math.ceil(current.reset_at - time.time()))
    return _rate_limited_page(retry)


def _rate_limited_page(retry: int):
    return error_page(
        429,
        "rate_limited",
        _("提交太频繁了，请 %(n)s 秒后再试。", n=retry),
        {"Retry-After": str(retry), "Cache-Control": "no-store"},
    )
