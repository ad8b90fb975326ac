"""Rate-limit leases: the kiosk ballot limit without a Redis round trip per ballot.

Flask-Limiter counts every hit in Redis (one ``EVALSHA`` per request). Here a process
takes a *lease* of up to ``lease`` hits of the current fixed window from Redis in one
atomic step (never more than the limit has left), then counts them down locally. The
limit holds across processes: Redis never hands out more hits per window than the limit,
so no more requests than that are accepted. The price is the other way round: hits a
process leased but did not use are lost for the window, so a client spread over P
processes may be refused up to (P - 1) x (lease - 1) hits early. The lease is at most
``RATELIMIT_LEASE_SIZE`` and at most 1/20 of the limit (a small limit: one hit, i.e.
exact, as Flask-Limiter).

If Redis fails, the process counts alone against the full limit (as Flask-Limiter's
in-memory fallback does): a Redis outage must not stop voting.

State is per app (``app.extensions``), like a process's; tests build several apps to play
several processes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import redis
from flask import Flask, current_app
from limits import parse_many

from .redis_conn import get_redis

log = logging.getLogger(__name__)

_KEY = "votes_rate_leases"

# KEYS[1] the window's counter; ARGV: limit, wanted, expiry seconds. Returns the hits
# granted (0: the window is spent), never taking the counter past the limit.
_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - used)
if grant <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return grant
"""


@dataclass
class _Window:
    number: int  # which fixed window (time // expiry) the hits belong to
    left: int  # leased hits not yet used
    spent: bool = False  # Redis said the window is spent: refuse until it ends


@dataclass
class Leases:
    lock: threading.Lock = field(default_factory=threading.Lock)
    windows: dict[tuple[str, int, int], _Window] = field(default_factory=dict)
    fallback: dict[tuple[str, int, int, int], int] = field(default_factory=dict)
    script: object = None


def leases(app: Flask | None = None) -> Leases:
    app = app or current_app
    found = app.extensions.get(_KEY)
    if found is None:
        found = app.extensions[_KEY] = Leases()
    return found


_PARSED: dict[str, list[tuple[int, int]]] = {}


def _limits(text: str) -> list[tuple[int, int]]:
    """'600 per minute;10000 per day' -> [(600, 60), (10000, 86400)], parsed once."""
    found = _PARSED.get(text)
    if found is None:
        found = _PARSED[text] = [(item.amount, item.get_expiry()) for item in parse_many(text)]
    return found


def lease_size(amount: int) -> int:
    return max(1, min(current_app.config["RATELIMIT_LEASE_SIZE"], amount // 20))


def hit(key: str, limit_text: str) -> int | None:
    """Count one hit of ``key`` against every limit in ``limit_text``.

    Returns None when allowed, else the seconds until the refusing window ends (for
    Retry-After). A refused hit uses nothing of the other limits' windows.
    """
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return None
    state = leases()
    now = time.time()
    with state.lock:
        taken: list[_Window] = []
        for amount, expiry in _limits(limit_text):
            number = int(now // expiry)
            slot = (key, amount, expiry)
            window = state.windows.get(slot)
            if window is None or window.number != number:
                window = state.windows[slot] = _Window(number, 0)
                if len(state.windows) > 10_000:  # many keys: forget the old windows
                    state.windows = {slot: window}
            if window.left <= 0 and not window.spent:
                window.left = _take(state, key, amount, expiry, number)
                window.spent = window.left <= 0
            if window.left <= 0:
                for earlier in taken:  # give back what this refused hit took
                    earlier.left += 1
                return max(1, math.ceil((number + 1) * expiry - now))
            window.left -= 1
            taken.append(window)
    return None


def _take(state: Leases, key: str, amount: int, expiry: int, number: int) -> int:
    want = lease_size(amount)
    counter = f"votes:lease:{key}:{amount}/{expiry}:{number}"
    try:
        client = get_redis(current_app.config["REDIS_URL"])
        if state.script is None:
            state.script = client.register_script(_TAKE)
        granted = state.script(  # type: ignore[operator]
            keys=[counter], args=[amount, want, expiry + 1], client=client
        )
        return int(granted)
    except redis.RedisError as exc:
        log.warning("rate limit: Redis unavailable (%s); counting alone", type(exc).__name__)
        slot = (key, amount, expiry, number)
        if len(state.fallback) > 10_000:
            state.fallback.clear()
        used = state.fallback.get(slot, 0)
        grant = max(0, min(want, amount - used))
        state.fallback[slot] = used + grant
        return grant
