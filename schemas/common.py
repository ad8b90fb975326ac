"""Shared schema pieces."""

import re
from datetime import UTC, datetime

from marshmallow import Schema, ValidationError, fields


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


# Every accepted time lies in these years (UTC): far from datetime's limits, so adding a
# grace period or converting to any timezone cannot overflow (year 9999 did, as a 500).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2101, 1, 1, tzinfo=UTC)


class Rfc3339(fields.AwareDateTime):
    """RFC 3339 with an offset, in the years 2000..2100; naive times are refused.
    Serialises stored ISO strings too."""

    def _deserialize(self, value, attr, data, **kwargs):
        when = super()._deserialize(value, attr, data, **kwargs)
        if not EARLIEST <= when < LATEST:
            raise ValidationError("时间须在 2000 至 2100 年之间 / times must be in 2000..2100")
        return when

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return super()._serialize(value, attr, obj, **kwargs)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CONTROL_CHARACTERS = _CONTROL  # what Text refuses (also checked by the kiosk form's fast load)


class Text(fields.String):
    """A string without control characters (tab and line breaks allowed).

    PostgreSQL cannot store NUL, and no title, comment or name needs the others: they are
    refused with a clear message instead of failing in the database.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if _CONTROL.search(text):
            raise ValidationError("不允许控制字符 / control characters are not allowed")
        return text
