"""Enrolling a kiosk's browser through a one-time link from the office console: the
page names the kiosk and one tap enrols it (a POST with CSRF, so a link preview that
fetches the URL spends nothing). The link works once, for 24 hours; the browser gets
the same credential as ``/kiosk/enrol`` (``open_browser_session``)."""

from __future__ import annotations

from flask import make_response, render_template, request
from flask_babel import gettext as _

from ..domain.staff import kiosk_for_link, spend_kiosk_link
from . import bp
from .kiosk import enrolled
from .render import error_page


def _refused():
    return error_page(
        403,
        "invalid_link",
        _("登记链接无效、已使用或已过期。请向管理员索取新的登记链接。"),
        {"Cache-Control": "no-store"},
    )


@bp.route("/kiosk/enrol/<token>", methods=["GET", "POST"])
def kiosk_link(token: str):
    kiosk = kiosk_for_link(token)
    if kiosk is None:
        return _refused()
    if request.method == "GET":
        response = make_response(
            render_template("enrol.html", kiosk=kiosk, token="", done=False, link=True)
        )
    else:
        spend_kiosk_link(token)
        response = enrolled(kiosk)
    response.headers["Cache-Control"] = "no-store"
    return response
