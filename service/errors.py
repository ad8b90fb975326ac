"""One error shape for every failure: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request
from marshmallow import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from .extensions import db

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}

MESSAGES = {
    400: "请求格式错误 / Malformed request",
    401: "缺少或无效的令牌 / Missing or unknown token",
    403: "无权执行此操作 / This token may not do that",
    404: "未找到 / Not found",
    405: "不支持该方法 / Method not allowed",
    413: "请求体过大（上限 1 MiB）/ Request body too large (limit 1 MiB)",
    415: "不支持的内容类型 / Unsupported content type",
    422: "输入无效 / Invalid input",
    429: "请求过于频繁，请稍后再试 / Too many requests, try again later",
    500: "服务器内部错误 / Internal error",
    503: "服务暂时不可用，请稍后重试 / Service temporarily unavailable, retry shortly",
}


class ApiError(Exception):
    """A domain error with a stable code. Raised anywhere; rendered once."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or code)
        self.status = status
        self.code = code
        self.message = message or MESSAGES.get(status, code)
        self.details = details or {}
        self.headers = headers or {}


def validation_error(
    fields: dict[str, Any] | list[Any], code: str = "validation_error", message: str | None = None
) -> ApiError:
    return ApiError(422, code, message or MESSAGES[422], {"fields": fields})


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _json_error(status: int, code: str, message: str, details=None, headers=None):
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _wants_html() -> bool:
    return not request.path.startswith("/api/") and request.path not in {
        "/healthz",
        "/readyz",
        "/metrics",
    }


def render_error(status: int, code: str, message: str, details=None, headers=None):
    if _wants_html():
        # Late: service.web's pages import this module (an import cycle otherwise).
        from .web.render import error_page

        return error_page(status, code, message, headers)
    return _json_error(status, code, message, details, headers)


def _flatten_webargs(messages: dict[str, Any]) -> dict[str, Any]:
    # webargs nests by location ({"json": {...}}); clients want fields only.
    fields: dict[str, Any] = {}
    for location, value in messages.items():
        if isinstance(value, dict) and location in {"json", "form", "query", "files", "headers"}:
            fields.update(value)
        else:
            fields[location] = value
    return fields


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(exc: ApiError):
        return render_error(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(ValidationError)
    def handle_validation_error(exc: ValidationError):
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return render_error(422, "validation_error", MESSAGES[422], {"fields": messages})

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException):
        status = exc.code or 500
        code = HTTP_CODES.get(status, "error")
        message = MESSAGES.get(status, exc.description or code)
        details: dict[str, Any] = {}
        data = getattr(exc, "data", None)
        if (
            status == 422
            and data
            and "messages" in data
            or status == 400
            and data
            and "messages" in data
        ):
            details["fields"] = _flatten_webargs(data["messages"])
        headers = {}
        if status == 405 and (methods := getattr(exc, "valid_methods", None)):
            headers["Allow"] = ", ".join(methods)
        if status == 429:
            retry = getattr(exc, "retry_after", None)
            headers["Retry-After"] = str(retry or 60)
            code = "rate_limited"
        return render_error(status, code, message, details, headers)

    @app.errorhandler(IntegrityError)
    def handle_integrity_error(exc: IntegrityError):
        db.session.rollback()
        log.warning("integrity error: %s", type(exc.orig).__name__)
        return render_error(409, "conflict", "与现有数据冲突 / Conflicts with existing data")

    @app.errorhandler(OperationalError)
    def handle_db_down(exc: OperationalError):
        _safe_rollback(db)
        log.error("database unavailable: %s", type(exc.orig).__name__)
        return render_error(503, "unavailable", MESSAGES[503], headers={"Retry-After": "5"})

    @app.errorhandler(DBAPIError)
    def handle_dbapi_error(exc: DBAPIError):
        _safe_rollback(db)
        if exc.connection_invalidated:
            return render_error(503, "unavailable", MESSAGES[503], headers={"Retry-After": "5"})
        log.exception("database error")
        return render_error(500, "internal_error", MESSAGES[500])

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        # Never a stack trace to the client; the log has it.
        _safe_rollback(db)
        if isinstance(exc, HTTPException):
            return handle_http_exception(exc)
        if isinstance(exc, RedisError):
            log.error("redis unavailable: %s", type(exc).__name__)
            return render_error(
                503,
                "queue_unavailable",
                "任务队列暂时不可用 / The job queue is temporarily unavailable",
                headers={"Retry-After": "10"},
            )
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(500, "internal_error", MESSAGES[500])


def _safe_rollback(db) -> None:
    try:
        db.session.rollback()
    except Exception:  # the connection may be gone; the pool will replace it
        log.debug("rollback failed", exc_info=True)
