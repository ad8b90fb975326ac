"""The one place the service asks what time it is, so tests can set it."""

from collections.abc import Callable
from datetime import UTC, datetime

from flask import current_app, has_app_context


def system_now() -> datetime:
    return datetime.now(UTC)


def now() -> datetime:
    clock: Callable[[], datetime] | None = (
        current_app.config.get("CLOCK") if has_app_context() else None
    )
    return clock() if clock else system_now()


class frozen:  # noqa: N801  (used like a function: `with frozen(at):`)
    """Run a block as if it were `at` (demo history, tests)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __enter__(self):
        self._previous = current_app.config.get("CLOCK")
        current_app.config["CLOCK"] = lambda: self.at
        return self

    def __exit__(self, *exc):
        current_app.config["CLOCK"] = self._previous
        return False
