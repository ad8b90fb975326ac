from flask import render_template
from flask_babel import get_locale


def error_page(status: int, code: str, message: str, headers=None):
    response = render_template("error.html", status=status, code=code, message=message)
    return response, status, headers or {}


def is_english() -> bool:
    return str(get_locale()) == "en"


def in_voters_language(message: str) -> str:
    """The half of a domain message ("中文 / English") in the page's language."""
    zh, sep, en = message.partition(" / ")
    return en if sep and is_english() else zh
