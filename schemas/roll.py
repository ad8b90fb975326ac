"""The electoral roll: uploads, removals and the per-area counts (never identifiers)."""

from marshmallow import Schema, fields, validate

from .common import Text

MAX_VOTERS = 50_000


class RollVoterInSchema(Schema):
    voter_id = Text(required=True, validate=validate.Length(min=1, max=100))
    area = Text(allow_none=True, load_default=None, validate=validate.Length(max=100))
    grid = Text(allow_none=True, load_default=None, validate=validate.Length(max=100))


class RollInSchema(Schema):
    voters = fields.List(
        fields.Nested(RollVoterInSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_VOTERS),
    )


class RollRemoveSchema(Schema):
    voter_ids = fields.List(
        Text(validate=validate.Length(min=1, max=100)),
        required=True,
        validate=validate.Length(min=1, max=MAX_VOTERS),
    )


class RollAddedSchema(Schema):
    added = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)
    total = fields.Integer(required=True)


class RollRemovedSchema(Schema):
    removed = fields.Integer(required=True)
    not_on_roll = fields.Integer(required=True)
    total = fields.Integer(required=True)


class RollGridSchema(Schema):
    grid = Text(required=True)
    voters = fields.Integer(required=True)


class RollAreaSchema(Schema):
    area = Text(allow_none=True, required=True)
    voters = fields.Integer(required=True)
    grids = fields.List(fields.Nested(RollGridSchema), required=True)


class RollSummarySchema(Schema):
    eligibility = Text(required=True)
    area_scope = fields.Boolean(required=True)
    total = fields.Integer(required=True)
    locked = fields.Boolean(required=True)
    areas = fields.List(fields.Nested(RollAreaSchema), required=True)


class TurnoutAreaSchema(Schema):
    area = Text(allow_none=True)
    roll_size = fields.Integer()
    voters = fields.Integer()
    ballots = fields.Integer()
    rate = fields.Float(allow_none=True)


class TurnoutSchema(Schema):
    roll_size = fields.Integer()
    voters = fields.Integer()
    ballots = fields.Integer()
    rate = fields.Float(allow_none=True)
    per_area = fields.List(fields.Nested(TurnoutAreaSchema))
