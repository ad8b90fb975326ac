"""Entries from a spreadsheet: CSV (UTF-8 with or without BOM, GBK, GB18030) or XLSX,
turned into the CSV text ``import_entries_csv`` validates, so the console, the API and
the command line share one set of rules. Headers may be the English column names or
their Chinese names （编号， 名称， 简介， 类别， 居民区， 网格， 经费）."""

from __future__ import annotations

import csv
import io
import zipfile

from ..errors import ApiError
from .campaigns import CSV_HEADER
from .roll import decode

CHINESE_HEADER = {
    "编号": "code",
    "名称": "title",
    "标题": "title",
    "简介": "summary",
    "类别": "category",
    "居民区": "area",
    "区域": "area",
    "网格": "grid",
    "经费": "cost",
    "预算": "cost",
}
XLSX_MAGIC = b"PK\x03\x04"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _xlsx_rows(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook  # only for spreadsheets: a heavy import

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ApiError(
            422,
            "invalid_xlsx",
            "无法读取该 Excel 文件（须为 .xlsx)/ cannot read the Excel file (.xlsx)",
            {"lines": []},
        ) from exc
    sheet = book.worksheets[0]
    rows = [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    book.close()
    # Excel pads rows to the widest one: drop trailing empty cells.
    width = len(CSV_HEADER)
    return [row[:width] + [c for c in row[width:] if c] for row in rows]


def entries_csv_text(data: bytes) -> str:
    """The CSV text of an uploaded file (XLSX by its signature, else CSV in any of the
    accepted encodings), with a Chinese header replaced by the English one."""
    if data.startswith(XLSX_MAGIC):
        rows = _xlsx_rows(data)
    else:
        rows = list(csv.reader(io.StringIO(decode(data).lstrip("\ufeff"))))
    if rows:
        header = [h.strip() for h in rows[0]]
        if all(h in CHINESE_HEADER for h in header if h):
            rows[0] = [CHINESE_HEADER.get(h, h) for h in header]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def preview_rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank data line, for the preview table."""
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    rows = []
    try:
        for row in reader:
            if any(c.strip() for c in row):
                rows.append((reader.line_num, row))
    except csv.Error:
        pass  # import_entries_csv reports the broken line
    return rows
