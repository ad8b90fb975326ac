"""Console pages: entries (upload CSV or XLSX with a preview of every line's errors,
then import all or nothing; add, edit and delete single entries)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from schemas.entry import EntryPatchSchema, EntrySchema

from ..domain import campaigns as domain
from ..domain.entry_files import entries_csv_text, preview_rows
from ..domain.staff import can_change
from ..errors import ApiError
from ..extensions import db
from . import bp
from .forms import field_errors, in_chinese
from .guard import actor, campaign_for, current_staff, staff_required

FIELDS = ("code", "title", "summary", "category", "area", "grid", "cost")


def _entry_input(form, fields=FIELDS) -> dict:
    data = {}
    for name in fields:
        raw = (form.get(name) or "").strip()
        data[name] = raw or None
    return data


def _page(slug, *, preview=None, upload_error=None, add_errors=None, add_values=None, status=200):
    campaign = campaign_for(slug)
    staff = current_staff()
    return (
        render_template(
            "console/entries.html",
            campaign=campaign,
            entries=domain.list_entries(campaign),
            locked=domain.entries_locked(campaign),
            may_change=staff is not None and can_change(staff, campaign),
            preview=preview,
            upload_error=upload_error,
            add_errors=add_errors or {},
            add_values=add_values or {},
            header=domain.CSV_HEADER,
        ),
        status,
    )


@bp.get("/campaigns/<slug>/entries")
@staff_required("admin", "manager", "observer")
def entries_page(slug: str):
    return _page(slug)


def _line_errors(exc: ApiError) -> dict[int, list[str]]:
    by_line: dict[int, list[str]] = {}
    for item in exc.details.get("lines") or []:
        messages = []
        for field, errs in (item.get("errors") or {}).items():
            for e in errs if isinstance(errs, list) else [errs]:
                label = "" if field in ("_row", "_schema") else f"{field}: "
                messages.append(label + in_chinese(str(e)))
        by_line[item["line"]] = messages
    return by_line


@bp.post("/campaigns/<slug>/entries/upload")
@staff_required("admin", "manager")
def entries_upload(slug: str):
    """Check the file and show every line with its errors; nothing is saved."""
    campaign = campaign_for(slug, change=True)
    upload = request.files.get("file")
    data = upload.read() if upload else b""
    if not data:
        return _page(slug, upload_error=_("请选择文件。"), status=422)
    try:
        text = entries_csv_text(data)
    except ApiError as exc:
        return _page(slug, upload_error=in_chinese(exc.message), status=422)
    errors: dict[int, list[str]] = {}
    try:
        # A dry run of the real import: the same checks, then everything is undone.
        domain.import_entries_csv(campaign, text, actor())
    except ApiError as exc:
        errors = _line_errors(exc)
        if not errors:
            db.session.rollback()
            return _page(slug, upload_error=in_chinese(exc.message), status=exc.status)
    db.session.rollback()
    preview = {
        "rows": preview_rows(text),
        "errors": errors,
        "header_errors": errors.get(1),
        "text": text if not errors else None,
        "filename": upload.filename if upload else "",
    }
    return _page(slug, preview=preview, status=422 if errors else 200)


@bp.post("/campaigns/<slug>/entries/import")
@staff_required("admin", "manager")
def entries_import(slug: str):
    """Import the checked file, all or nothing (the checks run again)."""
    campaign = campaign_for(slug, change=True)
    try:
        result = domain.import_entries_csv(campaign, request.form.get("text", ""), actor())
    except ApiError as exc:
        db.session.rollback()
        return _page(slug, upload_error=in_chinese(exc.message), status=exc.status)
    db.session.commit()
    flash(_("已导入 %(n)s 个参评对象。", n=result["created"]))
    return redirect(url_for("console.entries_page", slug=slug), 303)


@bp.post("/campaigns/<slug>/entries")
@staff_required("admin", "manager")
def entry_add(slug: str):
    campaign = campaign_for(slug, change=True)
    raw = _entry_input(request.form)
    try:
        item = EntrySchema().load(
            {k: v for k, v in raw.items() if v is not None or k in ("code", "title")}
        )
        domain.add_entries(campaign, [item], actor())
    except ValidationError as exc:
        return _page(slug, add_errors=field_errors(exc.messages), add_values=raw, status=422)
    except ApiError as exc:
        db.session.rollback()
        message = in_chinese(exc.message)
        return _page(slug, add_errors={"code": message}, add_values=raw, status=exc.status)
    db.session.commit()
    flash(_("已添加。"))
    return redirect(url_for("console.entries_page", slug=slug), 303)


@bp.route("/campaigns/<slug>/entries/<code>", methods=["GET", "POST"])
@staff_required("admin", "manager")
def entry_edit(slug: str, code: str):
    campaign = campaign_for(slug, change=True)
    entry = domain.get_entry(campaign, code)
    errors, values = {}, {f: getattr(entry, f) for f in FIELDS}
    status = 200
    if request.method == "POST":
        raw = _entry_input(request.form, FIELDS[1:])
        values = {"code": entry.code, **raw}
        try:
            patch = EntryPatchSchema().load(
                {k: v for k, v in raw.items() if v is not None or k != "title"}
            )
            # Only what changed: once voting has opened, texts stay editable and an
            # unchanged category or cost must not count as a change.
            patch = {k: v for k, v in patch.items() if getattr(entry, k) != v}
            domain.update_entry(campaign, entry, patch, actor())
            db.session.commit()
            flash(_("已保存。"))
            return redirect(url_for("console.entries_page", slug=slug), 303)
        except ValidationError as exc:
            errors, status = field_errors(exc.messages), 422
        except ApiError as exc:
            db.session.rollback()
            errors, status = {"_form": in_chinese(exc.message)}, exc.status
    return (
        render_template(
            "console/entry_form.html", campaign=campaign, entry=entry, v=values, errors=errors
        ),
        status,
    )


@bp.post("/campaigns/<slug>/entries/<code>/delete")
@staff_required("admin", "manager")
def entry_delete(slug: str, code: str):
    campaign = campaign_for(slug, change=True)
    try:
        domain.delete_entry(campaign, domain.get_entry(campaign, code), actor())
    except ApiError as exc:
        db.session.rollback()
        flash(in_chinese(exc.message), "error")
        return redirect(url_for("console.entries_page", slug=slug), 303)
    db.session.commit()
    flash(_("已删除 %(code)s。", code=code))
    return redirect(url_for("console.entries_page", slug=slug), 303)
