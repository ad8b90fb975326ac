from marshmallow import Schema, fields, validate


class KioskSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    location = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=300))
    token = fields.String(dump_only=True)
    enrol_url = fields.String(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    revoked_at = fields.AwareDateTime(dump_only=True, allow_none=True)
