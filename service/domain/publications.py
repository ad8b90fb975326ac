"""Publications: versioned, immutable result documents, and receipt status after them.

A publication is a finished run's result (``result_digest`` included) plus ``version``,
``published_at`` and ``run_id``, with ``digest`` = SHA-256 of the canonical JSON of the
rest (DESIGN.md "Digest"). One publication per run (``uq_publications_run_id``): a
publish job retried after a crash finds the one it made instead of making another.
"""

from __future__ import annotations

import bisect
import csv
import io
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select

from engine import merkle

from .. import hotcache
from ..clock import now
from ..errors import ApiError
from ..extensions import db
from ..models import Ballot, Campaign, Exclusion, MerkleChunk, Publication, RankingRun
from .audit import audit
from .campaigns import campaign_status
from .rankings import digest, has_ballot_tree, latest_finished_run

CSV_COLUMNS = [
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

# Fields a reader derives for a publication stored before they existed; they are not part
# of its digest (README "Rankings and publications").
DERIVED_FIELDS = "derived_fields"


class PublishError(ApiError):
    """A publication that can never succeed (no finished run, wrong campaign, unfinished
    or pruned run): refused by the API with its code, and not retried by a job."""


def latest_publication(campaign_id: int) -> Publication | None:
    return db.session.scalar(
        select(Publication)
        .where(Publication.campaign_id == campaign_id)
        .order_by(Publication.version.desc())
        .limit(1)
    )


def latest_head(slug: str):
    """(campaign id, campaign updated_at, version, digest) of a campaign's latest
    publication, or None when it has none (or no such campaign, or a draft): one indexed
    query, asked by every request of a cached results representation, so that a campaign
    without a publication is never served from a cache.

    The answer is kept per process for ``HOT_CACHE_SECONDS`` (service/hotcache.py,
    default 1 s): a new publication, or a campaign hidden or edited by another process,
    shows within that time; ``publish_run`` clears this process's copy, so there it shows
    at once. Under a crowd each worker asks the database about once a second instead of
    once per request."""
    cache = hotcache.cache()
    key = ("results-head", slug)
    hit = cache.lookup(key)
    if hit is not None:
        return hit[0]
    # Core, not the ORM session: this runs on the hottest public page.
    with db.engine.connect() as conn:
        head = conn.execute(_LATEST_HEAD, {"slug": slug}).first()
    cache.put(key, (head,))  # in a tuple: "no publication" is kept too
    return head


_LATEST_HEAD = (
    select(Campaign.id, Campaign.updated_at, Publication.version, Publication.digest)
    .join(Publication, Publication.campaign_id == Campaign.id)
    .where(Campaign.slug == bindparam("slug"), Campaign.draft.is_(False))
    .order_by(Publication.version.desc())
    .limit(1)
)


def publication_for_run(run_id: str) -> Publication | None:
    return db.session.scalar(select(Publication).where(Publication.run_id == run_id))


def publishable_run(campaign_id: int, run_id: str | None) -> RankingRun:
    """The run a publication would publish: ``run_id``, or the campaign's latest finished
    run. The publish preconditions, for the API (which refuses before enqueueing) and the
    publish job alike: raises ``PublishError`` 409 ``no_finished_run``, 404 ``not_found``,
    409 ``run_not_finished`` or 409 ``run_expired`` (its ballot tree, which the receipt
    proofs need, was pruned). A run published already passes: publishing is idempotent."""
    if run_id is None:
        run = latest_finished_run(campaign_id)
        if run is None:
            raise PublishError(
                409, "no_finished_run", "没有已完成的计算 / No finished ranking run to publish"
            )
    else:
        run = db.session.get(RankingRun, run_id)
        if run is None or run.campaign_id != campaign_id:
            raise PublishError(404, "not_found", f"计算任务不存在 / No ranking run '{run_id}'")
    if publication_for_run(run.id) is not None:
        return run
    if run.status != "finished":
        raise PublishError(
            409,
            "run_not_finished",
            f"计算尚未完成 / The run is {run.status}",
            {"status": run.status},
        )
    if not has_ballot_tree(run):
        raise PublishError(
            409,
            "run_expired",
            "该计算的选票树已清理，请重新计算 / This run's ballot tree was pruned; run again",
        )
    return run


def publish_run(
    campaign_id: int, run_id: str | None, actor: str = "job", if_changed: bool = False
) -> Publication | None:
    """Publish ``run_id`` (or the latest finished run) as the next version; caller commits.

    Idempotent per run: an existing publication of the run is returned as is. With
    ``if_changed`` (nightly), a run that did not finish or whose input digest equals the
    latest publication's publishes nothing and returns None. Raises ``PublishError``
    (``publishable_run``) when it never can.
    """
    try:
        run = publishable_run(campaign_id, run_id)
    except PublishError as exc:
        if if_changed and exc.code == "run_not_finished":
            return None
        raise
    existing = publication_for_run(run.id)
    if existing is not None:
        return existing
    if if_changed:
        latest = latest_publication(campaign_id)
        if latest is not None and latest.document.get("input_digest") == run.input_digest:
            return None

    version = (
        db.session.scalar(
            select(func.max(Publication.version)).where(Publication.campaign_id == campaign_id)
        )
        or 0
    ) + 1
    published_at = now()
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign is not None and run.result is not None  # publishable_run: finished
    document = {
        **run.result,
        "version": version,
        "published_at": published_at.isoformat(),
        "run_id": run.id,
        **interim_fields(campaign, published_at),
    }
    document["digest"] = digest(document)
    publication = Publication(
        campaign_id=campaign_id,
        version=version,
        run_id=run.id,
        document=document,
        digest=document["digest"],
        published_at=published_at,
    )
    db.session.add(publication)
    db.session.flush()  # the unique constraints settle concurrent publishers here
    # This process's cached latest versions (latest_head); the others' expire within
    # HOT_CACHE_SECONDS. Cleared before the caller commits: a request that reads the old
    # head meanwhile keeps it at most HOT_CACHE_SECONDS, which ends before that bound
    # after the commit.
    hotcache.invalidate()
    audit(
        "publication.create",
        actor,
        campaign_id,
        version=version,
        run_id=run.id,
        digest=document["digest"],
    )
    return publication


# --- interim or final -------------------------------------------------------------------


def results_final_at(campaign: Campaign) -> datetime | None:
    """When voting and review have both closed: the later ``closes_at`` of the windows
    the campaign has (a window without ``opens_at`` is not part of it). None when a window
    it has never closes (every publication is interim) or it has none at all."""
    closes = []
    for window in (campaign.rules.voting, campaign.rules.review):
        if window.opens_at is None:
            continue
        if window.closes_at is None:
            return None
        closes.append(window.closes_at)
    return max(closes) if closes else None


def interim_fields(campaign: Campaign, published_at: datetime) -> dict[str, Any]:
    """``interim`` (published before voting and review closed) and the campaign's phase
    at ``published_at`` (``campaign_status``), as the document records them."""
    has_window = any(w.opens_at is not None for w in (campaign.rules.voting, campaign.rules.review))
    final_at = results_final_at(campaign)
    interim = has_window and (final_at is None or published_at < final_at)
    return {
        "interim": interim,
        "phase_at_publication": campaign_status(campaign, published_at),
    }


def publication_document(campaign: Campaign, publication: Publication) -> dict[str, Any]:
    """The document as published; one stored before ``interim`` existed gets it (and
    ``phase_at_publication``) derived from the campaign's windows, named in
    ``derived_fields`` (not part of its digest) and never written back."""
    document = publication.document
    if "interim" in document:
        return document
    derived = interim_fields(campaign, datetime.fromisoformat(document["published_at"]))
    return {**document, **derived, DERIVED_FIELDS: sorted(derived)}


# --- reading ----------------------------------------------------------------------------


def get_publication(campaign: Campaign, version: int) -> Publication:
    publication = db.session.scalar(
        select(Publication).where(
            Publication.campaign_id == campaign.id, Publication.version == version
        )
    )
    if publication is None:
        raise ApiError(404, "not_found", f"没有第 {version} 版结果 / No publication {version}")
    return publication


def _not_published(campaign: Campaign) -> ApiError:
    return ApiError(
        404,
        "not_published",
        "结果尚未公示 / Results have not been published yet",
        {"campaign": campaign.slug},
    )


def results_document(campaign: Campaign) -> dict[str, Any]:
    """The latest publication; before any, the latest finished run marked provisional
    when the campaign shows live results; otherwise 404 ``not_published``."""
    publication = latest_publication(campaign.id)
    if publication is not None:
        return publication_document(campaign, publication)
    if campaign.rules.results.live:
        run = latest_finished_run(campaign.id)
        if run is not None:
            assert run.result is not None and run.finished_at is not None  # finished
            return {
                **run.result,
                "run_id": run.id,
                "computed_at": run.finished_at.isoformat(),
                "provisional": True,
            }
    raise _not_published(campaign)


def results_csv(campaign: Campaign) -> tuple[str, int]:
    """The latest publication as CSV text (with a BOM so spreadsheet programs read UTF-8),
    and its version."""
    publication = latest_publication(campaign.id)
    if publication is None:
        raise _not_published(campaign)
    return publication_csv(campaign, publication), publication.version


def publication_csv(campaign: Campaign, publication: Publication) -> str:
    """One publication as CSV: a row per entry, ``interim`` on every row."""
    document = publication_document(campaign, publication)
    interim = "true" if document["interim"] else "false"
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in document["rows"]:
        writer.writerow(
            [
                row["rank"],
                _text_cell(row["code"]),
                _text_cell(row["title"]),
                _text_cell(row.get("category") or ""),
                _text_cell(row.get("area") or ""),
                row["votes"],
                row["vote_score"],
                row["reviews"],
                row["expert_score"],
                row["combined"],
                "true" if row["selected"] else "false",
                _text_cell(row.get("award") or ""),
                _text_cell(";".join(row.get("flags") or [])),
                interim,
            ]
        )
    return out.getvalue()


# A spreadsheet program runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(text: str) -> str:
    """Neutralise a text cell for spreadsheet programs (OWASP "CSV Injection"): a leading
    apostrophe makes ``=HYPERLINK(…)`` plain text. Only text cells: numbers (a negative
    vote score included) are written as numbers."""
    return "'" + text if text.startswith(_FORMULA_START) else text


# --- receipts ---------------------------------------------------------------------------


def inclusion_proof(run_id: str, receipt: str) -> dict[str, Any] | None:
    """Leaf hash and RFC 6962 audit path of ``receipt`` in the run's ballot tree, or None.

    Reads the chunk directory (first receipt, size and root per chunk) and one chunk's
    receipts; hashes at most ``merkle.CHUNK`` leaves.
    """
    chunks = db.session.execute(
        select(MerkleChunk.chunk_index, MerkleChunk.first_receipt, MerkleChunk.size)
        .where(MerkleChunk.run_id == run_id)
        .order_by(MerkleChunk.chunk_index)
    ).all()
    if not chunks:
        return None
    # Leaves are ordered by UTF-8 bytes, which is Python's str order: bisect works.
    c = bisect.bisect_right([row.first_receipt for row in chunks], receipt) - 1
    if c < 0:
        return None
    text = db.session.scalar(
        select(MerkleChunk.receipts).where(
            MerkleChunk.run_id == run_id, MerkleChunk.chunk_index == c
        )
    )
    assert text is not None  # the chunk of a stored tree
    members = text.split("\n")
    offset = bisect.bisect_left(members, receipt)
    if offset >= len(members) or members[offset] != receipt:
        return None
    roots = [
        bytes.fromhex(r)
        for r in db.session.scalars(
            select(MerkleChunk.root)
            .where(MerkleChunk.run_id == run_id)
            .order_by(MerkleChunk.chunk_index)
        )
    ]
    leaves = merkle.leaf_hashes([m.encode("utf-8") for m in members])
    path = merkle.chunked_audit_path(leaves, roots, c, offset)
    return {
        "leaf_hash": leaves[offset].hex(),
        "proof": {
            "leaf_index": sum(row.size for row in chunks[:c]) + offset,
            "tree_size": sum(row.size for row in chunks),
            "audit_path": [p.hex() for p in path],
        },
    }


def receipt_status(ballot: Ballot) -> dict[str, Any]:
    """What a voter may learn from a receipt, relative to the latest publication.

    - ``counted``: in the published tree, with leaf hash and audit path to
      ``ballots_root`` (leaf data = the UTF-8 bytes of the receipt code);
    - ``excluded``: not in it because an active exclusion removed it, with the reason;
    - ``recorded``: accepted but not (yet) in a publication: before the first one, or
      cast after the published run was computed.
    """
    campaign = db.session.get(Campaign, ballot.campaign_id)
    assert campaign is not None  # the ballot's foreign key
    publication = latest_publication(campaign.id)
    if publication is None:
        return {"campaign": campaign.slug, "status": "recorded"}
    proof = inclusion_proof(publication.run_id, ballot.receipt)
    if proof is not None:
        return {
            "campaign": campaign.slug,
            "status": "counted",
            "publication": publication.version,
            "ballots_root": publication.document["ballots_root"],
            **proof,
        }
    exclusion = db.session.scalar(
        select(Exclusion)
        .where(Exclusion.ballot_id == ballot.id, Exclusion.active.is_(True))
        .order_by(Exclusion.created_at.desc())
        .limit(1)
    )
    if exclusion is not None:
        return {
            "campaign": campaign.slug,
            "status": "excluded",
            "publication": publication.version,
            "reason": exclusion.reason,
        }
    return {"campaign": campaign.slug, "status": "recorded"}
