from marshmallow import Schema, fields, validate

from .common import CODE_PATTERN


class EntrySchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(CODE_PATTERN))
    title = fields.String(required=True, validate=validate.Length(min=1, max=300))
    summary = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=5000))
    category = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=100))
    area = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=100))
    grid = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=100))
    cost = fields.Float(
        allow_none=True, load_default=None, validate=validate.Range(min=0, max=1e12)
    )


class EntryPatchSchema(Schema):
    title = fields.String(validate=validate.Length(min=1, max=300))
    summary = fields.String(allow_none=True, validate=validate.Length(max=5000))
    category = fields.String(allow_none=True, validate=validate.Length(max=100))
    area = fields.String(allow_none=True, validate=validate.Length(max=100))
    grid = fields.String(allow_none=True, validate=validate.Length(max=100))
    cost = fields.Float(allow_none=True, validate=validate.Range(min=0, max=1e12))


class ImportResultSchema(Schema):
    created = fields.Integer()
    lines = fields.Integer()
