"""The electoral roll (选民名册) of a campaign: upload, remove, counts."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError

from schemas.common import ApiErrorSchema
from schemas.roll import (
    RollAddedSchema,
    RollInSchema,
    RollRemovedSchema,
    RollRemoveSchema,
    RollSummarySchema,
)

from ..auth import current_principal, require
from ..domain import roll as domain
from ..domain.campaigns import get_campaign
from ..errors import ApiError, validation_error
from ..extensions import db

blp = Blueprint(
    "roll", __name__, url_prefix="/api/v1/campaigns", description="选民名册 / Electoral roll"
)
ADMIN: list[dict[str, list[str]]] = [{"bearer": []}]

UPLOAD_BODY = {
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/json": {"schema": {"$ref": "#/components/schemas/RollIn"}},
    },
}


def _rows_from_json() -> list[tuple[int, dict]]:
    payload = request.get_json(silent=False)
    try:
        data = RollInSchema().load(payload if isinstance(payload, dict) else {"voters": payload})
    except ValidationError as exc:
        raise validation_error(exc.messages) from exc
    return list(enumerate(data["voters"]))


@blp.route("/<slug>/roll")
class Roll(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(200, RollSummarySchema)
    def get(self, slug):
        """The roll's size per area and grid (never identifiers)."""
        return domain.summary(get_campaign(slug))

    @require("admin")
    @blp.doc(security=ADMIN, requestBody=UPLOAD_BODY)
    @blp.response(200, RollAddedSchema)
    @blp.alt_response(409, schema=ApiErrorSchema, description="roll_conflict")
    @blp.alt_response(415, schema=ApiErrorSchema, description="unsupported_media_type")
    @blp.alt_response(
        422, schema=ApiErrorSchema, description="invalid_csv (with line numbers), validation_error"
    )
    def post(self, slug):
        """Add voters: CSV (header voter_id, optional area, grid; UTF-8, GBK or GB18030) or
        JSON {"voters": [...]}; all or nothing. Voters already on the roll with the same
        area and grid count as unchanged. Allowed during voting (audited)."""
        campaign = get_campaign(slug)
        if request.mimetype in ("text/csv", "text/plain", "application/csv"):
            rows = domain.parse_csv(domain.decode(request.get_data()))
            source = "csv"
        elif request.mimetype == "application/json":
            rows, source = _rows_from_json(), "json"
        else:
            raise ApiError(
                415,
                "unsupported_media_type",
                "请以 text/csv 或 application/json 上传 / send text/csv or application/json",
            )
        result = domain.add_voters(campaign, rows, current_principal().actor, source=source)
        db.session.commit()
        return result

    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(200, RollRemovedSchema)
    @blp.alt_response(409, schema=ApiErrorSchema, description="roll_locked")
    def delete(self, slug):
        """Clear the whole roll; only before voting opens (409 roll_locked)."""
        result = domain.clear_roll(get_campaign(slug), current_principal().actor)
        db.session.commit()
        return result


@blp.route("/<slug>/roll/remove")
class RollRemove(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.arguments(RollRemoveSchema)
    @blp.response(200, RollRemovedSchema)
    @blp.alt_response(409, schema=ApiErrorSchema, description="roll_locked")
    def post(self, data, slug):
        """Remove the listed identifiers from the roll; only before voting opens."""
        result = domain.remove_voters(
            get_campaign(slug), data["voter_ids"], current_principal().actor
        )
        db.session.commit()
        return result
