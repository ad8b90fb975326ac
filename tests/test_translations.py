"""Chinese interface text uses full-width punctuation.

The rule, checked over every msgid of the catalog (and the Chinese halves of the
bilingual API messages): an ASCII , : ; ! ? ( or ) is wrong when the character right
before or right after it is Chinese — a CJK ideograph, CJK punctuation (U+3000–U+303F),
a full-width form (U+FF00–U+FFEF) or a Chinese quotation mark “ ”. Parentheses go in
pairs: if either one of a pair touches Chinese, both must be full-width. Two things are
not sentence punctuation and stay ASCII: the Python placeholders ``%(name)s`` and the
brackets of formula notation opened right after a Latin or Greek letter (``log(…)``,
``Σ(…)``).
"""

from __future__ import annotations

import re

from babel.messages.pofile import read_po

from service.errors import MESSAGES
from service.translations import SOURCE_DIR

CHINESE = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef\u201c\u201d]")
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sdf]")
MARKS = ",:;!?()"


def ascii_punctuation_in_chinese(text: str) -> list[str]:
    """Each offending mark with its neighbours, e.g. ['功,谢', '止:…']; [] when clean."""
    text = PLACEHOLDER.sub("x", text)

    def chinese(i: int) -> bool:
        return 0 <= i < len(text) and bool(CHINESE.match(text[i]))

    flagged = {i for i, c in enumerate(text) if c in MARKS and (chinese(i - 1) or chinese(i + 1))}
    stack: list[int] = []
    for i, c in enumerate(text):
        if c == "(":
            stack.append(i)
        elif c == ")" and stack:
            opened = stack.pop()
            formula = opened > 0 and re.match(r"[A-Za-zΑ-Ωα-ω]", text[opened - 1])
            if formula:
                flagged -= {opened, i}
            elif opened in flagged or i in flagged:
                flagged |= {opened, i}
    return [text[max(i - 1, 0) : i + 2] for i in sorted(flagged)]


def test_the_rule_catches_the_reported_strings_and_spares_placeholders_and_formulas():
    assert ascii_punctuation_in_chinese("投票成功,谢谢参与!") == ["功,谢", "与!"]
    assert ascii_punctuation_in_chinese("投票截止:%(t)s") == ["止:x"]
    assert ascii_punctuation_in_chinese("请求体过大(上限 1 MiB)") == ["大(上", "B)"]
    assert ascii_punctuation_in_chinese("投票成功，谢谢参与！") == []
    assert ascii_punctuation_in_chinese("（0–%(max)s 分）") == []
    assert ascii_punctuation_in_chinese("100 × log(1 + 该项目票数) ÷ Σ(权重 × 得分)") == []
    assert ascii_punctuation_in_chinese("Too many requests, try again (later)") == []


def test_every_chinese_msgid_uses_full_width_punctuation():
    with (SOURCE_DIR / "en" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="en")
    chinese = [m.id for m in catalog if m.id and CHINESE.search(m.id)]
    assert len(chinese) > 100
    offending = {
        msgid: found for msgid in chinese if (found := ascii_punctuation_in_chinese(msgid))
    }
    assert offending == {}


def test_the_chinese_half_of_each_api_message_uses_full_width_punctuation():
    halves = {status: text.split(" / ", 1)[0] for status, text in MESSAGES.items()}
    assert {s: t for s, t in halves.items() if ascii_punctuation_in_chinese(t)} == {}
