"""Security headers on every response.

The pages use no JavaScript and no external assets, so the policy can be strict: only
same-origin styles and images, no scripts at all, no framing, forms post to us only.
"""

import re

import numpy as np
from flask import Flask, current_app, request

from .errors import ApiError

CSP = "; ".join(
    [
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # Enrolment and review links carry tokens: never send a URL to another origin. Our
    # own origin must get it, though: over HTTPS the CSRF check (WTF_CSRF_SSL_STRICT)
    # refuses a form post without a same-origin Referer, and `no-referrer` broke every
    # form behind TLS.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

_ITEMS = list(HEADERS.items())
_NAMES = {name.lower() for name in HEADERS}


def init_app(app: Flask) -> None:
    @app.before_request
    def _refuse_nul():
        # A NUL in a path or query can reach no resource, and PostgreSQL refuses it
        # as a parameter: answer 400 before any handler sees it.
        if "\x00" in request.path or any(
            "\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)
        ):
            raise ApiError(400, "bad_request", "网址含有控制字符 / control characters in the URL")

    @app.before_request
    def _refuse_deep_json():
        if request.is_json:
            check_json_depth(request.get_data(cache=True), current_app.config["MAX_JSON_DEPTH"])

    @app.after_request
    def _headers(response):
        # One pass over the response's headers (setdefault per name scanned them six
        # times); a header a view set itself is kept.
        present = {name.lower() for name, _ in response.headers.items()} & _NAMES
        response.headers.extend(
            _ITEMS if not present else [(n, v) for n, v in _ITEMS if n.lower() not in present]
        )
        return response


# A JSON string (unrolled loop: linear, no catastrophic backtracking).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def check_json_depth(body: bytes, limit: int) -> None:
    """400 json_too_deep for a body nested deeper than ``limit`` arrays/objects.

    Python's json parser (and marshmallow after it) recurses once per level: 1,000 levels
    raised RecursionError, a 500. No document of this API nests more than a few levels,
    so the body is measured before anything parses it: strings are dropped, and the depth
    is the highest running sum of +1 per opening and -1 per closing bracket (NumPy, a
    few milliseconds for 1 MiB). A body with no more brackets than the limit is not
    looked at.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return
    brackets = np.frombuffer(_JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKET), np.uint8)
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
    if steps.size and int(np.cumsum(steps).max()) > limit:
        raise ApiError(
            400,
            "json_too_deep",
            f"JSON 嵌套过深（上限 {limit} 层）/ JSON nested too deeply (limit {limit})",
            {"limit": limit},
        )
