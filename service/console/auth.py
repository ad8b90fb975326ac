"""Log-in, log-out and the one-time set-password page."""

from __future__ import annotations

from flask import abort, current_app, g, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..domain import staff as staff_domain
from ..errors import ApiError
from ..extensions import db, limiter
from ..web.render import in_voters_language
from . import bp
from .guard import COOKIE, clear_session_cookie, current_staff, set_session_cookie

# Views that answer without a session; an observer may still POST to these.
OPEN_ENDPOINTS = {
    "console.login",
    "console.logout",
    "console.set_password",
}


@bp.before_request
def _read_only_observers():
    """Observers see everything and change nothing: every non-GET request is refused."""
    if request.method in ("GET", "HEAD", "OPTIONS") or request.endpoint in OPEN_ENDPOINTS:
        return None
    staff = current_staff()
    if staff is not None and staff.role == "observer":
        abort(403)
    return None


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def _safe_next(target: str | None) -> str:
    """Only a path inside the console (no open redirect)."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return url_for("console.home")


def _login_limit() -> str:
    return current_app.config["RATELIMIT_CONSOLE_LOGIN"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    error, name = None, ""
    if request.method == "POST":
        name = request.form.get("name", "").strip()[:100]
        try:
            staff = staff_domain.authenticate(name, request.form.get("password", ""))
        except ApiError as exc:
            db.session.commit()  # failed attempts count towards the lockout
            error = in_voters_language(exc.message)
            status = 423 if exc.code == "account_locked" else 401
            return (
                render_template("console/login.html", error=error, name=name, code=exc.code),
                status,
            )
        secret = staff_domain.open_session(staff)
        db.session.commit()
        response = make_response(redirect(_safe_next(request.form.get("next"))))
        set_session_cookie(response, secret)
        return response
    if current_staff() is not None:
        return redirect(_safe_next(request.args.get("next")))
    return render_template("console/login.html", error=error, name=name)


@bp.post("/logout")
def logout():
    staff_domain.close_session(request.cookies.get(COOKIE))
    db.session.commit()
    g.pop("console_staff", None)
    response = make_response(redirect(url_for("console.login")))
    clear_session_cookie(response)
    return response


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str):
    staff = staff_domain.staff_for_password_link(token)
    if staff is None:
        return (
            render_template(
                "console/message.html",
                heading=_("链接无效"),
                message=_(
                    "这个链接无效、已使用或已过期（有效期 24 小时）。请向管理员索取新的链接。"
                ),
            ),
            403,
        )
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        error = staff_domain.check_password_rules(password, request.form.get("repeat", ""))
        if error is None:
            staff_domain.use_password_link(token, password)
            db.session.commit()
            return render_template(
                "console/message.html",
                heading=_("密码已设置"),
                message=_("请用您的姓名和新密码登录。"),
                link=(url_for("console.login"), _("登录")),
            )
        error = in_voters_language(error)
    return render_template(
        "console/set_password.html",
        staff=staff,
        error=error,
        min_length=staff_domain.MIN_PASSWORD,
    ), (422 if error else 200)
