"""Console pages: kiosks (register, one-time enrolment link and its QR code, list with
the last ballot and today's ballots, revoke). Kiosks serve every campaign: managers may
register one; new links and revoking are for admins."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from ..clock import now
from ..domain import kiosks as kiosk_domain
from ..domain import staff as staff_domain
from ..errors import ApiError
from ..extensions import db
from ..models import Ballot, Kiosk
from ..urls import absolute_url
from . import bp
from .experts import qr_data_uri
from .forms import in_chinese
from .guard import actor, staff_required

LOCAL = ZoneInfo("Asia/Shanghai")


def _enrol_link(kiosk: Kiosk, token: str) -> dict:
    link = absolute_url(url_for("web.kiosk_link", token=token))
    return {"name": kiosk.name, "link": link, "qr": qr_data_uri(link)}


def _page(link=None, error=None, status=200):
    kiosks = kiosk_domain.list_kiosks()
    last = dict(
        db.session.execute(
            select(Ballot.kiosk_id, func.max(Ballot.accepted_at)).group_by(Ballot.kiosk_id)
        ).all()
    )
    midnight = datetime.combine(now().astimezone(LOCAL).date(), time(), LOCAL)
    today = dict(
        db.session.execute(
            select(Ballot.kiosk_id, func.count())
            .where(Ballot.accepted_at >= midnight)
            .group_by(Ballot.kiosk_id)
        ).all()
    )
    rows = [
        {
            "kiosk": k,
            "last": last.get(k.id).astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")
            if last.get(k.id)
            else None,
            "today": today.get(k.id, 0),
        }
        for k in kiosks
    ]
    return render_template("console/kiosks.html", rows=rows, link=link, error=error), status


@bp.get("/kiosks")
@staff_required("admin", "manager", "observer")
def kiosk_list():
    return _page()


@bp.post("/kiosks")
@staff_required("admin", "manager")
def kiosk_register():
    name = (request.form.get("name") or "").strip()
    location = (request.form.get("location") or "").strip() or None
    if not name or len(name) > 200:
        return _page(error=_("请填写终端名称（最多 200 个字符）。"), status=422)
    kiosk, _token = kiosk_domain.register_kiosk(name, location, actor())
    token = staff_domain.issue_kiosk_link(kiosk, actor())
    db.session.commit()
    return _page(link=_enrol_link(kiosk, token))


@bp.post("/kiosks/<int:kiosk_id>/link")
@staff_required("admin")
def kiosk_new_link(kiosk_id: int):
    kiosk = db.session.get(Kiosk, kiosk_id)
    if kiosk is None:
        return _page(error=_("终端不存在。"), status=404)
    try:
        token = staff_domain.issue_kiosk_link(kiosk, actor())
    except ApiError as exc:
        db.session.rollback()
        return _page(error=in_chinese(exc.message), status=exc.status)
    db.session.commit()
    return _page(link=_enrol_link(kiosk, token))


@bp.post("/kiosks/<int:kiosk_id>/revoke")
@staff_required("admin")
def kiosk_revoke(kiosk_id: int):
    kiosk_domain.revoke_kiosk(kiosk_id, actor())
    db.session.commit()
    flash(_("终端已停用：它的登记和令牌立即失效。"))
    return redirect(url_for("console.kiosk_list"), 303)
