"""Console: the audit log, filtered by campaign, staff member (actor) and action.

Managers see the events of their campaigns only; admins and observers see everything.
"""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from flask import render_template, request
from flask_babel import gettext as _
from sqlalchemy import select

from ..domain import staff as staff_domain
from ..extensions import db
from ..models import AuditEvent, Campaign
from . import bp
from .guard import current_staff, staff_required

LIMIT = 300
LOCAL = ZoneInfo("Asia/Shanghai")


def action_words(action: str) -> str:
    return {
        "campaign.create": _("创建活动"),
        "campaign.update": _("修改活动设置"),
        "campaign.publish": _("发布活动"),
        "entries.add": _("添加参评对象"),
        "entry.update": _("修改参评对象"),
        "entry.delete": _("删除参评对象"),
        "expert.add": _("邀请专家"),
        "expert.revoke": _("撤销专家"),
        "expert.assign": _("分配评审"),
        "expert.new_link": _("专家新链接"),
        "ballots.exclude": _("排除选票"),
        "ballots.exclude.revoke": _("恢复选票"),
        "ranking.start": _("开始计算"),
        "publication.create": _("公示结果"),
        "kiosk.register": _("登记终端"),
        "kiosk.enrol_link": _("终端登记链接"),
        "kiosk.enrol_browser": _("终端浏览器登记"),
        "kiosk.revoke": _("停用终端"),
        "roll.add": _("添加选民名册"),
        "staff.login": _("登录"),
        "staff.logout": _("退出"),
    }.get(action, action)


@bp.get("/audit")
@staff_required("admin", "manager", "observer")
def audit_log():
    staff = current_staff()
    campaigns = list(db.session.scalars(select(Campaign).order_by(Campaign.id.desc())))
    if staff is not None and staff.role == "manager":
        mine = set(staff_domain.managed_campaign_ids(staff))
        campaigns = [c for c in campaigns if c.id in mine]
    by_id = {c.id: c for c in campaigns}
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if staff is not None and staff.role == "manager":
        query = query.where(AuditEvent.campaign_id.in_(list(by_id) or [0]))
    slug = request.args.get("campaign") or ""
    who = request.args.get("actor") or ""
    action = request.args.get("action") or ""
    if slug:
        wanted = next((c for c in campaigns if c.slug == slug), None)
        query = query.where(AuditEvent.campaign_id == (wanted.id if wanted else 0))
    if who:
        query = query.where(AuditEvent.actor == who)
    if action:
        query = query.where(AuditEvent.action == action)
    events = list(db.session.scalars(query.limit(LIMIT)))
    actors = sorted(set(db.session.scalars(select(AuditEvent.actor).distinct())))
    actions = sorted(set(db.session.scalars(select(AuditEvent.action).distinct())))
    rows = [
        {
            "at": e.created_at.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S"),
            "campaign": by_id.get(e.campaign_id),
            "actor": e.actor,
            "action": e.action,
            "words": action_words(e.action),
            "details": json.dumps(e.details or {}, ensure_ascii=False, sort_keys=True)[:600],
        }
        for e in events
    ]
    return render_template(
        "console/audit.html",
        rows=rows,
        campaigns=campaigns,
        actors=actors,
        actions=[(a, action_words(a)) for a in actions],
        chosen={"campaign": slug, "actor": who, "action": action},
        limit=LIMIT,
    )
