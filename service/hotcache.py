"""Per-process caches for the ballot hot path: kiosk token -> principal, an enrolled
kiosk browser's cookie -> kiosk, and a locked campaign's row, typed rules and entry codes.

Invalidation is a version counter in Redis (``votes:hotcache:version``). The domain
functions that change what is cached (``revoke_kiosk``, ``update_campaign``) call
``changed()``; when their transaction commits, the process clears its own cache (so there
the change takes effect at once) and increments the counter. Every process reads the
counter at most once per ``HOT_CACHE_SECONDS`` (default 1 s) and drops its cache when it
moved, so a change made anywhere (another gunicorn worker, the console, the CLI) takes
effect everywhere within about that time. An entry is trusted without the counter for
``HOT_CACHE_SECONDS``, and with an unchanged counter for at most ``HOT_CACHE_MAX_SECONDS``
(default 10 s): a process does not reload the token and campaign every second. When Redis
does not answer, entries live ``HOT_CACHE_SECONDS`` only (as without the counter).
``HOT_CACHE_SECONDS = 0`` turns the caches off. Tests set ``HOT_CACHE_CLOCK`` (a
monotonic-seconds function) to step time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from .redis_conn import get_redis

log = logging.getLogger(__name__)

_KEY = "votes_hot_cache"
VERSION_KEY = "votes:hotcache:version"
_CHANGED = "votes_hot_cache_changed"  # Session.info flag: commit bumps the version


class TtlCache:
    """key -> (stored at, version then, value); a dict per app (tests create many apps in
    one process). Dictionary reads and writes are atomic under the GIL: no lock needed,
    the worst race loads a value twice."""

    def __init__(self) -> None:
        self._data: dict[Any, tuple[float, Any, Any]] = {}
        self._version: Any = None  # the counter as last read; None: unknown (Redis down)
        self._checked_at = float("-inf")

    def lookup(self, key: Any) -> Any:
        """The value stored under ``key``, if still trustworthy, or None."""
        config = current_app.config
        ttl = config["HOT_CACHE_SECONDS"]
        if ttl <= 0:
            return None
        at = _clock()
        if at - self._checked_at >= ttl or at < self._checked_at:
            self._refresh(at)
        hit = self._data.get(key)
        if hit is None:
            return None
        age = at - hit[0]
        if 0 <= age < ttl:
            return hit[2]
        if (
            age < config["HOT_CACHE_MAX_SECONDS"]
            and self._version is not None
            and hit[1] == self._version
        ):
            return hit[2]
        return None

    def _refresh(self, at: float) -> None:
        """Read the counter (at most once per HOT_CACHE_SECONDS); a move clears the cache."""
        self._checked_at = at
        try:
            raw = get_redis(current_app.config["REDIS_URL"]).get(VERSION_KEY)
            version = int(raw or 0)
        except (redis.RedisError, ValueError) as exc:
            log.warning("hot cache: version unknown (%s)", type(exc).__name__)
            self._version = None
            return
        if version != self._version:
            self._data.clear()
            self._version = version

    def put(self, key: Any, value: Any) -> None:
        """Store a value loaded after the last counter read (lookup reads it first)."""
        if current_app.config["HOT_CACHE_SECONDS"] <= 0:
            return
        if len(self._data) > 10_000:  # many campaigns or tokens: start over
            self._data.clear()
        self._data[key] = (_clock(), self._version, value)

    def clear(self) -> None:
        self._data.clear()
        self._checked_at = float("-inf")  # and read the counter again on next use


def _clock() -> float:
    return (current_app.config.get("HOT_CACHE_CLOCK") or time.monotonic)()


def cache(app: Flask | None = None) -> TtlCache:
    app = app or current_app
    found = app.extensions.get(_KEY)
    if found is None:
        found = app.extensions[_KEY] = TtlCache()
    return found


def invalidate() -> None:
    """This process's cache, now (the others: through ``changed`` and the counter)."""
    cache().clear()


def changed(session: Any) -> None:  # a Session, or Flask-SQLAlchemy's scoped one
    """Called by a domain function that revokes a kiosk or changes a campaign: when
    ``session``'s transaction commits, this process drops its cache and every other
    process sees the counter move within HOT_CACHE_SECONDS. A rollback forgets it."""
    session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if not session.info.pop(_CHANGED, False):
        return
    try:
        invalidate()
        get_redis(current_app.config["REDIS_URL"]).incr(VERSION_KEY)
    except redis.RedisError as exc:  # the others fall back to HOT_CACHE_SECONDS
        log.error("hot cache: version not incremented (%s)", type(exc).__name__)
    except RuntimeError:  # no app context (a script's own session): nothing cached here
        pass


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)
