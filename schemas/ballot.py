from marshmallow import Schema, fields, validate

from .common import Rfc3339

MAX_BATCH = 500


class BallotInSchema(Schema):
    ballot_id = fields.UUID(required=True)
    voter_id = fields.String(required=True, load_only=True, validate=validate.Length(max=100))
    choices = fields.List(
        fields.String(validate=validate.Length(max=32)),
        required=True,
        validate=validate.Length(max=500),
    )
    cast_at = Rfc3339(allow_none=True, load_default=None)


class BallotOutSchema(Schema):
    ballot_id = fields.String(required=True)
    receipt = fields.String(required=True)
    accepted_at = Rfc3339(required=True)
    choices = fields.List(fields.String(), required=True)
    channel = fields.String(required=True)


class BatchInSchema(Schema):
    # Items are validated one by one so that one bad ballot does not sink the rest.
    ballots = fields.List(fields.Raw(), required=True)


class BatchItemSchema(Schema):
    ballot_id = fields.String(allow_none=True)
    status = fields.String(required=True)
    receipt = fields.String()
    accepted_at = Rfc3339()
    error = fields.Dict()


class BatchOutSchema(Schema):
    results = fields.List(fields.Nested(BatchItemSchema))


class ReceiptSchema(Schema):
    campaign = fields.String(required=True)
    status = fields.String(required=True)
    publication = fields.Integer()
    ballots_root = fields.String()
    leaf_hash = fields.String()
    proof = fields.Dict()
    reason = fields.String()


class ExclusionInSchema(Schema):
    ballot_ids = fields.List(fields.UUID(), validate=validate.Length(min=1, max=100000))
    kiosk_id = fields.Integer()
    from_ = Rfc3339(data_key="from")
    to = Rfc3339()
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ExclusionSchema(Schema):
    id = fields.Integer()
    ballot_id = fields.String()
    reason = fields.String()
    actor = fields.String()
    active = fields.Boolean()
    created_at = Rfc3339()
    revoked_at = Rfc3339(allow_none=True)


class AnomalyBallotSchema(Schema):
    ballot_id = fields.String()
    excluded = fields.Boolean()


class AnomalySchema(Schema):
    kiosk_id = fields.Integer(allow_none=True)
    kiosk = fields.String(allow_none=True)
    flag = fields.String()
    count = fields.Integer()
    first = fields.String()
    last = fields.String(allow_none=True)
    ballots = fields.List(fields.Nested(AnomalyBallotSchema))


class AnomaliesSchema(Schema):
    anomalies = fields.List(fields.Nested(AnomalySchema))
