"""Liveness and readiness."""

import socket

import pytest

from service.config import TestConfig
from tests.conftest import error_code


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_healthz_and_readyz_ok(client):
    """A running service with its database and Redis is alive and ready."""
    assert client.get("/healthz").json == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json["checks"] == {"database": "ok", "redis": "ok"}


@pytest.fixture
def app_with(monkeypatch):
    made = []

    def make(**env):
        from service import create_app

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        application = create_app(TestConfig())
        made.append(application)
        return application

    yield make
    for application in made:
        with application.app_context():
            from service.extensions import db

            db.engine.dispose()


def test_readyz_503_when_redis_is_down(app_with):
    """With Redis unreachable /readyz is 503 and names Redis; /healthz stays 200."""
    application = app_with(REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    c = application.test_client()
    assert c.get("/healthz").status_code == 200
    r = c.get("/readyz")
    assert r.status_code == 503 and error_code(r) == "unavailable"
    assert r.json["error"]["details"]["checks"]["redis"].startswith("down")
    assert r.json["error"]["details"]["checks"]["database"] == "ok"
    assert r.headers["Retry-After"]


def test_readyz_503_when_database_is_down(app_with):
    """With the database unreachable /readyz is 503 and names the database."""
    application = app_with(
        DATABASE_URL=f"postgresql://nobody@127.0.0.1:{_closed_port()}/none?connect_timeout=1"
    )
    r = application.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json["error"]["details"]["checks"]["database"].startswith("down")
