import uuid

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from .common import _CONTROL, Rfc3339, Text

MAX_BATCH = 500


class VerificationSchema(Schema):
    """The SMS code a web ballot carries when the campaign has ``voting.verify: sms``."""

    id = Text(required=True, validate=validate.Length(min=1, max=36))
    code = Text(required=True, load_only=True, validate=validate.Length(max=16))


class VerificationRequestSchema(Schema):
    voter_id = Text(required=True, load_only=True, validate=validate.Length(max=100))


class VerificationIssuedSchema(Schema):
    verification_id = Text(required=True)
    expires_at = Rfc3339(required=True)
    resend_after = Rfc3339(required=True)


class BallotInSchema(Schema):
    ballot_id = fields.UUID(required=True)
    voter_id = Text(required=True, load_only=True, validate=validate.Length(max=100))
    choices = fields.List(
        Text(validate=validate.Length(max=32)),
        required=True,
        validate=validate.Length(max=500),
    )
    cast_at = Rfc3339(allow_none=True, load_default=None)
    verification = fields.Nested(VerificationSchema, allow_none=True, load_default=None)


class BallotFormSchema(Schema):
    """The HTML voting form (service/web/vote.py): the ballot as a browser posts it,
    ``choices`` repeated and the SMS step's fields flat. Form values are strings; the
    ballot id is the one field a browser can send malformed (400 ``bad_request``). The
    rules (how many choices, the identifier's format) are the domain's, as for the API."""

    class Meta:
        unknown = EXCLUDE  # csrf_token

    ballot_id = fields.UUID(required=True)
    voter_id = fields.String(load_default="")
    choices = fields.List(fields.String(), load_default=list)
    # "send_code": the SMS step's first button; "filter" / "show_all": the list filter
    action = fields.String(load_default="")
    area = fields.String(load_default="")
    category = fields.String(load_default="")
    q = fields.String(load_default="")
    verification_id = fields.String(load_default="")
    code = fields.String(load_default="")


class BallotOutSchema(Schema):
    ballot_id = Text(required=True)
    receipt = Text(required=True)
    accepted_at = Rfc3339(required=True)
    choices = fields.List(Text(), required=True)
    channel = Text(required=True)


class BatchInSchema(Schema):
    # Items are validated one by one so that one bad ballot does not sink the rest.
    ballots = fields.List(fields.Raw(), required=True)


class BatchItemSchema(Schema):
    ballot_id = Text(allow_none=True)
    status = Text(required=True)
    receipt = Text()
    accepted_at = Rfc3339()
    error = fields.Dict()


class BatchOutSchema(Schema):
    results = fields.List(fields.Nested(BatchItemSchema))


class ReceiptSchema(Schema):
    campaign = Text(required=True)
    status = Text(required=True)
    publication = fields.Integer()
    ballots_root = Text()
    leaf_hash = Text()
    proof = fields.Dict()
    reason = Text()


class ExclusionInSchema(Schema):
    ballot_ids = fields.List(fields.UUID(), validate=validate.Length(min=1, max=100000))
    kiosk_id = fields.Integer()
    client = Text(
        validate=validate.Regexp(r"^[0-9a-f]{8,64}$"),
        metadata={"description": "a web_burst group's client label (or the whole hash)"},
    )
    subnet = Text(
        validate=validate.Regexp(r"^[0-9a-f]{8,64}$"),
        metadata={"description": "a subnet_burst group's subnet label (or the whole hash)"},
    )
    from_ = Rfc3339(data_key="from")
    to = Rfc3339()
    reason = Text(required=True, validate=validate.Length(min=1, max=2000))


class ExclusionSchema(Schema):
    id = fields.Integer()
    ballot_id = Text()
    reason = Text()
    actor = Text()
    active = fields.Boolean()
    created_at = Rfc3339()
    revoked_at = Rfc3339(allow_none=True)


class AnomalyBallotSchema(Schema):
    ballot_id = Text()
    excluded = fields.Boolean()


class AnomalySchema(Schema):
    kiosk_id = fields.Integer(allow_none=True)
    kiosk = Text(allow_none=True)
    flag = Text(
        metadata={
            "description": "burst, late_upload, volume_outlier, web_burst, subnet_burst or "
            "first_time_surge"
        }
    )
    client = Text(metadata={"description": "web_burst: a label of the client address's keyed hash"})
    subnet = Text(metadata={"description": "subnet_burst: a label of the /24 or /64's keyed hash"})
    addresses = fields.Integer(
        metadata={"description": "subnet_burst: distinct client addresses in the group"}
    )
    day = Text(metadata={"description": "volume_outlier: the campaign-local day"})
    hour = Text(metadata={"description": "first_time_surge: the hour's start, campaign time"})
    threshold = fields.Integer(
        metadata={"description": "volume_outlier, first_time_surge: the count it exceeded"}
    )
    count = fields.Integer()
    first = Text()
    last = Text(allow_none=True)
    ballots = fields.List(fields.Nested(AnomalyBallotSchema))


class AnomaliesSchema(Schema):
    anomalies = fields.List(fields.Nested(AnomalySchema))


_BALLOT_IN = BallotInSchema()
_CAST_AT = _BALLOT_IN.fields["cast_at"]
_FAST_KEYS = frozenset(("ballot_id", "voter_id", "choices", "cast_at", "verification"))


def _plain_text(value: object, most: int) -> bool:
    """What ``Text(validate=Length(max=most))`` accepts as it is: a str, short, no
    control characters."""
    return type(value) is str and len(value) <= most and not _CONTROL.search(value)


def load_ballot(data: object) -> dict:
    """``BallotInSchema().load(data)``, faster for the usual batch item.

    A plain item (a dict of the schema's own fields, strings where strings belong, no
    SMS verification) is checked here with the schema's own rules; anything else, and
    every item with a mistake, goes to the schema itself, so the result and the
    ValidationError's messages are the schema's (tests/test_batch_settle.py compares
    both on generated input).
    """
    if type(data) is dict and data.keys() <= _FAST_KEYS:
        ballot_id = data.get("ballot_id")
        voter_id = data.get("voter_id")
        choices = data.get("choices")
        cast_at = data.get("cast_at")
        if (
            type(ballot_id) is str
            and _plain_text(voter_id, 100)
            and type(choices) is list
            and len(choices) <= 500
            and all(_plain_text(c, 32) for c in choices)
            and data.get("verification") is None
        ):
            try:
                loaded = {
                    "ballot_id": uuid.UUID(ballot_id),
                    "voter_id": voter_id,
                    "choices": list(choices),
                    "cast_at": None
                    if cast_at is None
                    else _CAST_AT.deserialize(cast_at, "cast_at", data),
                    "verification": None,
                }
            except (ValueError, TypeError, AttributeError, ValidationError):
                pass  # the schema says what is wrong, in its own words
            else:
                return loaded
    return _BALLOT_IN.load(data)  # type: ignore[arg-type]  # the schema refuses the rest
