"""Console pages: kiosks (register, one-time enrolment link and QR code, revoke)."""

from __future__ import annotations

from flask import render_template

from ..domain.kiosks import list_kiosks
from . import bp
from .guard import staff_required


@bp.get("/kiosks")
@staff_required("admin", "manager", "observer")
def kiosk_list():
    return render_template("console/kiosks.html", kiosks=list_kiosks())
