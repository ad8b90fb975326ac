from marshmallow import Schema, fields, validate

from .common import CODE_PATTERN, Text

# entries.cost is NUMERIC(14, 2): anything from 10^12 (after rounding to cents) overflows
# PostgreSQL. 100 billion yuan is far above any project a campaign could select.
MAX_COST = 1e11


class EntrySchema(Schema):
    code = Text(required=True, validate=validate.Regexp(CODE_PATTERN))
    title = Text(required=True, validate=validate.Length(min=1, max=300))
    summary = Text(allow_none=True, load_default=None, validate=validate.Length(max=5000))
    category = Text(allow_none=True, load_default=None, validate=validate.Length(max=100))
    area = Text(allow_none=True, load_default=None, validate=validate.Length(max=100))
    grid = Text(allow_none=True, load_default=None, validate=validate.Length(max=100))
    cost = fields.Float(
        allow_none=True, load_default=None, validate=validate.Range(min=0, max=MAX_COST)
    )


class EntryPatchSchema(Schema):
    title = Text(validate=validate.Length(min=1, max=300))
    summary = Text(allow_none=True, validate=validate.Length(max=5000))
    category = Text(allow_none=True, validate=validate.Length(max=100))
    area = Text(allow_none=True, validate=validate.Length(max=100))
    grid = Text(allow_none=True, validate=validate.Length(max=100))
    cost = fields.Float(allow_none=True, validate=validate.Range(min=0, max=MAX_COST))


class ImportResultSchema(Schema):
    created = fields.Integer()
    lines = fields.Integer()
