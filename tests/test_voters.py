"""Voter identifiers: normalisation, checksums, and the keyed hash."""

import pytest

from service.domain.voters import InvalidVoterId, normalise, resident_id_check_char, voter_key


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "+86 138 0013 8000",
        "+86-138-0013-8000",
        "0086 13800138000",
        "8613800138000",
        "(138) 0013-8000",
        "１３８００１３８０００",
    ],
)
def test_mobile_numbers_normalise_to_eleven_digits(raw):
    """A phone typed with +86, spaces, dashes or full-width digits is the same voter."""
    assert normalise("cn_mobile", raw) == "13800138000"


@pytest.mark.parametrize(
    "raw",
    ["12800138000", "1380013800", "138001380000", "abc", "", "+1 415 555 0100", None, 13800138000],
)
def test_invalid_mobile_numbers_are_refused(raw):
    """Numbers that are not mainland mobiles (1[3-9] + 9 digits) are refused."""
    with pytest.raises(InvalidVoterId):
        normalise("cn_mobile", raw)


def test_resident_id_check_digit_known_examples():
    """The GB 11643 check character matches published examples."""
    # 11010519491231002X is the standard's own worked example.
    assert resident_id_check_char("11010519491231002") == "X"
    assert normalise("cn_resident_id", "11010519491231002x") == "11010519491231002X"
    # 44052418800101001: weighted sum 28+36+0+25+16+16+2+8+48+0+0+9+0+5+0+0+2 = 195,
    # 195 mod 11 = 8, and position 8 of "10X98765432" is "4".
    assert resident_id_check_char("44052418800101001") == "4"


def test_resident_id_with_wrong_check_digit_is_refused():
    """A mistyped ID number (wrong check digit) is refused, not silently hashed."""
    with pytest.raises(InvalidVoterId, match="check digit"):
        normalise("cn_resident_id", "110105194912310021")
    with pytest.raises(InvalidVoterId):
        normalise("cn_resident_id", "1101051949123100")


def test_member_codes_are_case_folded_and_trimmed():
    """Member codes ignore case and surrounding or doubled spaces."""
    assert normalise("member_code", "  AbC  12 ") == normalise("member_code", "abc 12")


def test_voter_key_is_keyed_and_kind_scoped():
    """The hash depends on the pepper and the kind, never equals the raw id."""
    a = voter_key("pepper-1", "cn_mobile", "13800138000")
    assert a == voter_key("pepper-1", "cn_mobile", "+86 13800138000")
    assert a != voter_key("pepper-2", "cn_mobile", "13800138000")
    assert a != voter_key("pepper-1", "member_code", "13800138000")
    assert "13800138000" not in a and len(a) == 64


# --- one identifier, one key: every spelling gives the same key or a refusal -----------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PEPPER = "pepper-property"
# Each decimal digit 0-9 in several scripts and compatibility forms. NFKC maps the
# full-width and mathematical ones to ASCII; the others must be refused.
DIGIT_FORMS = [
    "0123456789",
    "０１２３４５６７８９",  # full-width
    "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗",  # mathematical bold
    "٠١٢٣٤٥٦٧٨٩",  # Arabic-Indic
    "۰۱۲۳۴۵۶۷۸۹",  # extended Arabic-Indic (Persian)
    "०१२३४५६७८९",  # Devanagari
    "๐๑๒๓๔๕๖๗๘๙",  # Thai
    "০১২৩৪৫৬৭৮৯",  # Bengali
]
INVISIBLE = [
    "\u200b",  # zero-width space
    "\u200c",  # zero-width non-joiner
    "\u200d",  # zero-width joiner
    "\u00ad",  # soft hyphen
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u061c",  # Arabic letter mark
    "\ufeff",  # byte order mark
    "\u2060",  # word joiner
    "\u034f",  # combining grapheme joiner
    "\ufe0f",  # variation selector 16
    "\u3164",  # Hangul filler
    "\U000e0041",  # tag letter A
]
SEPARATORS = ["", "", " ", "-", "\u3000", "\u00a0"]  # nothing, spaces, a dash, NBSP


def keys_of(kind: str, spellings) -> set[str]:
    keys = set()
    for spelling in spellings:
        try:
            keys.add(voter_key(PEPPER, kind, spelling))
        except InvalidVoterId as exc:
            assert spelling not in str(exc)  # the message never repeats the identifier
    return keys


@st.composite
def digit_spelling(draw, digits: str) -> str:
    """The digits, each in a drawn script, with separators and maybe invisible characters."""
    out = []
    for d in digits:
        if d.isdigit():
            out.append(draw(st.sampled_from(DIGIT_FORMS))[int(d)])
        else:
            out.append(draw(st.sampled_from([d, d.lower()])))
        out.append(draw(st.sampled_from(SEPARATORS + INVISIBLE[:3])))
    return "".join(out)


mobiles = st.builds(
    lambda second, rest: f"1{second}{rest:09d}",
    st.sampled_from("3456789"),
    st.integers(0, 10**9 - 1),
)


@pytest.mark.slow  # hypothesis, many examples
@settings(max_examples=200, deadline=None)
@given(data=st.data(), mobile=mobiles)
def test_every_spelling_of_a_mobile_gives_one_key_or_a_refusal(data, mobile):
    """Arabic-Indic, Thai or Devanagari digits and invisible characters never make a
    second voter out of one phone number."""
    prefix = data.draw(st.sampled_from(["", "+86", "+86 ", "0086 ", "86"]))
    spellings = [
        data.draw(st.sampled_from(["", " "])) + prefix + data.draw(digit_spelling(mobile))
        for _ in range(6)
    ]
    keys = keys_of("cn_mobile", [mobile, *spellings])
    assert keys == {voter_key(PEPPER, "cn_mobile", mobile)}


resident_ids = st.builds(
    lambda first17: first17 + resident_id_check_char(first17),
    st.from_regex(r"[1-6][0-9]{16}", fullmatch=True),
)


@pytest.mark.slow  # hypothesis, many examples
@settings(max_examples=200, deadline=None)
@given(data=st.data(), rid=resident_ids)
def test_every_spelling_of_a_resident_id_gives_one_key_or_a_refusal(data, rid):
    spellings = [data.draw(digit_spelling(rid)) for _ in range(6)]
    keys = keys_of("cn_resident_id", [rid, *spellings])
    assert keys == {voter_key(PEPPER, "cn_resident_id", rid)}


CYRILLIC_FOR = dict(zip("ABEKMHOPCTXaeopcxy", "АВЕКМНОРСТХаеорсху", strict=True))
GREEK_FOR = dict(zip("ABEZHIKMNOPTYX", "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", strict=True))


@st.composite
def member_spelling(draw, code: str) -> str:
    out = []
    alphabet = draw(st.sampled_from([{}, CYRILLIC_FOR, GREEK_FOR]))
    for ch in code:
        form = draw(st.sampled_from(["same", "swapcase", "fullwidth", "lookalike"]))
        if form == "swapcase":
            ch = ch.swapcase()
        elif form == "fullwidth" and ch.isascii() and ch.isalnum():
            ch = chr(ord(ch) + 0xFEE0)
        elif form == "lookalike":
            ch = alphabet.get(ch, alphabet.get(ch.upper(), ch))
        out.append(ch)
        out.append(draw(st.sampled_from(["", "", "", *INVISIBLE])))
    pad = draw(st.sampled_from(["", " ", "\u3000"]))
    return pad + "".join(out) + pad


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    code=st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,11}", fullmatch=True)
    | st.from_regex(r"海鹰[A-Z][0-9]{2}", fullmatch=True),
)
@pytest.mark.slow  # hypothesis, many examples
def test_every_spelling_of_a_member_code_gives_one_key_or_a_refusal(data, code):
    """Case, full-width forms, Cyrillic or Greek look-alike letters and invisible
    characters never make a second voter out of one member code."""
    spellings = [data.draw(member_spelling(code)) for _ in range(8)]
    keys = keys_of("member_code", [code, *spellings])
    assert keys == {voter_key(PEPPER, "member_code", code)}


@pytest.mark.parametrize(
    "raw",
    [
        "١٣٨٠٠١٣٨٠٠٠",  # Arabic-Indic digits
        "๑๓๘๐๐๑๓๘๐๐๐",  # Thai digits
        "१३८००१३८०००",  # Devanagari digits
        "138\u200b00138000",  # zero-width space
        "138\u00ad00138000",  # soft hyphen
        "\u202e13800138000",  # bidi override
    ],
)
def test_foreign_digits_and_invisible_characters_are_refused_for_mobiles(raw):
    with pytest.raises(InvalidVoterId):
        normalise("cn_mobile", raw)


def test_thai_digits_are_refused_for_resident_ids():
    rid = "11010519491231002X"
    thai = "".join(DIGIT_FORMS[6][int(c)] if c.isdigit() else c for c in rid)
    with pytest.raises(InvalidVoterId):
        normalise("cn_resident_id", thai)


@pytest.mark.parametrize(
    "raw",
    [
        "hy\u200b001",  # zero-width space
        "hy\u00ad001",  # soft hyphen
        "\u202ehy001",  # bidi override
        "hy\u2066001\u2069",  # isolates
        "hу001",  # Latin h + Cyrillic у
        "pαss1",  # Latin + Greek alpha
        "hy00١",  # an Arabic-Indic digit
        "hy001\u0336",  # a stray combining mark
    ],
)
def test_member_codes_refuse_invisible_mixed_script_and_foreign_digits(raw):
    with pytest.raises(InvalidVoterId):
        normalise("member_code", raw)


def test_member_code_scripts_that_are_allowed():
    """Han with Latin (common in Chinese codes), kana, and whole-script codes are fine;
    a wholly Cyrillic look-alike of a Latin code is that Latin code."""
    assert normalise("member_code", "海鹰A12") == "海鹰a12"
    assert normalise("member_code", "ｶﾅ1") == "カナ1"
    assert normalise("member_code", "жара-7") == "жара-7"
    assert normalise("member_code", "АВС-1") == normalise("member_code", "abc-1")
