"""Per-process caches for the ballot hot path: kiosk token -> principal, and a locked
campaign's row, typed rules and entry codes.

Every entry lives at most ``HOT_CACHE_SECONDS`` (default 1 s): a token revoked or a rule
changed by another process (another gunicorn worker, the CLI) takes effect there within
that time. The process that makes the change clears its own cache after committing
(``invalidate``), so there it takes effect at once. ``HOT_CACHE_SECONDS = 0`` turns the
caches off. Tests set ``HOT_CACHE_CLOCK`` (a monotonic-seconds function) to step time.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, current_app

_KEY = "votes_hot_cache"


class TtlCache:
    """key -> (stored at, value); a dict per app (tests create many apps in one process).
    Dictionary reads and writes are atomic under the GIL: no lock needed, the worst race
    loads a value twice."""

    def __init__(self) -> None:
        self._data: dict[Any, tuple[float, Any]] = {}

    def lookup(self, key: Any) -> Any:
        """The value stored under ``key`` less than HOT_CACHE_SECONDS ago, or None."""
        ttl = current_app.config["HOT_CACHE_SECONDS"]
        hit = self._data.get(key)
        if hit is None or ttl <= 0:
            return None
        return hit[1] if 0 <= _clock() - hit[0] < ttl else None

    def put(self, key: Any, value: Any) -> None:
        if current_app.config["HOT_CACHE_SECONDS"] <= 0:
            return
        if len(self._data) > 10_000:  # many campaigns or tokens: start over
            self._data.clear()
        self._data[key] = (_clock(), value)

    def clear(self) -> None:
        self._data.clear()


def _clock() -> float:
    return (current_app.config.get("HOT_CACHE_CLOCK") or time.monotonic)()


def cache(app: Flask | None = None) -> TtlCache:
    app = app or current_app
    found = app.extensions.get(_KEY)
    if found is None:
        found = app.extensions[_KEY] = TtlCache()
    return found


def invalidate() -> None:
    """After committing a revocation or a campaign change: this process sees it now."""
    cache().clear()
