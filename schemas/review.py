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
    warnings = fields.List(
        fields.Nested(lambda: ReviewWarningSchema()),
        dump_only=True,
        metadata={"description": "entries that cannot reach min_reviews after this change"},
    )


class ReviewWarningSchema(Schema):
    """An entry that can no longer reach ``min_reviews`` (see ``…/review/progress``)."""

    code = Text(metadata={"description": "review_infeasible"})
    entry = Text()
    reason = Text(
        metadata={
            "enum": ["review_closed", "recusal", "assignment", "withdrawal", "too_few_experts"]
        }
    )
    reviewers_possible = fields.Integer()
    min_reviews = fields.Integer()
    message = Text()


class AssignmentInSchema(Schema):
    entries = fields.List(
        Text(validate=validate.Length(max=32)),
        required=True,
        validate=validate.Length(max=5000),
    )
    warnings = fields.List(fields.Nested(ReviewWarningSchema), dump_only=True)


class ExpertWithdrawnSchema(Schema):
    id = fields.Integer()
    revoked_at = Rfc3339(allow_none=True)
    warnings = fields.List(fields.Nested(ReviewWarningSchema))


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


class InfeasibleEntrySchema(Schema):
    code = Text(metadata={"description": "the entry's code"})
    title = Text()
    area = Text(allow_none=True)
    reason = Text(
        metadata={
            "enum": ["review_closed", "recusal", "assignment", "withdrawal", "too_few_experts"],
            "description": "why the entry cannot reach min_reviews (the first that applies)",
        }
    )
    reviewers_possible = fields.Integer(
        metadata={"description": "live reviews plus experts who may still score it"}
    )
    reviews = fields.Integer()
    min_reviews = fields.Integer()
    blocked = fields.Dict(
        keys=Text(),
        values=fields.List(Text()),
        metadata={"description": "expert names kept away: recused, not_assigned, withdrawn"},
    )


class ProgressSchema(Schema):
    campaign = Text()
    min_reviews = fields.Integer()
    entries_complete = fields.Integer()
    entries = fields.List(fields.Nested(ProgressEntrySchema))
    experts = fields.List(fields.Nested(ProgressExpertSchema))
    # Roll campaigns only (null otherwise): voters on the roll who cast a counted ballot.
    turnout = fields.Nested(TurnoutSchema, allow_none=True)
    # Entries that can no longer reach min_reviews (empty when reviews do not count).
    infeasible = fields.List(fields.Nested(InfeasibleEntrySchema))
