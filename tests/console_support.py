"""Helpers for the console tests: staff accounts, log-in through the real pages, CSRF."""

from __future__ import annotations

import re

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(html: str | bytes) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    match = _CSRF.search(text)
    assert match, "no csrf_token on the page"
    return match.group(1)


def make_staff(app, name: str, role: str, password: str | None = PASSWORD, campaigns=()) -> str:
    """Create a staff member (with a password unless None); returns the set-password token
    when no password was set."""
    from service.domain import staff as staff_domain
    from service.domain.campaigns import get_campaign
    from service.extensions import db

    with app.app_context():
        member = staff_domain.add_staff(name, role, "test")
        token = staff_domain.issue_password_link(member, "test")
        if password is not None:
            staff_domain.use_password_link(token, password)
        for slug in campaigns:
            staff_domain.assign_campaign(member, get_campaign(slug), "test")
        db.session.commit()
        return token


def login(client, name: str, password: str = PASSWORD):
    page = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"name": name, "password": password, "csrf_token": csrf(page.data)},
    )


def console_token(client, path: str = "/console/") -> str:
    """A CSRF token from a console page (the session's, valid for every form)."""
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return csrf(page.data)
