"""Setting up a campaign in the console: the form, entries, kiosks, experts, publishing."""

from __future__ import annotations

import io
import re
from datetime import datetime

import pytest
from sqlalchemy import select

from tests.console_support import console_token, login, make_staff

NOW = datetime.fromisoformat("2026-11-20T10:00:00+08:00")


@pytest.fixture
def admin(app, client, clock):
    clock.set(NOW)
    make_staff(app, "admin1", "admin")
    login(client, "admin1")
    return client


def _form_fields(html: str) -> dict:
    """Every named input/select/textarea value of the first form with csrf (a browser's
    submission of the form as shown, checkboxes as checked)."""
    fields: dict = {}
    for m in re.finditer(r"<input ([^>]*)>", html):
        attrs = dict(re.findall(r'(\w[\w-]*)="([^"]*)"', m.group(1)))
        name = attrs.get("name")
        if not name or attrs.get("type") == "file":
            continue
        if attrs.get("type") == "checkbox":
            if " checked" in m.group(1):
                fields.setdefault(name, []).append(attrs.get("value", "on"))
            continue
        fields[name] = attrs.get("value", "")
    for m in re.finditer(r'<select id="[^"]*" name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        sel = re.search(r'<option value="([^"]*)" selected', m.group(2))
        first = re.search(r'<option value="([^"]*)"', m.group(2))
        fields[m.group(1)] = sel.group(1) if sel else (first.group(1) if first else "")
    for m in re.finditer(r'<textarea id="[^"]*" name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        fields[m.group(1)] = m.group(2)
    return fields


def _new_grids(client, slug="pengpu-2024-grids-2", **changes):
    page = client.get("/console/campaigns/new?template=grids")
    assert page.status_code == 200
    fields = _form_fields(page.text)
    fields.update({"slug": slug, "title": "2024年第二批“彭邻格”项目遴选", "action": "save"})
    fields.update(changes)
    return client.post("/console/campaigns/new", data=fields)


def test_new_campaign_from_the_grids_template_is_a_draft(app, admin):
    chooser = admin.get("/console/campaigns/new")
    assert "彭邻格项目遴选" in chooser.text and "楼组之最" in chooser.text
    r = _new_grids(admin)
    assert r.status_code == 303, r.text[:2000]
    assert r.location == "/console/campaigns/pengpu-2024-grids-2"
    doc = admin.get(
        "/api/v1/campaigns/pengpu-2024-grids-2",
        headers={"Authorization": "Bearer " + app.config["ADMIN_TOKEN"]},
    ).json
    assert doc["draft"] is True
    assert doc["selection"]["rule"] == "greedy_budget" and doc["selection"]["budget"] == 300000
    assert [c["key"] for c in doc["review"]["criteria"]] == ["urgency", "feasibility", "benefit"]
    assert doc["voting"]["voter_id"] == "cn_resident_id"
    assert doc["voting"]["opens_at"].endswith("+08:00")
    page = admin.get("/console/campaigns/pengpu-2024-grids-2")
    assert "发布活动" in page.text and "这些设置的含义" in page.text
    from service.extensions import db
    from service.models import AuditEvent

    with app.app_context():
        actors = set(
            db.session.scalars(
                select(AuditEvent.actor).where(AuditEvent.action == "campaign.create")
            )
        )
    assert actors == {"staff:admin1"}


def test_form_errors_appear_beside_their_fields_in_chinese(admin):
    r = _new_grids(
        admin,
        slug="Bad Slug",
        **{
            "voting.max_choices": "abc",
            "voting.closes_at": "2026-11-01T10:00",
            "selection.budget": "",
            "review.criteria.0.max_points": "-5",
        },
    )
    assert r.status_code == 422
    text = r.text
    assert 'id="err-slug"' in text and "格式不正确" in text
    assert 'id="err-voting-max_choices"' in text and "须为整数" in text
    assert 'id="err-selection-budget"' in text and "需要预算" in text
    assert 'id="err-review-criteria-0-max_points"' in text
    # What was typed is shown again.
    assert 'value="Bad Slug"' in text and 'value="abc"' in text


def test_closes_before_opens_is_reported_on_the_field(admin):
    r = _new_grids(
        admin, **{"voting.opens_at": "2026-12-01T09:00", "voting.closes_at": "2026-11-30T09:00"}
    )
    assert (
        r.status_code == 422
        and 'id="err-voting-closes_at"' in r.text
        and "结束时间须晚于开始时间" in r.text
    )


def test_preview_explains_the_method_without_saving(app, admin):
    r = _new_grids(admin, action="preview")
    assert r.status_code == 200
    assert (
        "这些设置的含义" in r.text
        and "在预算" in r.text
        and "300,000" in r.text
        or "300000" in r.text
    )
    assert admin.get("/console/campaigns/pengpu-2024-grids-2").status_code == 404


def test_add_a_criterion_row_without_javascript(admin):
    page = admin.get("/console/campaigns/new?template=grids")
    fields = _form_fields(page.text)
    fields.update(slug="x-1", title="t", action="add_criterion")
    r = admin.post("/console/campaigns/new", data=fields)
    assert r.status_code == 200 and 'name="review.criteria.3.key"' in r.text


def test_edit_changes_rules_of_a_draft(admin):
    _new_grids(admin)
    page = admin.get("/console/campaigns/pengpu-2024-grids-2/edit")
    fields = _form_fields(page.text)
    fields.update({"selection.budget": "250000", "action": "save"})
    r = admin.post("/console/campaigns/pengpu-2024-grids-2/edit", data=fields)
    assert r.status_code == 303, r.text[:3000]
    page = admin.get("/console/campaigns/pengpu-2024-grids-2/edit")
    assert 'value="250000' in page.text


GOOD = "code,title,summary,category,area,grid,cost\nG01,楼道亮起来,换灯,安全治理,海鹰居民区,海鹰二网格,24000\nG02,邻里助餐点,,为老服务,运城居民区,运城一网格,52000\n"


def test_upload_gbk_csv_previews_line_errors_then_imports_all_or_nothing(app, admin):
    _new_grids(admin)
    base = "/console/campaigns/pengpu-2024-grids-2/entries"
    token = console_token(admin, base)
    bad = GOOD + "G03,,无标题,安全治理,海鹰居民区,,abc\n"
    r = admin.post(
        base + "/upload",
        data={"csrf_token": token, "file": (io.BytesIO(bad.encode("gbk")), "entries.csv")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 422
    assert "有 1 行有错误" in r.text and 'class="bad"' in r.text and "title:" in r.text
    assert "楼道亮起来" in r.text  # decoded from GBK
    assert (
        admin.get(
            "/api/v1/campaigns/pengpu-2024-grids-2/entries",
            headers={"Authorization": "Bearer " + app.config["ADMIN_TOKEN"]},
        ).json
        == []
    )
    r = admin.post(
        base + "/upload",
        data={"csrf_token": token, "file": (io.BytesIO(GOOD.encode("gbk")), "entries.csv")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 200 and "全部 2 行都正确" in r.text
    text = re.search(r'name="text" value="([^"]*)"', r.text).group(1)
    import html

    r = admin.post(base + "/import", data={"csrf_token": token, "text": html.unescape(text)})
    assert r.status_code == 303
    assert "已导入 2 个参评对象" in admin.get(base).text


def test_upload_xlsx_with_a_chinese_header(app, admin):
    from openpyxl import Workbook

    _new_grids(admin)
    book = Workbook()
    sheet = book.active
    sheet.append(["编号", "名称", "简介", "类别", "居民区", "网格", "经费"])
    sheet.append(["G01", "楼道亮起来", None, "安全治理", "海鹰居民区", None, 24000])
    data = io.BytesIO()
    book.save(data)
    base = "/console/campaigns/pengpu-2024-grids-2/entries"
    r = admin.post(
        base + "/upload",
        data={
            "csrf_token": console_token(admin, base),
            "file": (io.BytesIO(data.getvalue()), "e.xlsx"),
        },
        content_type="multipart/form-data",
    )
    assert r.status_code == 200 and "全部 1 行都正确" in r.text, r.text[-3000:]


def test_single_entries_in_a_draft_even_after_its_opening_date(app, admin, clock):
    _new_grids(admin, **{"voting.opens_at": "2026-11-01T09:00"})
    base = "/console/campaigns/pengpu-2024-grids-2/entries"
    token = console_token(admin, base)
    r = admin.post(
        base, data={"csrf_token": token, "code": "G09", "title": "新项目", "cost": "100"}
    )
    assert r.status_code == 303
    r = admin.post(base + "/G09", data={"csrf_token": token, "title": "改名", "cost": "200"})
    assert r.status_code == 303
    assert "改名" in admin.get(base).text
    r = admin.post(base, data={"csrf_token": token, "code": "G09", "title": "重复"})
    assert r.status_code == 409 and "编号已存在" in r.text
    assert admin.post(base + "/G09/delete", data={"csrf_token": token}).status_code == 303
    assert "改名" not in admin.get(base).text


def test_kiosk_enrolment_link_is_single_use_and_enrols_without_a_token(app, admin, clock):
    from datetime import timedelta

    token = console_token(admin, "/console/kiosks")
    r = admin.post("/console/kiosks", data={"csrf_token": token, "name": "居委会大厅"})
    assert r.status_code == 200
    link = re.search(r'id="enrol-url" readonly value="([^"]+)"', r.text).group(1)
    assert link.startswith("http://localhost/kiosk/enrol/otl_")
    assert 'src="data:image/svg+xml' in r.text
    kiosk_browser = app.test_client()
    path = link.removeprefix("http://localhost")
    page = kiosk_browser.get(path)
    assert page.status_code == 200 and "居委会大厅" in page.text and 'name="token"' not in page.text
    from tests.console_support import csrf

    done = kiosk_browser.post(path, data={"csrf_token": csrf(page.data)})
    assert done.status_code == 200 and "登记成功" in done.text
    assert kiosk_browser.get_cookie("votes_kiosk").value.startswith("ksb_")
    # Single use.
    assert app.test_client().get(path).status_code == 403
    # A fresh link expires after 24 h.
    r = admin.post("/console/kiosks/1/link", data={"csrf_token": token})
    second = re.search(r'id="enrol-url" readonly value="http://localhost([^"]+)"', r.text).group(1)
    clock.set(clock.at + timedelta(hours=24))
    assert app.test_client().get(second).status_code == 403


def test_expert_invitation_has_an_absolute_link_and_a_new_link_kills_the_old(
    app, admin, monkeypatch
):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://votes.example.org")
    _new_grids(admin)
    base = "/console/campaigns/pengpu-2024-grids-2/experts"
    token = console_token(admin, base)
    r = admin.post(base, data={"csrf_token": token, "name": "赵文军"})
    link = re.search(r'id="invite-link" readonly value="([^"]+)"', r.text).group(1)
    assert link.startswith("https://votes.example.org/review/pengpu-2024-grids-2/login?token=exp_")
    assert "赵文军 您好" in r.text and link.replace("&", "&amp;") in r.text
    import html

    path = html.unescape(link).removeprefix("https://votes.example.org")
    assert app.test_client().get(path).status_code == 200
    r = admin.post(base + "/1/link", data={"csrf_token": token})
    assert app.test_client().get(path).status_code == 403
    new = html.unescape(re.search(r'id="invite-link" readonly value="([^"]+)"', r.text).group(1))
    assert app.test_client().get(new.removeprefix("https://votes.example.org")).status_code == 200


def test_publish_from_the_console(app, admin, clock):
    _new_grids(admin)
    token = console_token(admin, "/console/campaigns/pengpu-2024-grids-2")
    assert admin.get("/vote/pengpu-2024-grids-2").status_code == 404
    r = admin.post("/console/campaigns/pengpu-2024-grids-2/publish", data={"csrf_token": token})
    assert r.status_code == 303
    assert "活动已发布" in admin.get("/console/campaigns/pengpu-2024-grids-2").text
    assert admin.get("/vote/pengpu-2024-grids-2").status_code == 200


def test_after_publishing_an_entry_title_can_still_be_corrected(app, admin, clock):
    _new_grids(admin, **{"voting.opens_at": "2026-11-01T09:00"})
    base = "/console/campaigns/pengpu-2024-grids-2/entries"
    token = console_token(admin, base)
    admin.post(base, data={"csrf_token": token, "code": "G09", "title": "错字", "cost": "100"})
    admin.post("/console/campaigns/pengpu-2024-grids-2/publish", data={"csrf_token": token})
    r = admin.post(base + "/G09", data={"csrf_token": token, "title": "正字", "cost": "100"})
    assert r.status_code == 303
    r = admin.post(base + "/G09", data={"csrf_token": token, "title": "正字", "cost": "5"})
    assert r.status_code == 409 and "参评对象不可增删改" in r.text
    assert "添加一个" not in admin.get(base).text  # locked: no add form
