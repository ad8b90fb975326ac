"""Binding a browser to a kiosk: enrolling with the kiosk's API token gives the browser a
credential of its own (``kiosk_sessions``) in a long-lived, HttpOnly cookie, and every
ballot from that browser records the kiosk.

The cookie never holds the API token: the browser credential is accepted by the HTML
voting form only (the JSON API and batch upload take bearer tokens alone), and revoking
the kiosk (``DELETE /api/v1/kiosks/{id}``, or the console) stops it at once in the process
that revokes it and within a second in the others (the cookie is cached, hotcache.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g, make_response, render_template, request
from flask_babel import gettext as _

from .. import hotcache
from ..auth import hash_token, principal_for
from ..domain.kiosks import kiosk_for_browser, open_browser_session
from ..extensions import db
from ..models import Kiosk
from . import bp
from .render import error_page

KIOSK_COOKIE = "votes_kiosk"
# Browsers cap cookie lifetimes at 400 days (RFC 6265bis); a kiosk is re-enrolled after.
KIOSK_COOKIE_MAX_AGE = 400 * 24 * 3600


@dataclass(frozen=True)
class Device:
    """What this browser is: a kiosk (with its id), a revoked kiosk, or a plain browser."""

    kiosk_id: int | None = None
    kiosk_name: str | None = None
    revoked: bool = False

    @property
    def is_kiosk(self) -> bool:
        return self.kiosk_id is not None


def kiosk_for_token(token: str | None) -> Kiosk | None:
    """The live kiosk a token belongs to, or None (unknown, revoked, or not a kiosk's)."""
    principal = principal_for(token)
    if principal is None or principal.role != "kiosk" or principal.kiosk_id is None:
        return None
    kiosk = db.session.get(Kiosk, principal.kiosk_id)
    if kiosk is None or kiosk.revoked_at is not None:
        return None
    return kiosk


def current_device() -> Device:
    """Resolved once per request from the kiosk cookie."""
    if "vote_device" not in g:
        secret = request.cookies.get(KIOSK_COOKIE)
        if not secret:
            g.vote_device = Device()
        else:
            g.vote_device = _enrolled_device(secret)
    return g.vote_device


def _enrolled_device(secret: str) -> Device:
    """A live kiosk's cookie is cached per process like a kiosk token (hotcache.py):
    revoke_kiosk clears it here at once and in every other process within a second."""
    key = ("kiosk_cookie", hash_token(secret))
    cached = hotcache.cache().lookup(key)
    if cached is not None:
        return cached
    kiosk = kiosk_for_browser(secret)
    if kiosk is None:
        return Device(revoked=True)
    device = Device(kiosk_id=kiosk.id, kiosk_name=kiosk.name)
    hotcache.cache().put(key, device)
    return device


def kiosk_refused():
    return error_page(
        403,
        "kiosk_revoked",
        _(
            "本设备的投票终端登记已失效（终端已被停用或令牌无效），暂时不能投票。"
            "请联系工作人员重新登记。"
        ),
        {"Cache-Control": "no-store"},
    )


def _invalid_token():
    return error_page(
        403,
        "invalid_kiosk_token",
        _("登记链接无效或终端已被停用。请向管理员索取新的登记链接。"),
        {"Cache-Control": "no-store"},
    )


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/kiosk/enrol")
def enrol_confirm():
    """The page an admin opens on the kiosk: it names the kiosk and asks to confirm.

    Without ``?token=`` it asks for the token instead, for sites whose proxy logs would
    otherwise record it in the URL.
    """
    token = request.args.get("token", "").strip()
    if not token:
        return _no_store(
            make_response(render_template("enrol.html", kiosk=None, token="", done=False))
        )
    kiosk = kiosk_for_token(token)
    if kiosk is None:
        return _invalid_token()
    return _no_store(
        make_response(render_template("enrol.html", kiosk=kiosk, token=token, done=False))
    )


@bp.post("/kiosk/enrol")
def enrol():
    """Bind this browser to the kiosk (a POST with CSRF, so a link alone changes nothing)."""
    token = request.form.get("token", "").strip()
    kiosk = kiosk_for_token(token)
    if kiosk is None:
        return _invalid_token()
    return _no_store(enrolled(kiosk))


def enrolled(kiosk):
    """Open a browser session for the kiosk (committed) and answer with its cookie: the
    one step both enrolment paths (token typed, one-time link) end with."""
    secret = open_browser_session(kiosk)
    db.session.commit()
    response = make_response(render_template("enrol.html", kiosk=kiosk, done=True))
    response.set_cookie(
        KIOSK_COOKIE,
        secret,
        max_age=KIOSK_COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
    )
    return response
