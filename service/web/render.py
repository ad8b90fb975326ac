from flask import render_template


def error_page(status: int, code: str, message: str, headers=None):
    response = render_template("error.html", status=status, code=code, message=message)
    return response, status, headers or {}
