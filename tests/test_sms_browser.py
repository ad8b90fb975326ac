"""A resident votes with an SMS code in Debian's Chromium (console provider).

The form is two plain posts: 发送验证码 brings the page back with the number and choices
kept, the code field and a countdown text; the code is read from instance/sms-outbox.jsonl
as a developer would; a wrong code is explained in Chinese beside the code field.
"""

from __future__ import annotations

import re

import pytest

from tests.support import (
    OPEN,
    PHONE,
    PHONE_SCREEN,
    RECEIPT_RE,
    SMS_VOTING,
    assert_touch_size,
    ballots,
    browsing,
    checked,
    chromium,
    last_code,
    outbox_lines,
    shot,
    submit,
    wrong,
)

pytestmark = pytest.mark.slow  # a real Chromium against the app


def test_vote_with_an_sms_code_in_the_browser(server, app, clock, make_campaign):
    base, recorder = server
    make_campaign("c1", voting={**SMS_VOTING, "max_choices": 2})
    clock.set(OPEN)

    with chromium() as browser, browsing(browser, base, **PHONE_SCREEN) as (page, watch):
        from playwright.sync_api import expect

        assert page.goto(f"{base}/vote/c1").status == 200
        watch.expect("/vote/c1", 422)  # the wrong code: the form again, with the reason
        assert page.locator("#code").count() == 0
        assert_touch_size(page, "#send-code")
        page.tap("label[for=choice-A01]")
        page.tap("label[for=choice-A02]")
        page.tap("#voter_id")
        page.fill("#voter_id", PHONE)
        sent_before = len(outbox_lines(app))
        assert submit(page, "#send-code").status == 200
        assert len(outbox_lines(app)) == sent_before + 1
        # The same page, step two: number and choices kept, the code field, the countdown.
        assert page.input_value("#voter_id") == PHONE
        assert checked(page) == ["A01", "A02"]
        expect(page.locator("#code")).to_be_visible()
        assert_touch_size(page, "#code")
        hint = page.locator("#code-hint").inner_text()
        assert "验证码已发送至 139****5678" in hint and "60 秒后" in hint, hint
        assert "重新发送验证码" in page.locator("#send-code").inner_text()
        shot(page, "sms-01-code-sent-zh")

        code = last_code(app)
        page.tap("#code")
        page.fill("#code", wrong(code))
        assert submit(page, "#submit-ballot").status == 422
        error = page.locator("[data-code=invalid_code]")
        assert error.get_attribute("data-field") == "code"
        assert "验证码不正确" in error.inner_text()
        assert "code-error" in page.locator("#code").get_attribute("aria-describedby")
        assert checked(page) == ["A01", "A02"] and ballots(app) == []
        shot(page, "sms-02-wrong-code-zh")

        page.tap("#code")
        page.fill("#code", code)
        submit(page, "#submit-ballot")
        expect(page).to_have_url(re.compile(rf"/vote/c1/receipt/{RECEIPT_RE}$"))
        expect(page.locator("#receipt-code")).to_be_visible()
        assert PHONE not in page.content()
        shot(page, "sms-03-receipt-zh")
        [ballot] = ballots(app)
        assert ballot.channel == "web"
        assert page.locator("#receipt-code").inner_text() == ballot.receipt
        assert recorder.posts("/vote/c1") == ["200", "422", "303"], recorder.seen
