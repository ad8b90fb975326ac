"""Absolute links (set-password, kiosk enrolment, expert review links)."""

from __future__ import annotations

from flask import current_app, has_request_context, request

from .config import local_base_url, web_address


def public_base_url() -> str:
    """Where people reach the service, without a trailing slash: ``PUBLIC_BASE_URL`` if
    set (production behind a proxy), else the address of the current request, else
    ``http://HOST:PORT`` as ``votes up`` prints it."""
    configured = current_app.config.get("PUBLIC_BASE_URL")
    if configured:
        return configured
    if has_request_context():
        return request.host_url.rstrip("/")
    return local_base_url(*web_address())


def absolute_url(path: str) -> str:
    return public_base_url() + (path if path.startswith("/") else "/" + path)
