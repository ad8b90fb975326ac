"""The demo is true to its source article (/work/shared/seed/pengpu-2022-11-26.txt).

Each fact the article states is checked against what the demo publishes, through the API.
"""

import re
import uuid
from datetime import datetime

from service.domain.voters import resident_id_check_char

# 龙馨嘉园3号楼 … 沪太路935弄4号楼 “等41个楼组分别荣获最具人气、最具活力的‘楼组之最’”.
NAMED_BUILDINGS = {
    "龙馨嘉园3号楼",
    "场中路3300弄5号楼",
    "阳城路283弄16号楼",
    "望景苑2号楼",
    "龙潭1269弄13号楼",
    "塘南17号楼",
    "阳城贵都53号楼",
    "洪泉73号楼",
    "沪太路935弄4号楼",
}
CLOSED_2022 = (
    "pengpu-2022-cases",
    "pengpu-2022-groups",
    "pengpu-2022-featured",
    "pengpu-2023-grids",
)
OPEN = "pengpu-2024-grids2"


def test_the_demo_is_true_to_the_article(app, client):
    """One load (a few seconds), then each fact of the article against the published results."""
    result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    check_the_named_case_is_an_excellent_case(client)
    check_the_nine_named_buildings_win_楼组之最(client)
    check_nine_楼组之最_are_honoured_最具特色(client)
    check_both_named_彭邻格_projects_are_in_the_first_batch_of_ten(client)
    check_the_2022_campaigns_are_closed_with_results_published_in_2022(client)
    check_the_open_campaign_takes_a_ballot_and_a_score_now(client, result.output)


def results(client, slug):
    r = client.get(f"/api/v1/campaigns/{slug}/results")
    assert r.status_code == 200, r.json
    return r.json


def check_the_named_case_is_an_excellent_case(client):
    """The article's example after the 12 优秀案例: 江场西路1366弄居民区's 24-hour hotline."""
    doc = results(client, "pengpu-2022-cases")
    winners = {r["area"]: r for r in doc["rows"] if r["selected"]}
    assert len(winners) == 12
    assert "24小时热线" in winners["江场西路1366弄居民区"]["title"]


def check_the_nine_named_buildings_win_楼组之最(client):
    doc = results(client, "pengpu-2022-groups")
    winners = {r["title"]: r["award"] for r in doc["rows"] if r["selected"]}
    assert len(winners) == 41
    assert set(winners) >= NAMED_BUILDINGS, NAMED_BUILDINGS - set(winners)
    # 41 winners, each 最具人气 or 最具活力 (“分别荣获最具人气、最具活力的‘楼组之最’”).
    assert sorted(winners.values()) == ["最具人气"] * 21 + ["最具活力"] * 20


def check_nine_楼组之最_are_honoured_最具特色(client):
    """“对9家最具特色的‘楼组之最’进行了表彰”: nine of the 41 winners, a separate honour."""
    groups = results(client, "pengpu-2022-groups")
    group_winners = {r["code"]: r for r in groups["rows"] if r["selected"]}
    featured = results(client, "pengpu-2022-featured")
    # The candidates are exactly the 41 楼组之最, each keeping its award as its category.
    assert {r["code"]: r["category"] for r in featured["rows"]} == {
        c: r["award"] for c, r in group_winners.items()
    }
    honoured = [r for r in featured["rows"] if r["selected"]]
    assert [r["award"] for r in honoured] == ["最具特色"] * 9
    assert {r["title"] for r in honoured} == NAMED_BUILDINGS


def check_both_named_彭邻格_projects_are_in_the_first_batch_of_ten(client):
    doc = results(client, "pengpu-2023-grids")
    selected = [r for r in doc["rows"] if r["selected"]]
    assert len(selected) == 10
    titles = {r["title"] for r in selected}
    assert "《幸福来敲门》邻里互助项目" in titles
    # The article's title, Chinese quotation marks included.
    assert "《“微·笑”微网格空间再利用项目》" in titles
    entries = client.get("/api/v1/campaigns/pengpu-2023-grids/entries").json
    cost = {e["code"]: e["cost"] for e in entries}
    assert sum(cost[r["code"]] for r in selected) <= 300000


def check_the_2022_campaigns_are_closed_with_results_published_in_2022(client):
    for slug in CLOSED_2022:
        campaign = client.get(f"/api/v1/campaigns/{slug}").json
        assert campaign["status"] == "closed", slug
        for window in ("voting", "review"):
            for key in ("opens_at", "closes_at"):
                assert campaign[window][key].startswith("2022-"), (slug, window, key)
        doc = results(client, slug)
        published = datetime.fromisoformat(doc["published_at"])
        assert published.year == 2022 and published.month == 11, (slug, doc["published_at"])
        assert doc["version"] == 1
    # The ceremony of 2022-11-24 announced the cases, the 最具特色 and the first batch.
    for slug in ("pengpu-2022-cases", "pengpu-2022-featured", "pengpu-2023-grids"):
        assert results(client, slug)["published_at"].startswith("2022-11-24"), slug


def check_the_open_campaign_takes_a_ballot_and_a_score_now(client, output):
    """A newcomer can vote and an expert can score at once; nothing is published yet,
    the interim ranking is shown as provisional."""
    campaign = client.get(f"/api/v1/campaigns/{OPEN}").json
    assert campaign["status"] == "voting" and campaign["entries_count"] == 15
    interim = client.get(f"/api/v1/campaigns/{OPEN}/results").json
    assert interim["provisional"] is True
    first17 = "31010819800101123"
    r = client.post(
        f"/api/v1/campaigns/{OPEN}/ballots",
        json={
            "ballot_id": str(uuid.uuid4()),
            "voter_id": first17 + resident_id_check_char(first17),
            "choices": ["H01", "H11"],
        },
    )
    assert r.status_code == 201, r.json
    assert r.json["channel"] == "web"
    token = re.search(rf"expert 赵文军: \S*/review/{OPEN}/login\?token=(\S+)", output).group(1)
    r = client.put(
        f"/api/v1/campaigns/{OPEN}/entries/H01/score",
        json={"scores": {"urgency": 30, "feasibility": 20, "benefit": 25}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code in (200, 201), r.json
