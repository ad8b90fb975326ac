"""Load the three campaigns of the source article (service/demo/)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select

from .cli import create_campaign_from_doc, substitute_times
from .clock import frozen
from .domain.campaigns import import_entries_csv
from .extensions import db
from .models import Campaign

DEMO_DIR = Path(__file__).resolve().parent / "demo"
CAMPAIGN_FILES = ("cases", "groups", "grids")


def load_demo(at: datetime | None = None) -> Iterator[str]:
    """Create each demo campaign that does not exist yet, with its entries."""
    at = at or datetime.now(ZoneInfo("Asia/Shanghai")).replace(microsecond=0)
    for name in CAMPAIGN_FILES:
        doc = substitute_times(json.loads((DEMO_DIR / f"{name}.json").read_text("utf-8")), at)
        if db.session.scalar(select(exists().where(Campaign.slug == doc["slug"]))):
            yield f"{doc['slug']}: exists, skipped"
            continue
        opens = datetime.fromisoformat(doc["voting"]["opens_at"])
        # The demo replays history: the campaign is set up before its voting opened.
        with frozen(opens - timedelta(days=1)):
            campaign = create_campaign_from_doc(doc, actor="demo")
            result = import_entries_csv(
                campaign, (DEMO_DIR / f"{name}.csv").read_text("utf-8"), "demo"
            )
        db.session.commit()
        yield f"{campaign.slug}: created with {result['created']} entries"
