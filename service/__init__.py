"""Votes: a voting and project-selection service (public vote + expert review)."""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from werkzeug.middleware.proxy_fix import ProxyFix

from . import observability, security
from .api import register_api
from .cli import register_cli
from .config import Config, instance_dir
from .console import bp as console_bp
from .errors import register_error_handlers
from .extensions import babel, csrf, db, limiter, migrate
from .health import bp as health_bp
from .redis_conn import embedded_url
from .translations import compile_catalogs
from .web import bp as web_bp
from .web.render import select_locale


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without building the signer (an itsdangerous
    serializer, about a tenth of a cached results page's time) for a request that
    carries no session cookie, as most readers of the public pages do."""

    def open_session(self, app, request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def create_app(config: Config | None = None) -> Flask:
    config = config or Config()
    app = Flask(__name__, instance_path=str(instance_dir()))
    app.session_interface = SessionInterface()
    app.config.from_object(config)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # DefaultJSONProvider's
    if app.config["PROXY_HOPS"]:
        # Behind PROXY_HOPS proxies the TCP peer is the nearest proxy: the client address
        # (rate limits, logs) and the scheme come from that many X-Forwarded-For /
        # X-Forwarded-Proto entries, counted from the right, so entries a client sent
        # itself are never trusted. With 0 the headers are ignored.
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]  # Flask's documented way
            app.wsgi_app, x_for=hops, x_proto=hops
        )

    if not app.config.get("REDIS_URL"):
        # The embedded server starts on first use (get_redis), not here: commands such
        # as `votes db upgrade` must not leave a redis-server behind.
        app.config["REDIS_URL"] = embedded_url()
    app.config.setdefault("RATELIMIT_STORAGE_URI", _limiter_uri(app.config["REDIS_URL"]))
    # A Redis outage must not stop voting: the database is the source of truth. Limits
    # fall back to per-process memory (logged) and storage errors are never fatal.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    # X-RateLimit-* headers would cost a Redis read on every ballot; 429s carry Retry-After.
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True)
    # Catalogs ship as .po only; the .mo files are built into the instance folder.
    translations = compile_catalogs(Path(app.instance_path) / "translations")
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(translations)
    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)
    limiter.init_app(app)

    with app.app_context():
        _configure_sqlite(app)
        _ping_idle_connections(app)

    register_error_handlers(app)

    register_api(app)
    # The JSON API authenticates with bearer tokens, not cookies: CSRF does not apply.
    for name in list(app.blueprints):
        if name not in ("web", "health"):
            csrf.exempt(app.blueprints[name])

    app.register_blueprint(health_bp)

    app.register_blueprint(web_bp)

    app.register_blueprint(console_bp)

    register_cli(app)

    observability.init_app(app)
    security.init_app(app)
    if not app.testing:
        observability.configure_logging()
    return app


def _limiter_uri(url: str) -> str:
    if url.startswith("unix://"):
        # limits wants redis+unix:// for unix sockets
        return "redis+unix://" + url[len("unix://") :]
    return url


def _migrations_dir():
    return Path(__file__).resolve().parent.parent / "migrations"


# A pooled connection idle at least this long is pinged before use (a database restart
# or an idle timeout may have closed it); one in steady use is not.
PING_IDLE_SECONDS = 1.0


def _ping_idle_connections(app: Flask) -> None:
    """pool_pre_ping, but only for connections idle PING_IDLE_SECONDS or more: under load
    a connection is reused within milliseconds, and the ping was a round trip per request.
    A failed ping raises DisconnectionError: the pool discards the connection and
    connects anew (SQLAlchemy's documented pessimistic disconnect handling)."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return

    @event.listens_for(db.engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        if record is not None:
            record.info["checked_in"] = time.monotonic()

    @event.listens_for(db.engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        since = record.info.get("checked_in")
        if since is not None and time.monotonic() - since < PING_IDLE_SECONDS:
            return
        try:
            dbapi_connection.execute("SELECT 1")
            dbapi_connection.rollback()  # leave no transaction open behind the ping
        except Exception as exc:  # any failure: this connection is not usable
            raise DisconnectionError() from exc


def _configure_sqlite(app: Flask) -> None:
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return

    @event.listens_for(db.engine, "connect")
    def _pragmas(dbapi_connection, _record):
        # pysqlite's own transaction handling breaks SAVEPOINT (which every ballot uses);
        # take it over as SQLAlchemy documents: no implicit BEGIN, we emit our own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(db.engine, "begin")
    def _begin(conn):
        # IMMEDIATE takes the write lock up front, so concurrent writers queue on
        # busy_timeout instead of failing with "database is locked" mid-transaction.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
