"""Voter identifiers: normalise, check, and replace by a keyed hash.

The raw identifier lives only in the request being handled. What is stored (and all
that is ever logged) is HMAC-SHA256(VOTER_PEPPER, kind ":" normalised id).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_RESIDENT = re.compile(r"^\d{17}[\dX]$")
# GB 11643-1999 / ISO 7064 MOD 11-2 weights and check characters.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


class InvalidVoterId(ValueError):
    """The identifier is not a valid one of its kind (the message never repeats it)."""


def normalise_mobile(raw: str) -> str:
    digits = re.sub(r"[\s\-()]", "", unicodedata.normalize("NFKC", raw))
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not _MOBILE.match(digits):
        raise InvalidVoterId(
            "手机号须为 11 位中国大陆号码 / expected an 11-digit mainland mobile number"
        )
    return digits


def resident_id_check_char(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def normalise_resident_id(raw: str) -> str:
    value = re.sub(r"\s", "", unicodedata.normalize("NFKC", raw)).upper()
    if not _RESIDENT.match(value):
        raise InvalidVoterId("身份证号须为 18 位 / expected an 18-character resident ID number")
    if resident_id_check_char(value[:17]) != value[17]:
        raise InvalidVoterId("身份证号校验位不符 / the resident ID check digit does not match")
    return value


def normalise_member_code(raw: str) -> str:
    value = " ".join(unicodedata.normalize("NFKC", raw).split()).casefold()
    if not value or len(value) > 64:
        raise InvalidVoterId("会员编号须为 1–64 个字符 / expected a member code of 1-64 characters")
    return value


NORMALISERS = {
    "cn_mobile": normalise_mobile,
    "cn_resident_id": normalise_resident_id,
    "member_code": normalise_member_code,
}


def normalise(kind: str, raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 100:
        raise InvalidVoterId("缺少投票人标识 / a voter identifier is required")
    return NORMALISERS[kind](raw)


def voter_key(pepper: str, kind: str, raw: object) -> str:
    """The keyed hash that stands in for the voter everywhere."""
    normalised = normalise(kind, raw)
    message = f"{kind}:{normalised}".encode()
    return hmac.new(pepper.encode(), message, hashlib.sha256).hexdigest()
