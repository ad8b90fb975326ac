"""Liveness and readiness."""

from tests.support import closed_port, error_code


def test_healthz_and_readyz_ok(client):
    """A running service with its database and Redis is alive and ready."""
    assert client.get("/healthz").json == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_503_when_redis_is_down(make_app):
    """With Redis unreachable /readyz is 503 and names Redis; /healthz stays 200."""
    application = make_app(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")
    c = application.test_client()
    assert c.get("/healthz").status_code == 200
    r = c.get("/readyz")
    assert r.status_code == 503 and error_code(r) == "unavailable"
    assert r.json["error"]["details"]["checks"]["redis"].startswith("down")
    assert r.json["error"]["details"]["checks"]["database"] == "ok"
    assert r.headers["Retry-After"]


def test_readyz_503_when_database_is_down(make_app):
    """With the database unreachable /readyz is 503 and names the database."""
    application = make_app(
        DATABASE_URL=f"postgresql://nobody@127.0.0.1:{closed_port()}/none?connect_timeout=1"
    )
    r = application.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json["error"]["details"]["checks"]["database"].startswith("down")
