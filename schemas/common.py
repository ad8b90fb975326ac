"""Shared schema pieces."""

from datetime import datetime

from marshmallow import Schema, fields


class ApiErrorDetail(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict()


class ApiErrorSchema(Schema):
    """Every failure has this shape."""

    error = fields.Nested(ApiErrorDetail, required=True)


CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,63}$"
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class Rfc3339(fields.AwareDateTime):
    """RFC 3339 with an offset; naive times are refused. Serialises stored ISO strings too."""

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return super()._serialize(value, attr, obj, **kwargs)
