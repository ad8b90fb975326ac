"""Message catalogs for the HTML pages, compiled when the app starts.

Source strings are Simplified Chinese (the default audience reads them untranslated, so
the default language can never fail for lack of a catalog); ``en/LC_MESSAGES`` holds the
English catalog. Only the ``.po`` sources are in git: ``compile_catalogs`` writes the
``.mo`` files into the instance folder whenever one is missing or its ``.po`` changed, so a
fresh clone, a ``git pull`` and a container start all work with no extra build step.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent


def compile_catalogs(target: Path, source: Path = SOURCE_DIR) -> Path:
    """Compile every ``<lang>/LC_MESSAGES/<domain>.po`` under source into target.

    A ``.mo`` is rebuilt when it is missing or was built from other ``.po`` bytes (a
    digest is kept beside it; mtimes lie after copies and checkouts). Files are written
    to a temporary name and renamed, so gunicorn workers starting together never read
    half a catalog. An unwritable target falls back to a private temporary folder.
    Returns the folder to give Flask-Babel.
    """
    try:
        _compile_into(target, source)
        return target
    except OSError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="votes-translations-"))
        log.warning("cannot write catalogs to %s (%s); using %s", target, exc, fallback)
        _compile_into(fallback, source)
        return fallback


def _compile_into(target: Path, source: Path) -> None:
    for po in sorted(source.glob("*/LC_MESSAGES/*.po")):
        data = po.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        mo = target / po.relative_to(source).with_suffix(".mo")
        stamp = mo.with_name(mo.name + ".sha256")
        if mo.exists() and stamp.exists() and stamp.read_text().strip() == digest:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=po.parent.parent.name)
        tmp = mo.with_name(f".{mo.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as handle:
            write_mo(handle, catalog)
        os.replace(tmp, mo)
        tmp_stamp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
        tmp_stamp.write_text(digest)
        os.replace(tmp_stamp, stamp)
        log.info("compiled %s", mo)
