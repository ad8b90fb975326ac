"""Voter identifiers: normalise, check, and replace by a keyed hash.

The raw identifier lives only in the request being handled. What is stored (and all
that is ever logged) is HMAC-SHA256(VOTER_PEPPER, kind ":" normalised id).

One person must get one key however the identifier is typed, so every spelling of an
identifier either normalises to the same string or is refused:

- NFKC first: full-width and other compatibility forms (``１３８``, ``𝟏``, ``Ａ``) become
  their plain ASCII letters and digits.
- Digits are ASCII ``0-9`` only after NFKC. Other scripts' decimal digits (Arabic-Indic
  ``١``, Thai ``๑``, Devanagari ``१``…) are refused rather than mapped: nobody in this
  service's communities types them, so they are almost certainly an attempt to vote twice.
- Invisible and direction-control characters are refused everywhere: every format (Cf),
  control (other than whitespace), private-use, surrogate or unassigned code point, and
  Unicode's Default_Ignorable_Code_Point set (zero-width space and joiners, soft hyphen,
  bidi overrides and isolates, variation selectors, Hangul fillers, the BOM…).
- Member codes are also case-folded, may not carry stray combining marks, and may not mix
  scripts (UTS #39 "highly restrictive": one script, or Latin with Han and Japanese kana,
  Bopomofo or Hangul). A code written wholly in Cyrillic or Greek letters that all look
  like Latin ones is read as those Latin letters, so ``АВС1`` is ``abc1``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_RESIDENT = re.compile(r"^[0-9]{17}[0-9X]$")
# GB 11643-1999 / ISO 7064 MOD 11-2 weights and check characters.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties) plus the blank Braille
# pattern: characters that render as nothing, or as a space that is not one.
_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}

# Scripts that may share one member code (UTS #39 "highly restrictive"); digits,
# punctuation, symbols and spaces belong to no script.
_ALLOWED_MIXES = (
    {"LATIN", "HAN", "HIRAGANA", "KATAKANA"},
    {"LATIN", "HAN", "BOPOMOFO"},
    {"LATIN", "HAN", "HANGUL"},
)
# Case-folded Cyrillic and Greek letters that look like a (case-folded) Latin letter.
_LATIN_LOOKALIKE = {
    "CYRILLIC": dict(zip("авекмнорстухѕіјԁһԛԝүӏ", "abekmhopctyxsijdhqwyl", strict=True)),
    "GREEK": dict(zip("αβεζηικμνοτυχρ", "abezhikmnotyxp", strict=True)),
}


class InvalidVoterId(ValueError):
    """The identifier is not a valid one of its kind (the message never repeats it)."""


def _invisible(ch: str) -> bool:
    if ch.isspace():
        return False  # ordinary and full-width spaces, tabs: trimmed by the normalisers
    if unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
        return True
    code = ord(ch)
    return any(low <= code <= high for low, high in _IGNORABLE)


def _refuse_invisible(raw: str) -> None:
    if raw.isascii() and raw.isprintable():
        return  # printable ASCII (the common case) has none, and NFKC leaves it as it is
    if any(_invisible(ch) for ch in raw) or any(
        _invisible(ch) for ch in unicodedata.normalize("NFKC", raw)
    ):
        raise InvalidVoterId(
            "投票人标识含有不可见字符或方向控制字符 / the voter identifier contains invisible "
            "or direction-control characters"
        )


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
            "手机号须为 11 位中国大陆号码（数字 0–9） / expected an 11-digit mainland mobile "
            "number (digits 0-9)"
        )
    return digits


def resident_id_check_char(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def normalise_resident_id(raw: str) -> str:
    value = re.sub(r"\s", "", unicodedata.normalize("NFKC", raw)).upper()
    if not _RESIDENT.match(value):
        raise InvalidVoterId(
            "身份证号须为 18 位（数字 0–9，末位可为 X） / expected an 18-character resident ID "
            "number (digits 0-9, last may be X)"
        )
    if resident_id_check_char(value[:17]) != value[17]:
        raise InvalidVoterId("身份证号校验位不符 / the resident ID check digit does not match")
    return value


def _script(ch: str) -> str | None:
    """The script of a letter or mark (from its Unicode name), None for script-neutral
    characters (ASCII digits, punctuation, symbols, spaces)."""
    category = unicodedata.category(ch)
    if category[0] not in "LM" and not (
        category == "Nl" and "IDEOGRAPHIC" in unicodedata.name(ch, "")
    ):
        return None
    name = unicodedata.name(ch, "")
    if name.startswith(("CJK ", "IDEOGRAPHIC ")):
        return "HAN"
    if name.startswith("KATAKANA-HIRAGANA"):
        return "KATAKANA"
    return name.split(" ", 1)[0] or "UNKNOWN"


def normalise_member_code(raw: str) -> str:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())
    value = " ".join(folded.split())
    if not value or len(value) > 64:
        raise InvalidVoterId("会员编号须为 1–64 个字符 / expected a member code of 1-64 characters")
    for ch in value:
        category = unicodedata.category(ch)
        if category == "Nd" and not ("0" <= ch <= "9"):
            raise InvalidVoterId("会员编号只能用数字 0–9 / member codes use the digits 0-9")
        if category[0] == "M" and unicodedata.name(ch, "").startswith(("COMBINING", "VARIATION")):
            raise InvalidVoterId(
                "会员编号含有组合附加符号 / the member code contains combining marks"
            )
    scripts = {s for s in map(_script, value) if s is not None}
    if len(scripts) > 1 and not any(scripts <= mix for mix in _ALLOWED_MIXES):
        raise InvalidVoterId(
            "会员编号混用了多种文字 / the member code mixes scripts (for example Latin and "
            "Cyrillic letters)"
        )
    if len(scripts) == 1:
        (script,) = scripts
        lookalike = _LATIN_LOOKALIKE.get(script)
        letters = [ch for ch in value if _script(ch) is not None]
        if lookalike and all(ch in lookalike for ch in letters):
            value = "".join(lookalike.get(ch, ch) for ch in value)
    return value


NORMALISERS = {
    "cn_mobile": normalise_mobile,
    "cn_resident_id": normalise_resident_id,
    "member_code": normalise_member_code,
}


def normalise(kind: str, raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 100:
        raise InvalidVoterId("缺少投票人标识 / a voter identifier is required")
    _refuse_invisible(raw)
    return NORMALISERS[kind](raw)


def voter_key(pepper: str, kind: str, raw: object) -> str:
    """The keyed hash that stands in for the voter everywhere."""
    normalised = normalise(kind, raw)
    message = f"{kind}:{normalised}".encode()
    return hmac.new(pepper.encode(), message, hashlib.sha256).hexdigest()
