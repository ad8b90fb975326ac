from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError
from sqlalchemy import select

from schemas.campaign import CampaignPatchSchema, CampaignSchema
from schemas.common import ApiErrorSchema
from schemas.entry import EntryPatchSchema, EntrySchema, ImportResultSchema

from ..auth import current_principal, is_admin, require
from ..domain import campaigns as domain
from ..errors import ApiError, validation_error
from ..extensions import db
from ..models import Campaign

blp = Blueprint(
    "campaigns",
    __name__,
    url_prefix="/api/v1/campaigns",
    description="评选活动与参评对象 / Campaigns and entries",
)

ADMIN: list[dict[str, list[str]]] = [{"bearer": []}]


def _actor() -> str:
    principal = current_principal()
    assert principal is not None  # these routes require a token
    return principal.actor


@blp.route("")
class Campaigns(MethodView):
    @blp.response(200, CampaignSchema(many=True))
    def get(self):
        """List campaigns (public)."""
        query = select(Campaign).order_by(Campaign.id)
        if not is_admin():  # drafts are invisible to the public
            query = query.where(Campaign.draft.is_(False))
        rows = db.session.scalars(query)
        return [domain.campaign_view(c) for c in rows]

    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.arguments(CampaignSchema)
    @blp.response(201, CampaignSchema)
    @blp.alt_response(409, schema=ApiErrorSchema, description="slug_taken")
    @blp.alt_response(422, schema=ApiErrorSchema, description="validation_error")
    def post(self, data):
        """Create a campaign (admin)."""
        campaign = domain.create_campaign(data, _actor())
        db.session.commit()
        return domain.campaign_view(campaign)


@blp.route("/<slug>")
class CampaignItem(MethodView):
    @blp.response(200, CampaignSchema)
    @blp.alt_response(404, schema=ApiErrorSchema, description="not_found")
    def get(self, slug):
        """One campaign (public; a draft only with an admin token, else 404)."""
        return domain.campaign_view(domain.visible_campaign(slug, is_admin()))

    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.arguments(CampaignPatchSchema)
    @blp.response(200, CampaignSchema)
    @blp.alt_response(409, schema=ApiErrorSchema, description="rules_locked, roll_not_empty")
    def patch(self, patch, slug):
        """Change a campaign; rule changes are refused once a ballot or score exists."""
        campaign = domain.get_campaign(slug)
        domain.update_campaign(campaign, patch, _actor())
        db.session.commit()
        return domain.campaign_view(campaign)


@blp.route("/<slug>/publish-campaign")
class CampaignPublish(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(200, CampaignSchema)
    @blp.alt_response(409, schema=ApiErrorSchema, description="not_a_draft")
    def post(self, slug):
        """Publish a draft: it becomes public and its windows, entries lock and rules lock
        apply from now on."""
        campaign = domain.get_campaign(slug)
        domain.publish_campaign(campaign, _actor())
        db.session.commit()
        return domain.campaign_view(campaign)


def _load_entries(payload) -> list[dict]:
    if isinstance(payload, list):
        if not payload:
            raise validation_error({"_schema": ["至少一个参评对象 / at least one entry"]})
        if len(payload) > 5000:
            raise validation_error({"_schema": ["一次最多 5000 个 / at most 5000 at once"]})
        try:
            return EntrySchema(many=True).load(payload)
        except ValidationError as exc:
            raise validation_error(exc.messages) from exc
    if isinstance(payload, dict):
        try:
            return [EntrySchema().load(payload)]
        except ValidationError as exc:
            raise validation_error(exc.messages) from exc
    raise validation_error({"_schema": ["需要对象或数组 / expected an object or a list"]})


ENTRY_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/Entry"},
                    {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Entry"},
                        "minItems": 1,
                    },
                ]
            }
        }
    },
}


@blp.route("/<slug>/entries")
class Entries(MethodView):
    @blp.response(200, EntrySchema(many=True))
    def get(self, slug):
        """List a campaign's entries (public; a draft's only with an admin token)."""
        return domain.list_entries(domain.visible_campaign(slug, is_admin()))

    @require("admin")
    @blp.doc(security=ADMIN, requestBody=ENTRY_BODY)
    @blp.response(201, EntrySchema(many=True))
    @blp.alt_response(409, schema=ApiErrorSchema, description="code_taken, entries_locked")
    def post(self, slug):
        """Add one entry (object) or several (list), all or nothing."""
        campaign = domain.get_campaign(slug)
        payload = request.get_json(silent=False)
        domain.check_entry_cap(campaign, len(payload) if isinstance(payload, list) else 1)
        entries = domain.add_entries(campaign, _load_entries(payload), _actor())
        db.session.commit()
        return entries


@blp.route("/<slug>/entries/import")
class EntriesImport(MethodView):
    @require("admin")
    @blp.doc(
        security=ADMIN,
        requestBody={"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
    )
    @blp.response(200, ImportResultSchema)
    @blp.alt_response(422, schema=ApiErrorSchema, description="invalid_csv, with line numbers")
    def post(self, slug):
        """Import entries from CSV (header code,title,summary,category,area,grid,cost)."""
        campaign = domain.get_campaign(slug)
        if request.mimetype not in ("text/csv", "text/plain", "application/csv"):
            raise ApiError(
                415, "unsupported_media_type", "请以 text/csv 上传 / send the file as text/csv"
            )
        try:
            text = request.get_data().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(
                422, "invalid_csv", "文件须为 UTF-8 编码 / the file must be UTF-8", {"lines": []}
            ) from exc
        result = domain.import_entries_csv(campaign, text, _actor())
        db.session.commit()
        return result


@blp.route("/<slug>/entries/<code>")
class EntryItem(MethodView):
    @blp.response(200, EntrySchema)
    def get(self, slug, code):
        """One entry (public; a draft's only with an admin token)."""
        return domain.get_entry(domain.visible_campaign(slug, is_admin()), code)

    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.arguments(EntryPatchSchema)
    @blp.response(200, EntrySchema)
    def patch(self, patch, slug, code):
        """Change an entry; only texts once voting has opened."""
        campaign = domain.get_campaign(slug)
        entry = domain.update_entry(campaign, domain.get_entry(campaign, code), patch, _actor())
        db.session.commit()
        return entry

    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(204)
    def delete(self, slug, code):
        """Delete an entry before voting opens."""
        campaign = domain.get_campaign(slug)
        domain.delete_entry(campaign, domain.get_entry(campaign, code), _actor())
        db.session.commit()
