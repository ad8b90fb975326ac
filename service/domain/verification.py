"""SMS one-time codes for ``voting.verify: sms`` (web ballots; kiosks with verify_kiosk).

Sending (``request_code``) is guarded against SMS pumping, cheapest refusal first: the
per-address limit (Flask-Limiter, in the views), then per number a resend no sooner than
60 s and at most five codes a day, then the campaign's daily budget. The counters and
the verification row are reserved and committed *before* the provider is called (no
database lock is held while the provider answers); if the provider fails, the
reservation is undone, so a failed send costs the voter nothing and leaves nothing.

Checking (``consume``) happens inside ``cast_ballot``: the code is marked used by a
conditional update in the ballot's own transaction, so two ballots racing with one code
cannot both be recorded, and a refused ballot leaves the code unused. A wrong code is
counted and committed at once (five wrong codes end the verification).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import CursorResult, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..clock import now
from ..errors import ApiError
from ..extensions import db
from ..models import Campaign, SmsCounter, SmsVerification
from ..observability import SMS_BUDGET_EXHAUSTED, SMS_CHECKS, SMS_SENDS
from ..sms import CODE_MINUTES, SmsError, mask, provider
from .access import check_channel
from .voters import InvalidVoterId, normalise

log = logging.getLogger(__name__)

CODE_TTL = timedelta(minutes=CODE_MINUTES)
RESEND_AFTER = timedelta(seconds=60)
MAX_PER_NUMBER_PER_DAY = 5
MAX_ATTEMPTS = 5
# Numbers are counted per Beijing-time day whatever the campaign's timezone.
NUMBER_DAY_TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Issued:
    id: str
    expires_at: datetime
    resend_after: datetime
    masked: str

    def body(self) -> dict:
        return {
            "verification_id": self.id,
            "expires_at": self.expires_at.astimezone(UTC),
            "resend_after": self.resend_after.astimezone(UTC),
        }


def required(campaign: Campaign, channel: str) -> bool:
    """Does a ballot of this channel need a code? Kiosks are attended: only with
    ``verify_kiosk``."""
    voting = campaign.rules.voting
    if not voting.sms:
        return False
    return channel != "kiosk" or voting.verify_kiosk


def _code_hash(verification_id: str, code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{verification_id}:{code}".encode(), hashlib.sha256).hexdigest()


def _voter_key(number: str) -> str:
    # The same keyed hash as ballots' voter_key (cn_mobile), from the normalised number.
    pepper = current_app.config["VOTER_PEPPER"].encode()
    return hmac.new(pepper, f"cn_mobile:{number}".encode(), hashlib.sha256).hexdigest()


def _counter_row(scope: str, day: str) -> None:
    """Make sure the counter row exists (concurrent creators: one insert wins)."""
    dialect = db.session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.session.execute(
        dialect_insert(cast(Table, SmsCounter.__table__))
        .values(scope=scope, day=day, used=0)
        .on_conflict_do_nothing()
    )


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, int(seconds + 0.999)))}


def _resend_too_soon(wait: float) -> ApiError:
    return ApiError(
        429,
        "resend_too_soon",
        "验证码已发送，请稍后再重新发送 / A code was just sent; wait before asking again",
        {"retry_after": max(1, int(wait + 0.999))},
        headers=_retry_after(wait),
    )


def _reserve_number(key: str, day: str, at: datetime) -> None:
    """At most one code per 60 s and five a day for this number (any campaign)."""
    last = db.session.scalar(
        select(SmsVerification.created_at)
        .where(SmsVerification.voter_key == key)
        .order_by(SmsVerification.created_at.desc())
        .limit(1)
    )
    if last is not None and at - last < RESEND_AFTER:
        raise _resend_too_soon((last + RESEND_AFTER - at).total_seconds())
    scope = f"number:{key}"
    _counter_row(scope, day)
    reserved = cast(
        CursorResult,
        db.session.execute(
            update(SmsCounter)
            .where(
                SmsCounter.scope == scope,
                SmsCounter.day == day,
                SmsCounter.used < MAX_PER_NUMBER_PER_DAY,
                (SmsCounter.last_sent_at.is_(None))
                | (SmsCounter.last_sent_at <= at - RESEND_AFTER),
            )
            .values(used=SmsCounter.used + 1, last_sent_at=at)
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    if reserved == 1:
        return
    row = db.session.get(SmsCounter, (scope, day), populate_existing=True)
    if row is not None and row.used >= MAX_PER_NUMBER_PER_DAY:
        midnight = datetime.combine(
            at.astimezone(NUMBER_DAY_TZ).date() + timedelta(days=1),
            datetime.min.time(),
            NUMBER_DAY_TZ,
        )
        raise ApiError(
            429,
            "too_many_codes",
            f"该号码今天已获取 {MAX_PER_NUMBER_PER_DAY} 次验证码，请明天再试 / "
            f"This number has had {MAX_PER_NUMBER_PER_DAY} codes today; try tomorrow",
            {"max_per_day": MAX_PER_NUMBER_PER_DAY},
            headers=_retry_after((midnight - at).total_seconds()),
        )
    raise _resend_too_soon(RESEND_AFTER.total_seconds())


def _reserve_budget(campaign: Campaign, day: str) -> None:
    budget = int(campaign.rules.voting.sms_daily_budget)
    scope = f"campaign:{campaign.id}"
    _counter_row(scope, day)
    reserved = cast(
        CursorResult,
        db.session.execute(
            update(SmsCounter)
            .where(SmsCounter.scope == scope, SmsCounter.day == day, SmsCounter.used < budget)
            .values(used=SmsCounter.used + 1)
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    if reserved == 1:
        return
    SMS_BUDGET_EXHAUSTED.labels(campaign.slug).inc()
    log.error(
        "SMS budget exhausted: campaign %s has sent its %d codes for %s; "
        "codes are refused until tomorrow or until voting.sms_daily_budget is raised",
        campaign.slug,
        budget,
        day,
    )
    raise ApiError(
        503,
        "sms_budget_exhausted",
        "今日短信验证码已发完，请明天再试或到现场投票点投票 / "
        "Today's SMS codes for this campaign are used up; try tomorrow or vote at a kiosk",
        headers={"Retry-After": "3600"},
    )


def _release(verification_id: str, scopes: list[tuple[str, str]]) -> None:
    """Undo a reservation whose message was not sent."""
    db.session.execute(
        cast(Table, SmsVerification.__table__).delete().where(SmsVerification.id == verification_id)
    )
    for scope, day in scopes:
        values: dict[str, Any] = {"used": SmsCounter.used - 1}
        if scope.startswith("number:"):
            values["last_sent_at"] = None  # the reservation required it to be > 60 s old
        db.session.execute(
            update(SmsCounter)
            .where(SmsCounter.scope == scope, SmsCounter.day == day, SmsCounter.used > 0)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()


def request_code(campaign: Campaign, voter_id: object, channel: str = "web") -> Issued:
    """Send a six-digit code to the voter's number for a ballot of this channel."""
    # Late: ballots imports this module (the window check every ballot uses).
    from .ballots import _effective_time

    if not campaign.rules.voting.sms:
        raise ApiError(
            409,
            "verification_not_used",
            "本次评选无需短信验证码 / This campaign does not use SMS codes",
        )
    check_channel(campaign, channel)
    if not required(campaign, channel):
        raise ApiError(
            403,
            "channel_not_allowed",
            f"本次评选的{'终端' if channel == 'kiosk' else '网页'}选票无需验证码 / "
            f"{channel} ballots of this campaign take no SMS code",
        )
    at = now()
    _effective_time(campaign, "web", None, at)
    try:
        number = normalise("cn_mobile", voter_id)
    except InvalidVoterId as exc:
        raise ApiError(422, "invalid_voter_id", str(exc), {"kind": "cn_mobile"}) from None
    key = _voter_key(number)
    number_day = at.astimezone(NUMBER_DAY_TZ).date().isoformat()
    campaign_day = at.astimezone(ZoneInfo(campaign.timezone)).date().isoformat()
    verification_id = str(uuid.uuid4())
    code = f"{secrets.randbelow(10**6):06d}"
    try:
        _reserve_number(key, number_day, at)
        _reserve_budget(campaign, campaign_day)
    except ApiError as exc:
        db.session.rollback()
        SMS_SENDS.labels(exc.code).inc()
        raise
    db.session.add(
        SmsVerification(
            id=verification_id,
            campaign_id=campaign.id,
            voter_key=key,
            code_hash=_code_hash(verification_id, code),
            created_at=at,
            expires_at=at + CODE_TTL,
            attempts=0,
        )
    )
    scopes = [(f"number:{key}", number_day), (f"campaign:{campaign.id}", campaign_day)]
    # Committed before the provider is called: no lock is held while it answers.
    db.session.commit()
    sender = provider()
    try:
        sender.send(number, code)
    except SmsError as exc:
        _release(verification_id, scopes)
        SMS_SENDS.labels("failed").inc()
        log.warning("SMS provider %s refused or failed: %s", sender.name, exc.code)
        raise ApiError(
            503,
            "sms_unavailable",
            "短信暂时发送失败，请稍后重试 / The SMS could not be sent; try again shortly",
            headers={"Retry-After": "30"},
        ) from None
    SMS_SENDS.labels("sent").inc()
    return Issued(verification_id, at + CODE_TTL, at + RESEND_AFTER, mask(number))


def _invalid_code(details: dict | None = None) -> ApiError:
    return ApiError(422, "invalid_code", "验证码不正确 / The code is not correct", details or {})


def _refuse(exc: ApiError) -> ApiError:
    SMS_CHECKS.labels(exc.code).inc()
    return exc


def consume(campaign: Campaign, channel: str, key: str, verification: object) -> None:
    """Check the ballot's code and mark it used, in the ballot's transaction.

    ``key`` is the ballot's voter key; ``verification`` is ``{"id", "code"}`` or None.
    Raises the contract's errors: 403 verification_required, 422 invalid_code /
    code_expired, 429 too_many_attempts.
    """
    if not required(campaign, channel):
        return
    if not isinstance(verification, dict) or not verification.get("id"):
        raise _refuse(
            ApiError(
                403,
                "verification_required",
                "请先获取并填写短信验证码 / This ballot needs the SMS code sent to the voter",
            )
        )
    verification_id, code = str(verification["id"]), str(verification.get("code") or "")
    row = db.session.get(SmsVerification, verification_id, populate_existing=True)
    # Bound to campaign and voter: another's code is simply not a valid code (and is not
    # charged an attempt, so nobody can burn someone else's code).
    if row is None or row.campaign_id != campaign.id or not hmac.compare_digest(row.voter_key, key):
        raise _refuse(_invalid_code())
    if row.used_at is not None:
        raise _refuse(_invalid_code({"reason": "used"}))
    if row.attempts >= MAX_ATTEMPTS:
        raise _refuse(_too_many_attempts())
    at = now()
    if at >= row.expires_at:
        raise _refuse(
            ApiError(
                422,
                "code_expired",
                "验证码已过期，请重新获取 / The code has expired; ask for a new one",
            )
        )
    if not hmac.compare_digest(row.code_hash, _code_hash(verification_id, code)):
        attempts = db.session.execute(
            update(SmsVerification)
            .where(SmsVerification.id == verification_id)
            .values(attempts=SmsVerification.attempts + 1)
            .returning(SmsVerification.attempts)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        # The wrong try counts even though the ballot is refused (and rolled back).
        db.session.commit()
        if attempts >= MAX_ATTEMPTS:
            raise _refuse(_too_many_attempts())
        raise _refuse(_invalid_code({"attempts_left": MAX_ATTEMPTS - attempts}))
    used = cast(
        CursorResult,
        db.session.execute(
            update(SmsVerification)
            .where(
                SmsVerification.id == verification_id,
                SmsVerification.used_at.is_(None),
                SmsVerification.attempts < MAX_ATTEMPTS,
            )
            .values(used_at=at)
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    if used != 1:  # another ballot took this code first
        raise _refuse(_invalid_code({"reason": "used"}))
    SMS_CHECKS.labels("accepted").inc()


def _too_many_attempts() -> ApiError:
    return ApiError(
        429,
        "too_many_attempts",
        "验证码错误次数过多，请重新获取 / Too many wrong codes; ask for a new one",
    )


def offline_refusal() -> ApiError:
    """A kiosk's offline batch under verify_kiosk: no code can have been checked."""
    return ApiError(
        403,
        "verification_required",
        "离线选票无法验证短信验证码 / Offline ballots cannot carry an SMS code",
    )
