"""The README's receipt-verification snippet works, run as written against the service."""

import threading
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

from werkzeug.serving import make_server

from service.domain import publications, rankings
from service.domain.campaigns import get_campaign
from service.extensions import db

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_receipt_check_verifies_a_counted_ballot(app, client, make_campaign, clock, capsys):
    """A voter who runs the README's few lines sees 'counted' for their receipt."""
    make_campaign(ranking={"public_weight": 1, "expert_weight": 0}, review={"criteria": []})
    clock.set(datetime.fromisoformat("2026-11-22T10:00:00+08:00"))
    receipts = [
        client.post(
            "/api/v1/campaigns/c1/ballots",
            json={
                "ballot_id": str(uuid.uuid4()),
                "voter_id": f"1370000000{i}",
                "choices": ["A01"],
            },
        ).json["receipt"]
        for i in range(7)
    ]
    with app.app_context():
        run = rankings.create_run(get_campaign("c1"), "test")
        db.session.commit()
        rankings.compute(run)
        db.session.commit()
        publications.publish_run(run.campaign_id, run.id)
        db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    snippet = README.read_text(encoding="utf-8").split("```python\n")[1].split("```")[0]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    code = (
        snippet.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{server.server_port}")
        .replace("B7QK-3M2D-9XZA-PL4T", receipts[3])
        .replace("urllib.request.urlopen(", "opener.open(")
    )
    try:
        exec(code, {"opener": opener})  # noqa: S102  (the README's own code)
        assert capsys.readouterr().out.strip() == "counted"
    finally:
        server.shutdown()
