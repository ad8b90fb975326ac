from marshmallow import Schema, fields, validate

from .common import Text


class KioskSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    location = Text(allow_none=True, load_default=None, validate=validate.Length(max=300))
    token = Text(dump_only=True)
    enrol_url = Text(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    revoked_at = fields.AwareDateTime(dump_only=True, allow_none=True)
