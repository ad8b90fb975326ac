"""Who is logged in to the console, and what they may do (see the package docstring)."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from flask import abort, current_app, g, redirect, request, url_for

from ..domain import staff as staff_domain
from ..domain.campaigns import get_campaign
from ..extensions import db
from ..models import Campaign, Staff

COOKIE = "votes_console"


def current_staff() -> Staff | None:
    """The staff member of this request's console session, resolved once per request."""
    if "console_staff" not in g:
        found = staff_domain.staff_for_session(request.cookies.get(COOKIE))
        g.console_staff = None
        if found is not None:
            staff, row = found
            if staff_domain.touch_session(row):
                db.session.commit()
            g.console_staff = staff
    return g.console_staff


def set_session_cookie(response, secret: str) -> None:
    response.set_cookie(
        COOKIE,
        secret,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=bool(current_app.config.get("CONSOLE_COOKIE_SECURE")),
    )


def clear_session_cookie(response) -> None:
    response.delete_cookie(
        COOKIE,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=bool(current_app.config.get("CONSOLE_COOKIE_SECURE")),
    )


def _to_login():
    if request.method == "GET":
        target = request.full_path.rstrip("?")
        return redirect(url_for("console.login") + "?" + urlencode({"next": target}))
    abort(401)


def staff_required(*roles: str):
    """Only a logged-in staff member of one of ``roles`` may use the view."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            staff = current_staff()
            if staff is None:
                return _to_login()
            if staff.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        wrapper.staff_roles = roles  # the role-matrix test reads it
        return wrapper

    return decorator


def campaign_for(slug: str, change: bool = False) -> Campaign:
    """The campaign ``slug`` if the current staff member may see it (or, with ``change``,
    change it): 404 when it does not exist, 403 when it is not theirs."""
    staff = current_staff()
    if staff is None:
        abort(401)
    campaign = get_campaign(slug)
    allowed = (
        staff_domain.can_change(staff, campaign)
        if change
        else staff_domain.can_see(staff, campaign)
    )
    if not allowed:
        abort(403)
    return campaign


def actor() -> str:
    staff = current_staff()
    assert staff is not None
    return staff_domain.actor_of(staff)
