"""Caching immutable representations: a published results page, its JSON and CSV.

A publication never changes, so what is rendered from it (per language) can be kept and
served again. The caller names the representation with a key that changes whenever what
it shows could (campaign, version, digest, language, campaign edit time, template
version); the key's hash is the strong ETag. The body is looked up in a small
per-process LRU, then in Redis (shared by the gunicorn workers), and rendered only when
both miss. Redis being down costs nothing but the shared copy: after a failure it is
skipped for ``REDIS_RETRY_SECONDS`` and pages are rendered as before.

A client that accepts gzip gets the gzip variant, compressed once and kept like the
plain one under its own key and strong ETag (a different representation), with
``Vary: Accept-Encoding`` on both so that a shared cache keeps them apart.

Whether a campaign's results are public is decided by the caller before it asks for a
key, on every request: nothing is served from here for a campaign that shows nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import redis
from flask import Response, current_app, request

from .redis_conn import get_redis

LRU_SIZE = 256  # a campaign's page: 2 languages x 2 text sizes x plain|gzip, + JSON, CSV
REDIS_TTL_SECONDS = 24 * 3600
REDIS_RETRY_SECONDS = 5.0
REDIS_PREFIX = "votes:http-cache:"

# The latest results (/results/<slug>, /results, /results.csv) change when a new version
# is published: browsers and proxies keep them briefly and then revalidate (304). A
# numbered version (/publications/{n}) never changes.
LATEST_CACHE_CONTROL = "public, max-age=5, must-revalidate"
VERSION_CACHE_CONTROL = "public, max-age=31536000, immutable"
UNCACHED = "no-cache"
GZIP_LEVEL = 6

_lru: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
_lock = threading.Lock()
_redis_down_until = 0.0


def etag_for(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def clear_local() -> None:
    """Forget this process's copies (tests; Redis keeps its own)."""
    with _lock:
        _lru.clear()


def _lru_get(key: str) -> tuple[bytes, str] | None:
    with _lock:
        hit = _lru.get(key)
        if hit is not None:
            _lru.move_to_end(key)
        return hit


def _lru_put(key: str, value: tuple[bytes, str]) -> None:
    with _lock:
        _lru[key] = value
        _lru.move_to_end(key)
        while len(_lru) > LRU_SIZE:
            _lru.popitem(last=False)


def _redis():
    global _redis_down_until
    if time.monotonic() < _redis_down_until:
        return None
    try:
        return get_redis(current_app.config.get("REDIS_URL"))
    except (redis.RedisError, OSError, RuntimeError):
        _redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        return None


def _redis_failed(exc: Exception) -> None:
    global _redis_down_until
    _redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
    current_app.logger.warning("http cache: Redis unavailable (%s); rendering", type(exc).__name__)


def _shared_get(etag: str) -> tuple[bytes, str] | None:
    conn = _redis()
    if conn is None:
        return None
    try:
        raw = conn.get(REDIS_PREFIX + etag)
    except (redis.RedisError, OSError) as exc:
        _redis_failed(exc)
        return None
    if not raw:
        return None
    mimetype, _, body = raw.partition(b"\n")
    return body, mimetype.decode("ascii")


def _shared_put(etag: str, body: bytes, mimetype: str) -> None:
    conn = _redis()
    if conn is None:
        return
    try:
        conn.set(REDIS_PREFIX + etag, mimetype.encode("ascii") + b"\n" + body, ex=REDIS_TTL_SECONDS)
    except (redis.RedisError, OSError) as exc:
        _redis_failed(exc)


def _not_modified(etag: str) -> bool:
    return etag in request.if_none_match or request.if_none_match.star_tag


def accepts_gzip() -> bool:
    """The client accepts gzip (``Accept-Encoding``, q > 0; ``*`` counts)."""
    header = request.headers.get("Accept-Encoding")
    if not header or ("gzip" not in header and "*" not in header):
        return False
    return request.accept_encodings["gzip"] > 0


def _lookup(key: str, etag: str, render: Callable[[], tuple[bytes, str]]) -> tuple[bytes, str, str]:
    """(body, mimetype, where it came from) of the representation ``key``: this
    process's LRU, then Redis (by ETag), then ``render()``."""
    hit = _lru_get(key)
    if hit is not None:
        return hit[0], hit[1], "memory"
    hit = _shared_get(etag)
    source = "redis"
    if hit is None:
        hit = render()
        source = "render"
        _shared_put(etag, *hit)
    _lru_put(key, hit)
    return hit[0], hit[1], source


def _gzipped(key: str, render: Callable[[], tuple[bytes, str]]) -> tuple[bytes, str]:
    """The gzip body of the plain representation ``key`` (looked up, or rendered)."""
    body, mimetype, _ = _lookup(key, etag_for(key), render)
    # mtime=0: the same bytes (and so the same ETag's body) in every process.
    return gzip.compress(body, GZIP_LEVEL, mtime=0), mimetype


def cached(
    key: str,
    render: Callable[[], tuple[bytes, str]],
    cache_control: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    vary: str | None = None,
) -> Response:
    """The representation named by ``key``: 304 when the client has it, else from the
    LRU, Redis or ``render()`` (which returns body bytes and mimetype). A client that
    accepts gzip gets the gzip variant (its own ETag)."""
    extra = dict(headers or {})
    extra["Cache-Control"] = cache_control
    extra["Vary"] = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"
    gz = accepts_gzip()
    gz_key = key + ":gzip"
    etag = etag_for(gz_key if gz else key)
    if _not_modified(etag):
        response = Response(status=304, headers=extra)
        response.set_etag(etag)
        return response
    if gz:
        body, mimetype, source = _lookup(gz_key, etag, lambda: _gzipped(key, render))
    else:
        body, mimetype, source = _lookup(key, etag, render)
    response = Response(body, status=status, mimetype=mimetype, headers=extra)
    if gz:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["X-Cache"] = source
    response.set_etag(etag)
    return response
