"""SMS one-time codes for campaigns with ``voting.verify: sms`` (public, web channel)."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_limiter.util import get_remote_address
from flask_smorest import Blueprint

from schemas.ballot import VerificationIssuedSchema, VerificationRequestSchema
from schemas.common import ApiErrorSchema

from ..domain import verification as domain
from ..domain.campaigns import visible_campaign
from ..extensions import limiter
from .ballots import ballot_channel

blp = Blueprint(
    "verifications",
    __name__,
    url_prefix="/api/v1",
    description="短信验证码 / SMS one-time codes",
)


def sms_rate_limit() -> str:
    return current_app.config["RATELIMIT_SMS_WEB"]


def sms_rate_key() -> str:
    return f"sms-ip:{get_remote_address()}"


# One budget per client address for the API and the HTML form's 发送验证码 button.
SMS_LIMIT_SCOPE = "sms-send"


@blp.route("/campaigns/<slug>/verifications")
class Verifications(MethodView):
    decorators = [
        limiter.shared_limit(
            sms_rate_limit, scope=SMS_LIMIT_SCOPE, key_func=sms_rate_key, methods=["POST"]
        )
    ]

    @blp.doc(security=[{"bearer": []}, {}])
    @blp.arguments(VerificationRequestSchema)
    @blp.response(202, VerificationIssuedSchema)
    @blp.alt_response(
        403,
        schema=ApiErrorSchema,
        description="voting_not_open, voting_closed, channel_not_allowed",
    )
    @blp.alt_response(404, schema=ApiErrorSchema, description="not_found")
    @blp.alt_response(409, schema=ApiErrorSchema, description="verification_not_used")
    @blp.alt_response(422, schema=ApiErrorSchema, description="invalid_voter_id, validation_error")
    @blp.alt_response(
        429, schema=ApiErrorSchema, description="resend_too_soon, too_many_codes, rate_limited"
    )
    @blp.alt_response(
        503, schema=ApiErrorSchema, description="sms_unavailable, sms_budget_exhausted"
    )
    def post(self, data, slug):
        """Send a six-digit code to the voter's mobile number.

        Without a token: the web channel; a kiosk token asks for its voter (verify_kiosk).
        """
        channel, _ = ballot_channel()
        campaign = visible_campaign(slug, False)
        return domain.request_code(campaign, data["voter_id"], channel).body()
