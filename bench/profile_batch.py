"""Profile one 500-ballot batch upload in process (Flask test client, no gunicorn).

    DATABASE_URL=postgresql://…/votes_profile REDIS_URL=redis://…/N \\
        .venv/bin/python -m bench.profile_batch [--batches 5] [--top 25]

The database is migrated to head (its ballots are not removed). A campaign ``profile-<n>``
and a kiosk are created through the API, one warm-up batch is posted, then ``--batches``
batches of 500 new ballots each are posted under cProfile: the script prints the
milliseconds per batch and the functions with the most cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.campaigns import campaign_doc, codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cumulative", help="pstats sort key (tottime, …)")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("set DATABASE_URL (a PostgreSQL database to profile against)")
    admin = secrets.token_hex(16)
    os.environ["ADMIN_TOKEN"] = admin

    from flask_migrate import upgrade

    from service import create_app

    app = create_app()
    app.config["RATELIMIT_ENABLED"] = False
    app.config["RATELIMIT_BALLOTS_KIOSK"] = "1000000/second"
    with app.app_context():
        upgrade()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {admin}"}
    slug = f"profile-{secrets.token_hex(4)}"
    now = datetime.now(UTC).replace(microsecond=0)
    doc = campaign_doc(slug, now + timedelta(days=1), now + timedelta(days=2))
    assert client.post("/api/v1/campaigns", json=doc, headers=headers).status_code == 201
    entries = [{"code": c, "title": f"案例 {c}"} for c in codes()]
    r = client.post(f"/api/v1/campaigns/{slug}/entries", json=entries, headers=headers)
    assert r.status_code == 201, r.json
    window = {"opens_at": (now - timedelta(hours=1)).isoformat()}
    r = client.patch(f"/api/v1/campaigns/{slug}", json={"voting": window}, headers=headers)
    assert r.status_code == 200, r.json
    r = client.post("/api/v1/kiosks", json={"name": "profile"}, headers=headers)
    kiosk = {"Authorization": f"Bearer {r.json['token']}"}
    url = f"/api/v1/campaigns/{slug}/ballots/batch"
    serial = iter(range(10**9))
    prefix = random.randint(3, 9)

    def batch() -> dict:
        return {
            "ballots": [
                {
                    "ballot_id": str(uuid.uuid4()),
                    "voter_id": f"1{prefix}{random.randrange(10**8):08d}{next(serial) % 10}",
                    "choices": random.sample(codes(), 3),
                }
                for _ in range(500)
            ]
        }

    def post(body: dict) -> None:
        r = client.post(url, json=body, headers=kiosk)
        assert r.status_code == 200, r.json
        bad = [x for x in r.json["results"] if x["status"] != "accepted"]
        assert len(bad) < 5, bad[:3]  # a rare repeated random number: already_voted

    post(batch())  # warm-up: the first ballot locks the rules, caches fill
    bodies = [batch() for _ in range(args.batches)]
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for body in bodies:
        post(body)
    profile.disable()
    seconds = time.perf_counter() - started
    print(f"{args.batches} batches of 500: {1000 * seconds / args.batches:.1f} ms per batch")
    pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
