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
