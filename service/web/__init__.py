"""HTML pages: no JavaScript needed, no external assets."""

from flask import Blueprint

bp = Blueprint("web", __name__, template_folder="../templates")

from . import kiosk, kiosk_link, pages, results, review, vote  # noqa: E402,F401  (routes register on import)
