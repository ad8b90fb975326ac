"""Operations endpoints: liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from .errors import error_body
from .extensions import db
from .redis_conn import get_redis

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    checks: dict[str, str] = {}
    # Twice at most: a pooled connection that died with a PostgreSQL restart fails once
    # (and the pool is invalidated), and this worker is ready if a fresh one works.
    for _ in range(2):
        try:
            db.session.execute(text("SELECT 1"))
            checks["database"] = "ok"
            break
        except Exception as exc:  # any failure means not ready
            db.session.rollback()
            checks["database"] = f"down: {type(exc).__name__}"
    try:
        get_redis(current_app.config["REDIS_URL"]).ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"down: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return jsonify(status="ready", checks=checks)
    down = [k for k, v in checks.items() if v != "ok"]
    body = error_body(
        "unavailable", f"依赖不可用 / Not ready: {', '.join(down)} down", {"checks": checks}
    )
    response = jsonify(body)
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response
