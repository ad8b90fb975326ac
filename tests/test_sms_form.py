"""The two-step HTML form of a ``verify: sms`` campaign: 发送验证码, then the code.

A plain form post, no script: the page comes back with the typed number and choices kept,
the code field and when a new code may be asked for. CSRF stays on.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support import (
    OPEN,
    PHONE,
    SMS_VOTING,
    Page,
    ballot_count,
    get_form,
    last_code,
    outbox_lines,
)


@pytest.fixture
def sms_campaign(make_campaign, clock):
    make_campaign("c1", voting=SMS_VOTING)
    clock.set(OPEN)


def send_code(client, page: Page, number: str, choices, slug: str = "c1"):
    data = {
        "csrf_token": page.value("csrf_token"),
        "ballot_id": page.value("ballot_id"),
        "voter_id": number,
        "choices": list(choices),
        "verification_id": page.value("verification_id") or "",
        "action": "send_code",
    }
    return client.post(f"/vote/{slug}", data=data)


def submit(client, page: Page, number: str, code: str, choices, slug: str = "c1"):
    data = {
        "csrf_token": page.value("csrf_token"),
        "ballot_id": page.value("ballot_id"),
        "voter_id": number,
        "choices": list(choices),
        "verification_id": page.value("verification_id") or "",
        "code": code,
    }
    return client.post(f"/vote/{slug}", data=data)


def test_send_code_then_vote_with_it(client, app, sms_campaign):
    form = get_form(client)
    assert "发送验证码" in form.html and form.value("verification_id") == ""
    assert form.inputs and not [i for i in form.inputs if i.get("name") == "code"]
    # Submitting without a code: told to ask for one first, beside the code step.
    refused = submit(client, form, PHONE, "", ["A01"])
    assert refused.status_code == 403
    assert "请先点击“发送验证码”" in Page(refused.text).error("verification_required")["text"]
    assert ballot_count(app) == 0

    sent = send_code(client, form, PHONE, ["A01", "A02"])
    assert sent.status_code == 200, sent.text
    page = Page(sent.text)
    assert page.value("ballot_id") == form.value("ballot_id")
    assert page.input("voter_id")["value"] == PHONE  # the voter's own device: kept
    assert page.checked() == ["A01", "A02"]
    assert page.value("verification_id") and page.input("code")["autocomplete"] == "one-time-code"
    assert "验证码已发送至 139****5678" in sent.text
    assert "60 秒后（10:01:00 以后）可以重新发送" in sent.text
    assert page.scripts == 0 and "重新发送验证码" in sent.text
    assert outbox_lines(app)[-1]["to"] == "139****5678"

    wrong = submit(
        client, page, PHONE, "000000" if last_code(app) != "000000" else "111111", ["A01", "A02"]
    )
    assert wrong.status_code == 422
    again = Page(wrong.text)
    assert "验证码不正确" in again.error("invalid_code")["text"]
    assert again.error("invalid_code")["data-field"] == "code"
    assert again.value("verification_id") == page.value("verification_id")
    assert again.checked() == ["A01", "A02"]

    done = submit(client, again, PHONE, last_code(app), ["A01", "A02"])
    assert done.status_code == 303, done.text
    assert "/vote/c1/receipt/" in done.headers["Location"]
    assert ballot_count(app) == 1


def test_resend_too_soon_and_expired_code_in_the_form(client, app, sms_campaign, clock):
    form = get_form(client)
    page = Page(send_code(client, form, PHONE, ["A01"]).text)
    soon = send_code(client, page, PHONE, ["A01"])
    assert soon.status_code == 429
    text = Page(soon.text).error("resend_too_soon")["text"]
    assert "请 60 秒后再重新发送" in text, text
    assert Page(soon.text).value("verification_id") == page.value("verification_id")
    clock.set(OPEN + timedelta(minutes=6))
    expired = submit(client, page, PHONE, last_code(app), ["A01"])
    assert expired.status_code == 422
    after = Page(expired.text)
    assert "验证码已过期" in after.error("code_expired")["text"]
    assert after.value("verification_id") == ""  # ask for a new one
    assert ballot_count(app) == 0


def test_kiosks_keep_todays_form(client, app, sms_campaign):
    """An enrolled kiosk (attended) sees no code step unless verify_kiosk."""
    from tests.support import enrol, new_kiosk, post_form

    assert enrol(client, new_kiosk(client)["token"]).status_code in (200, 303)
    form = get_form(client)
    assert "发送验证码" not in form.html
    assert post_form(client, form, PHONE, ["A01"]).status_code == 303
    assert ballot_count(app) == 1
