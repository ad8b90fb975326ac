"""Who may act, and when: the window states and the channel rule that the domain
enforces and the views show. Views ask here instead of re-reading the rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.rules import Window

from ..clock import now
from ..errors import ApiError
from ..models import Campaign


@dataclass(frozen=True)
class WindowState:
    """A window as shown: its ends and ``not_open`` | ``open`` | ``closed`` now."""

    opens_at: datetime | None
    closes_at: datetime | None
    state: str


def _state(window: Window, at: datetime | None) -> WindowState:
    state = window.state(at or now())
    shown = {"unscheduled": "not_open", "upcoming": "not_open"}.get(state, state)
    return WindowState(window.opens_at, window.closes_at, shown)


def voting_window(campaign: Campaign, at: datetime | None = None) -> WindowState:
    """The voting window now (without the kiosk grace period: that is for ballots cast
    inside the window and uploaded late, see ``ballots._effective_time``)."""
    return _state(campaign.rules.voting, at)


def review_window(campaign: Campaign, at: datetime | None = None) -> WindowState:
    return _state(campaign.rules.review, at)


def check_channel(campaign: Campaign, channel: str) -> None:
    """The channel rule, for every way a ballot (or an SMS code for one) arrives: a
    channel not in ``voting.channels`` is refused with ``channel_not_allowed``. A web
    ballot on a kiosk-only campaign lacks a kiosk credential, so it is 401 with
    ``WWW-Authenticate: Bearer`` (as the README documents); a kiosk on a campaign
    without kiosks is 403."""
    if channel in campaign.rules.voting.channels:
        return
    if channel == "web":
        raise ApiError(
            401,
            "channel_not_allowed",
            "本次评选只接受投票终端投票，需要投票终端令牌 / "
            "This campaign takes kiosk ballots only: a kiosk token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    raise ApiError(
        403,
        "channel_not_allowed",
        "本次评选不接受终端投票 / The kiosk channel is not open for this campaign",
    )
