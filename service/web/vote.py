"""The kiosk and web voting form, the receipt page and the receipt lookup.

Plain HTML forms, no JavaScript. The view only parses the form, decides the channel from
the kiosk cookie and calls ``cast_ballot`` (the same function as the JSON API); every
rule lives in the domain layer.
"""

from __future__ import annotations

import math
import time
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

from ..api.verifications import SMS_LIMIT_SCOPE, sms_rate_key, sms_rate_limit
from ..clock import now
from ..domain import verification as verify
from ..domain.access import check_channel, voting_window
from ..domain.ballots import cast_ballot, normalise_receipt, receipt_lookup
from ..domain.campaigns import list_entries, visible_campaign
from ..errors import ApiError
from ..extensions import db, limiter
from ..models import Ballot, Campaign
from . import bp
from .kiosk import current_device, kiosk_refused
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
    device = current_device()
    if device.is_kiosk:
        return f"kiosk:{device.kiosk_id}"
    return f"ip:{get_remote_address()}"


def _rate_limit() -> str:
    if current_device().is_kiosk:
        return current_app.config["RATELIMIT_BALLOTS_KIOSK"]
    return current_app.config["RATELIMIT_BALLOTS_WEB"]


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
            "hint": _("18 位,最后一位可以是 X。号码只用于防止重复投票,不会被保存。"),
        }
    if kind == "member_code":
        return {
            "label": _("会员编号"),
            "inputmode": "text",
            "maxlength": 64,
            "hint": _("编号只用于防止重复投票,不会被保存。"),
        }
    return {
        "label": _("手机号"),
        "inputmode": "numeric",
        "maxlength": 20,
        "hint": _("11 位手机号。号码只用于防止重复投票,不会被保存。"),
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
            "cn_resident_id": _("请输入正确的 18 位身份证号(最后一位可以是 X)。"),
            "member_code": _("请输入会员编号(1–64 个字符)。"),
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
            return _("您今天已经投过票了,每人每天限投一次。")
        return _("您已经投过票了,每人限投一次。")
    messages = {
        "too_few_choices": lambda: _("请至少选择 %(n)s 项。", n=details.get("min", 1)),
        "too_many_choices": lambda: _(
            "最多只能选择 %(n)s 项,请取消多余的选择。", n=details.get("max", 1)
        ),
        "duplicate_choice": lambda: _("同一项目不能重复选择。"),
        "unknown_entry": lambda: _("所选项目不在本次评选中,请重新选择。"),
        "not_on_roll": lambda: _(
            "您填写的信息不在本次评选的选民名册中，无法投票。如有疑问，请联系居委会。"
        ),
        "outside_area": lambda: _(
            "只能选择您所在居民区或网格的项目，请取消以下项目：%(codes)s。",
            codes="、".join(details.get("codes", [])),
        ),
        "voting_not_open": lambda: _("投票尚未开始。"),
        "voting_closed": lambda: _("投票已经结束,感谢您的关注。"),
        "channel_not_allowed": lambda: _("本次评选不接受这种投票方式。"),
        "ballot_id_reused": lambda: _("这张选票已经提交过。如需再次投票,请重新填写。"),
        "bad_request": lambda: _("表单不完整,请重新填写并提交。"),
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


def _grouped_entries(campaign: Campaign) -> list[tuple[str, list]]:
    groups: dict[str, list] = {}
    for entry in list_entries(campaign):
        groups.setdefault(entry.category or _("其他"), []).append(entry)
    return list(groups.items())


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
):
    """The form; ``sms`` carries the SMS step's state (typed number, verification id,
    and right after sending: where and until when)."""
    voting = campaign.rules.voting
    kind = voting.voter_id
    errors: dict[str, dict] = {}
    if error is not None:
        errors[ERROR_FIELD.get(error.code, "form")] = {
            "code": error.code,
            "message": _error_text(error, kind),
        }
    window = voting_window(campaign)
    html = render_template(
        "vote.html",
        campaign=campaign,
        state=window.state,
        opens_at=_local(campaign, window.opens_at),
        closes_at=_local(campaign, window.closes_at),
        rule=_rule_text(voting),
        groups=_grouped_entries(campaign),
        voter=_voter_field(kind),
        ballot_id=ballot_id or str(uuid.uuid4()),
        chosen=set(chosen or ()),
        errors=errors,
        device=current_device(),
        verify_sms=verify.required(campaign, "kiosk" if current_device().is_kiosk else "web"),
        sms=sms or {},
    )
    return _no_store(make_response(html, status))


def _local_time(campaign: Campaign, at: datetime) -> str:
    return at.astimezone(ZoneInfo(campaign.timezone)).strftime("%H:%M:%S")


def _send_code(campaign: Campaign, ballot_id: str, form: dict, channel: str):
    """The form's 发送验证码 button: send a code, and show the form again with the typed
    number kept, the code field and when a new code may be asked for (no script)."""
    chosen = form["choices"]
    number = form["voter_id"][:20]
    sms = {"voter_id": number, "verification_id": form["verification_id"][:36]}
    try:
        issued = verify.request_code(campaign, number, channel)
    except ApiError as exc:
        db.session.rollback()
        return _render_form(
            campaign, ballot_id=ballot_id, chosen=chosen, error=exc, status=exc.status, sms=sms
        )
    sms.update(
        verification_id=issued.id,
        sent_to=issued.masked,
        expires_at=_local_time(campaign, issued.expires_at),
        resend_at=_local_time(campaign, issued.resend_after),
        resend_seconds=int((issued.resend_after - now()).total_seconds()),
    )
    return _render_form(campaign, ballot_id=ballot_id, chosen=chosen, sms=sms)


def _refusal(campaign: Campaign):
    """An error page when this browser may not vote in the campaign at all, else None."""
    device = current_device()
    if device.revoked:
        return kiosk_refused()
    try:
        check_channel(campaign, "kiosk" if device.is_kiosk else "web")
    except ApiError as exc:
        if device.is_kiosk:
            message = _("本次评选不接受投票终端投票,请使用网页投票。")
        else:
            message = _(
                "本次评选只接受投票终端投票,本设备不是已登记的投票终端。请到现场投票点投票。"
            )
        return error_page(exc.status, exc.code, message, {"Cache-Control": "no-store"})
    return None


def _not_sending() -> bool:
    return request.form.get("action") != "send_code"


@bp.route("/vote/<slug>", methods=["GET", "POST"])
@limiter.limit(_rate_limit, key_func=_rate_key, methods=["POST"])
@limiter.shared_limit(
    sms_rate_limit,
    scope=SMS_LIMIT_SCOPE,
    key_func=sms_rate_key,
    methods=["POST"],
    exempt_when=_not_sending,
)
def vote(slug: str):
    """GET: a fresh form with a new ballot id. POST: cast, commit, 303 to the receipt."""
    campaign = visible_campaign(slug, False)
    refused = _refusal(campaign)
    if refused is not None:
        return refused
    if request.method == "GET":
        return _render_form(campaign)

    posted = {**request.form.to_dict(), "choices": request.form.getlist("choices")}
    try:
        form = BallotFormSchema().load(posted)
    except ValidationError:
        error = ApiError(400, "bad_request")
        return _render_form(campaign, chosen=posted["choices"], error=error, status=400)
    ballot_id, chosen = str(form["ballot_id"]), form["choices"]
    device = current_device()
    channel = "kiosk" if device.is_kiosk else "web"
    sms_step = verify.required(campaign, channel)
    if sms_step and form["action"] == "send_code":
        return _send_code(campaign, ballot_id, form, channel)
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
            verification=verification,
        )
    except ApiError as exc:
        db.session.rollback()
        sms = None
        if sms_step:  # the voter's own number and code step stay on the page
            keep = verification and exc.code not in FRESH_CODE_AFTER
            sms = {
                "voter_id": form["voter_id"][:20],
                "verification_id": verification["id"] if verification and keep else "",
            }
        return _render_form(
            campaign,
            ballot_id=None if exc.code in FRESH_BALLOT_ID_AFTER else ballot_id,
            chosen=chosen,
            error=exc,
            status=exc.status,
            sms=sms,
        )
    receipt = result.ballot.receipt
    db.session.commit()  # the ballot is durable before the voter sees a receipt
    return redirect(url_for("web.receipt", slug=slug, receipt=receipt), 303)


@bp.get("/vote/<slug>/receipt/<receipt>")
def receipt(slug: str, receipt: str):
    """The receipt code, large and as a QR code; returns to a fresh form by itself."""
    ballot = db.session.scalar(
        select(Ballot)
        .join(Campaign, Campaign.id == Ballot.campaign_id)
        .where(Campaign.slug == slug, Ballot.receipt == normalise_receipt(receipt))
    )
    if ballot is None:
        return error_page(404, "not_found", _("未找到该回执。"))
    campaign = db.session.get(Campaign, ballot.campaign_id)
    assert campaign is not None  # the ballot's foreign key
    qr = segno.make(ballot.receipt, error="m").svg_inline(
        scale=6, omitsize=True, svgclass="qr", lineclass="qr-line"
    )
    html = render_template(
        "receipt.html",
        campaign=campaign,
        receipt=ballot.receipt,
        qr_svg=qr,
        seconds=RECEIPT_SECONDS,
        vote_url=url_for("web.vote", slug=campaign.slug),
        # On a kiosk a link would leave the page that returns to the form for the next
        # voter: the lookup addresses are shown as text to note down, not to follow.
        on_kiosk=current_device().is_kiosk,
    )
    return _no_store(make_response(html))


def _status_text(result: dict) -> str:
    status = result.get("status")
    if status == "counted":
        return _("已计入:您的选票已计入第 %(v)s 版公示结果。", v=result.get("publication", "?"))
    if status == "excluded":
        return _("已排除:这张选票没有计入结果。")
    return _("已记录:您的选票已安全保存,结果公示后将计入统计。")


@bp.get("/receipt")
def receipt_lookup_page():
    """Check a receipt code in words: recorded, counted or excluded."""
    code = request.args.get("code", "").strip()
    context: dict = {"code": code, "result": None, "status_text": None, "campaign": None}
    status = 200
    if code:
        try:
            result = receipt_lookup(code)
        except ApiError as exc:
            if exc.status != 404:
                raise
            context["not_found"] = True
            status = 404
        else:
            context.update(
                result=result,
                status_text=_status_text(result),
                campaign=db.session.scalar(
                    select(Campaign).where(Campaign.slug == result["campaign"])
                ),
                normalised=normalise_receipt(code),
            )
    return make_response(render_template("receipt_lookup.html", **context), status)


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError):
    slug = (request.view_args or {}).get("slug")
    if slug:
        message = _("页面已过期,请返回投票页重新填写后提交。")
    else:
        message = _("页面已过期,请返回上一页刷新后重试。")
    return error_page(400, "csrf_failed", message, {"Cache-Control": "no-store"})


@bp.errorhandler(429)
def rate_limited(exc):
    current = limiter.current_limit
    retry = 60
    if current is not None:
        retry = max(1, math.ceil(current.reset_at - time.time()))
    return error_page(
        429,
        "rate_limited",
        _("提交太频繁了,请 %(n)s 秒后再试。", n=retry),
        {"Retry-After": str(retry), "Cache-Control": "no-store"},
    )
