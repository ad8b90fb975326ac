"""Campaigns, entries and kiosks, set up through the service's API as an office would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.env import Stack

N_ENTRIES = 40
MAX_CHOICES = 5
CRITERIA = [
    {"key": "impact", "label": "实效性", "max_points": 40, "weight": 1},
    {"key": "novelty", "label": "创新性", "max_points": 20, "weight": 1},
]


def codes(n: int = N_ENTRIES) -> list[str]:
    return [f"A{i:02d}" for i in range(1, n + 1)]


def campaign_doc(slug: str, opens_at: datetime, closes_at: datetime) -> dict:
    return {
        "slug": slug,
        "title": f"基准测试 {slug}",
        "timezone": "Asia/Shanghai",
        "voting": {
            "opens_at": opens_at.isoformat(),
            "closes_at": closes_at.isoformat(),
            "min_choices": 1,
            "max_choices": MAX_CHOICES,
            "limit": "once",
            "voter_id": "cn_mobile",
            "channels": ["kiosk", "web"],
        },
        "review": {
            "opens_at": (opens_at - timedelta(days=1)).isoformat(),
            "closes_at": (closes_at + timedelta(days=7)).isoformat(),
            "min_reviews": 3,
            "criteria": CRITERIA,
        },
        "ranking": {"public_weight": 0.3, "expert_weight": 0.7},
        "selection": {"rule": "top", "winners": 10},
    }


def create_campaign(
    stack: Stack, slug: str, *, window: str = "open", n_entries: int = N_ENTRIES
) -> dict:
    """A campaign with N_ENTRIES entries whose voting window is open now ("open") or
    was open for the last ten days and closed an hour ago ("closed", for loaded data).

    Entries lock once voting opens, so the campaign is created with its window in the
    future, the entries are added, then the window is moved (PATCH) to where it belongs.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    doc = campaign_doc(slug, now + timedelta(days=1), now + timedelta(days=2))
    stack.call("POST", "/api/v1/campaigns", doc)
    entries = [
        {
            "code": code,
            "title": f"案例 {code}",
            "category": f"类别{i % 4}",
            "area": f"居民区{i % 8}",
            "cost": 1000 * (i % 9 + 1),
        }
        for i, code in enumerate(codes(n_entries))
    ]
    stack.call("POST", f"/api/v1/campaigns/{slug}/entries", entries)
    if window == "open":
        opens, closes = now - timedelta(hours=1), now + timedelta(days=1)
    else:
        opens, closes = now - timedelta(days=10), now - timedelta(hours=1)
    patch = {"voting": {"opens_at": opens.isoformat(), "closes_at": closes.isoformat()}}
    return stack.call("PATCH", f"/api/v1/campaigns/{slug}", patch)


def register_kiosk(stack: Stack, name: str) -> str:
    return stack.call("POST", "/api/v1/kiosks", {"name": name, "location": "bench"})["token"]
