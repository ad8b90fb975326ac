from marshmallow import Schema, fields, validate

from .common import Rfc3339, Text
from .roll import TurnoutSchema


class ExpertSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    area = Text(allow_none=True, load_default=None, validate=validate.Length(max=100))
    token = Text(dump_only=True)
    review_url = Text(dump_only=True)
    created_at = Rfc3339(dump_only=True)
    revoked_at = Rfc3339(dump_only=True, allow_none=True)


class AssignmentInSchema(Schema):
    entries = fields.List(
        Text(validate=validate.Length(max=32)),
        required=True,
        validate=validate.Length(max=5000),
    )


class ScoreInSchema(Schema):
    # Points are checked against the rubric in the domain (stable codes per problem).
    scores = fields.Dict(
        keys=Text(validate=validate.Length(max=64)), values=fields.Raw(), required=True
    )
    comment = Text(allow_none=True, load_default=None, validate=validate.Length(max=5000))


class ScoreOutSchema(Schema):
    entry = Text()
    expert_id = fields.Integer()
    scores = fields.Dict()
    total = fields.Float()
    comment = Text(allow_none=True)
    revision = fields.Integer()
    updated_at = Rfc3339()


class AssignmentEntrySchema(Schema):
    code = Text()
    title = Text()
    summary = Text(allow_none=True)
    category = Text(allow_none=True)
    area = Text(allow_none=True)
    grid = Text(allow_none=True)
    cost = fields.Float(allow_none=True)
    score = fields.Nested(ScoreOutSchema, allow_none=True)


class AssignmentsOutSchema(Schema):
    campaign = Text()
    expert = fields.Nested(ExpertSchema)
    criteria = fields.List(fields.Dict())
    entries = fields.List(fields.Nested(AssignmentEntrySchema))


class ScoreVersionSchema(Schema):
    expert_id = fields.Integer()
    revision = fields.Integer()
    scores = fields.Dict()
    total = fields.Float()
    comment = Text(allow_none=True)
    recorded_at = Rfc3339()


class ScoreHistoryOutSchema(Schema):
    history = fields.List(fields.Nested(ScoreVersionSchema))


class ProgressEntrySchema(Schema):
    code = Text()
    title = Text()
    reviews = fields.Integer()
    min_reviews_met = fields.Boolean()


class ProgressExpertSchema(Schema):
    id = fields.Integer()
    name = Text()
    area = Text(allow_none=True)
    revoked = fields.Boolean()
    done = fields.Integer()
    assigned = fields.Integer()


class ProgressSchema(Schema):
    campaign = Text()
    min_reviews = fields.Integer()
    entries_complete = fields.Integer()
    entries = fields.List(fields.Nested(ProgressEntrySchema))
    experts = fields.List(fields.Nested(ProgressExpertSchema))
    # Roll campaigns only (null otherwise): voters on the roll who cast a counted ballot.
    turnout = fields.Nested(TurnoutSchema, allow_none=True)
