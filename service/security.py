"""Security headers on every response.

The pages use no JavaScript and no external assets, so the policy can be strict: only
same-origin styles and images, no scripts at all, no framing, forms post to us only.
"""

from flask import Flask, request

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


def init_app(app: Flask) -> None:
    @app.before_request
    def _refuse_nul():
        # A NUL in a path or query can reach no resource, and PostgreSQL refuses it
        # as a parameter: answer 400 before any handler sees it.
        if "\x00" in request.path or any(
            "\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)
        ):
            raise ApiError(400, "bad_request", "网址含有控制字符 / control characters in the URL")

    @app.after_request
    def _headers(response):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response
