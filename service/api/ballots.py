"""Ballots from kiosks and the web, receipts, anomalies and exclusions."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC
from typing import Any

from flask import current_app, jsonify, request
from flask.views import MethodView
from flask_limiter.util import get_remote_address
from flask_smorest import Blueprint
from marshmallow import ValidationError

from schemas.ballot import (
    MAX_BATCH,
    AnomaliesSchema,
    BallotInSchema,
    BallotOutSchema,
    BatchInSchema,
    BatchOutSchema,
    ExclusionInSchema,
    ExclusionSchema,
    ReceiptSchema,
    load_ballot,
)
from schemas.common import CONTROL_CHARACTERS, ApiErrorSchema

from .. import ratelimit
from ..auth import current_principal, is_admin, require
from ..domain import ballots as domain
from ..domain import exclusions
from ..domain.access import check_channel
from ..domain.campaigns import campaign_for_ballots, get_campaign, visible_campaign
from ..errors import ApiError, validation_error
from ..extensions import db, limiter

log = logging.getLogger(__name__)

blp = Blueprint(
    "ballots",
    __name__,
    url_prefix="/api/v1",
    description="投票、回执与异常 / Ballots, receipts and anomalies",
)
ADMIN: list[dict[str, list[str]]] = [{"bearer": []}]


def ballot_channel() -> tuple[str, int | None]:
    """kiosk (with its id) for a kiosk token, web for no token; others are refused."""
    principal = current_principal()
    if principal is None:
        if request.headers.get("Authorization"):
            raise ApiError(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
        return "web", None
    if principal.role != "kiosk":
        raise ApiError(403, "forbidden", "只有投票终端或选民可以投票 / Only kiosks and voters vote")
    return "kiosk", principal.kiosk_id


def _rate_key() -> str:
    principal = current_principal()
    if principal is not None and principal.role == "kiosk":
        return f"kiosk:{principal.kiosk_id}"
    return f"ip:{get_remote_address()}"


def ballot_rate_limit(kiosk_id: int | None) -> None:
    """429 rate_limited + Retry-After beyond RATELIMIT_BALLOTS_KIOSK per kiosk, or
    RATELIMIT_BALLOTS_WEB per client address, for single ballots. Counted with leases
    (service/ratelimit.py): no Redis round trip for most kiosk ballots; a web limit is
    small, so its lease is one hit (exact, as Flask-Limiter's fixed window was)."""
    config = current_app.config
    if kiosk_id is not None:
        key, limit = f"api:kiosk:{kiosk_id}", config["RATELIMIT_BALLOTS_KIOSK"]
    else:
        key, limit = f"api:ip:{get_remote_address()}", config["RATELIMIT_BALLOTS_WEB"]
    retry = ratelimit.hit(key, limit)
    if retry is not None:
        raise ApiError(429, "rate_limited", headers={"Retry-After": str(retry)})


def _rate_limit() -> str:
    principal = current_principal()
    if principal is not None and principal.role == "kiosk":
        return current_app.config["RATELIMIT_BALLOTS_KIOSK"]
    return current_app.config["RATELIMIT_BALLOTS_WEB"]


def _ballot_payload() -> dict:
    if request.mimetype == "application/x-www-form-urlencoded" or request.mimetype == (
        "multipart/form-data"
    ):
        form = request.form
        data: dict[str, Any] = {
            "ballot_id": form.get("ballot_id"),
            "voter_id": form.get("voter_id"),
            "choices": form.getlist("choices"),
        }
        if form.get("cast_at"):
            data["cast_at"] = form.get("cast_at")
        if form.get("verification_id"):
            data["verification"] = {"id": form["verification_id"], "code": form.get("code", "")}
        return data
    if request.mimetype != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "请以 JSON 或表单提交 / send JSON or an HTML form"
        )
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiError(400, "bad_request", "JSON 格式错误 / malformed JSON")
    if not isinstance(payload, dict):
        raise validation_error({"_schema": ["需要 JSON 对象 / expected a JSON object"]})
    return payload


_BALLOT_IN = BallotInSchema()  # one instance: a schema keeps no state between loads


def _plain_form_ballot() -> dict | None:
    """What BallotInSchema loads from a kiosk's plain form (ballot_id, voter_id, choices;
    no cast_at, no SMS code) when every field is valid, without marshmallow (about a
    tenth of a kiosk ballot's Python time); None for anything else, which the schema
    then loads or refuses with its own messages. tests/test_kiosk_hot_path.py checks
    that both give the same."""
    if request.mimetype != "application/x-www-form-urlencoded":
        return None
    form = request.form
    if "cast_at" in form or "verification_id" in form:
        return None
    ballot_id, voter_id = form.get("ballot_id"), form.get("voter_id")
    choices = form.getlist("choices")
    if ballot_id is None or voter_id is None or len(voter_id) > 100 or len(choices) > 500:
        return None
    if CONTROL_CHARACTERS.search(voter_id) or any(
        len(c) > 32 or CONTROL_CHARACTERS.search(c) for c in choices
    ):
        return None
    try:
        parsed = uuid.UUID(ballot_id)
    except ValueError:
        return None
    return {
        "ballot_id": parsed,
        "voter_id": voter_id,
        "choices": choices,
        "cast_at": None,
        "verification": None,
    }


def _load_ballot(data) -> dict:
    try:
        return _BALLOT_IN.load(data)
    except ValidationError as exc:
        raise validation_error(exc.messages) from exc


def _cast(
    campaign, item: dict, channel: str, kiosk_id, codes=None, isolated=True, autocommit=False
) -> domain.CastResult:
    return domain.cast_ballot(
        campaign,
        ballot_id=item["ballot_id"],
        voter_id=item["voter_id"],
        choices=item["choices"],
        channel=channel,
        kiosk_id=kiosk_id,
        cast_at=item.get("cast_at"),
        codes=codes,
        isolated=isolated,
        autocommit=autocommit,
        verification=item.get("verification"),
    )


BALLOT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/BallotIn"}},
        "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/BallotIn"}},
    },
}


@blp.route("/campaigns/<slug>/ballots")
class Ballots(MethodView):
    # Limited in the view (ballot_rate_limit), not by Flask-Limiter: its checks cost about
    # a tenth of a kiosk ballot's Python time.
    decorators = [limiter.exempt]

    @blp.doc(security=[{"bearer": []}, {}], requestBody=BALLOT_BODY)
    @blp.response(201, BallotOutSchema)
    @blp.alt_response(200, schema=BallotOutSchema, description="replay of the same ballot")
    @blp.alt_response(409, schema=ApiErrorSchema, description="already_voted")
    @blp.alt_response(
        422, schema=ApiErrorSchema, description="validation and rule errors, outside_area"
    )
    @blp.alt_response(
        403,
        schema=ApiErrorSchema,
        description=(
            "voting_not_open, voting_closed, channel_not_allowed, not_on_roll, "
            "verification_required"
        ),
    )
    @blp.alt_response(429, schema=ApiErrorSchema, description="too_many_attempts, rate_limited")
    def post(self, slug):
        """Cast a ballot (kiosk token, or anyone when the campaign allows the web)."""
        channel, kiosk_id = ballot_channel()
        ballot_rate_limit(kiosk_id)
        campaign = campaign_for_ballots(slug)  # cached per process once the rules lock
        if campaign.draft and not is_admin():  # a draft is invisible to the public
            campaign = visible_campaign(slug, False)
        check_channel(campaign, channel)  # before the body: a missing kiosk token is 401
        item = _plain_form_ballot() or _load_ballot(_ballot_payload())
        # One ballot per request: no savepoint needed, the request's transaction is its own.
        codes = getattr(campaign, "codes", None)
        # A kiosk ballot on a locked campaign is one autocommit statement on PostgreSQL
        # (domain.cast_ballot, autocommit=True); otherwise the commit below makes it durable.
        result = _cast(
            campaign, item, channel, kiosk_id, codes=codes, isolated=False, autocommit=True
        )
        if db.session().in_transaction():  # the one-statement path leaves none open
            db.session.commit()  # committed before the answer
        return result.body(), 200 if result.replayed else 201


@blp.route("/campaigns/<slug>/ballots/batch")
class BallotBatch(MethodView):
    decorators = [limiter.limit(_rate_limit, key_func=_rate_key, methods=["POST"])]

    @require("kiosk")
    @blp.doc(security=[{"bearer": []}])
    @blp.arguments(BatchInSchema)
    @blp.response(200, BatchOutSchema)
    def post(self, data, slug):
        """Upload up to 500 ballots a kiosk collected offline; one result per ballot."""
        _, kiosk_id = ballot_channel()
        # As for one ballot: a locked campaign from the per-process cache (hotcache.py);
        # a draft is 404 to a kiosk, as visible_campaign says.
        campaign = campaign_for_ballots(slug)
        if campaign.draft and not is_admin():
            campaign = visible_campaign(slug, False)
        items = data["ballots"]
        if len(items) > MAX_BATCH:
            raise ApiError(
                422,
                "batch_too_large",
                f"每批最多 {MAX_BATCH} 张 / at most {MAX_BATCH} ballots per batch",
                {"max": MAX_BATCH, "got": len(items)},
            )
        loaded: list[dict | ApiError] = []
        for raw in items:
            try:  # load_ballot: BallotInSchema's answers, faster for a plain item
                loaded.append(load_ballot(raw if isinstance(raw, dict) else {}))
            except ValidationError as exc:
                loaded.append(validation_error(exc.messages))
        results = []
        for raw, outcome in zip(items, domain.cast_batch(campaign, loaded, kiosk_id), strict=True):
            if isinstance(outcome, ApiError):
                ballot_id = raw.get("ballot_id") if isinstance(raw, dict) else None
                results.append(
                    {
                        "ballot_id": None if ballot_id is None else str(ballot_id),
                        "status": "rejected",
                        "error": {
                            "code": outcome.code,
                            "message": outcome.message,
                            **({"details": outcome.details} if outcome.details else {}),
                        },
                    }
                )
            else:
                results.append(
                    {
                        "ballot_id": outcome.ballot.id,
                        "status": "replayed" if outcome.replayed else "accepted",
                        "receipt": outcome.ballot.receipt,
                        "accepted_at": outcome.ballot.accepted_at.astimezone(UTC).isoformat(),
                    }
                )
        db.session.commit()
        # The items are already what BatchOutSchema dumps them to (strings, the time in
        # RFC 3339; tests/test_batch_settle.py checks that dumping changes nothing), so
        # the schema's pass over 500 items is skipped.
        return jsonify({"results": results})


@blp.route("/receipts/<receipt>")
class Receipt(MethodView):
    @blp.response(200, ReceiptSchema)
    @blp.alt_response(404, schema=ApiErrorSchema, description="not_found")
    def get(self, receipt):
        """Look up a receipt: recorded, counted (with an inclusion proof) or excluded."""
        return domain.receipt_lookup(receipt)


@blp.route("/campaigns/<slug>/anomalies")
class Anomalies(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(200, AnomaliesSchema)
    def get(self, slug):
        """Flagged kiosk ballots (burst, late_upload, volume_outlier), grouped for review."""
        return {"anomalies": exclusions.anomalies(get_campaign(slug))}


@blp.route("/campaigns/<slug>/exclusions")
class Exclusions(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(200, ExclusionSchema(many=True))
    def get(self, slug):
        """All exclusions of a campaign, active and revoked."""
        return exclusions.list_exclusions(get_campaign(slug))

    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.arguments(ExclusionInSchema)
    @blp.response(201, ExclusionSchema(many=True))
    def post(self, data, slug):
        """Exclude ballots (by id, or a kiosk and time range) with a reason; audited."""
        rows = exclusions.exclude(get_campaign(slug), data, current_principal().actor)
        db.session.commit()
        return rows


@blp.route("/campaigns/<slug>/exclusions/<int(max=2147483647):exclusion_id>")
class ExclusionItem(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(204)
    def delete(self, slug, exclusion_id):
        """Reverse an exclusion: the ballot counts again; audited."""
        exclusions.revoke(get_campaign(slug), exclusion_id, current_principal().actor)
        db.session.commit()
