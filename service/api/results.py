"""Published results (public): the latest version, a CSV of it, and every version."""

from __future__ import annotations

import json

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import ApiErrorSchema

from .. import http_cache
from ..auth import is_admin
from ..domain import publications as domain
from ..domain.campaigns import get_campaign, visible_campaign
from ..extensions import limiter

blp = Blueprint(
    "results",
    __name__,
    url_prefix="/api/v1/campaigns",
    description="公示结果 / Published results",
)

DOCUMENT = {"type": "object", "description": "The publication document (DESIGN.md)"}

# Bump when the JSON or CSV a publication is served as changes shape.
FORMAT_VERSION = "r17-1"


def _json(document: dict) -> tuple[bytes, str]:
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8"), "application/json"


def _key(kind: str, head) -> str:
    return (
        f"{kind}:{head.id}:{head.version}:{head.digest}:"
        f"{head.updated_at.timestamp()}:{FORMAT_VERSION}"
    )


# Served from http_cache (a hit costs no query and no rendering): no rate limit, and not
# the limiter's per-request work either (``limiter.exempt`` still resolved the limits on
# every request). Query parameters are ignored.
_NOT_LIMITED = frozenset({"results.Results", "results.ResultsCsv"})


@limiter.request_filter
def _not_limited() -> bool:
    return request.endpoint in _NOT_LIMITED


@blp.route("/<slug>/results")
class Results(MethodView):
    @blp.doc(
        responses={
            200: {
                "description": "Latest publication",
                "content": {"application/json": {"schema": DOCUMENT}},
            }
        }
    )
    @blp.alt_response(404, schema=ApiErrorSchema, description="not_published")
    def get(self, slug):
        """The latest publication (or, with ``results.live``, a provisional run).

        A publication is served with a strong ETag and a short ``max-age`` (a newer
        version replaces it); the provisional run is marked ``no-cache``."""
        head = domain.latest_head(slug)
        if head is None:
            campaign = visible_campaign(slug, is_admin())
            body, mimetype = _json(domain.results_document(campaign))
            response = Response(body, mimetype=mimetype)
            response.headers["Cache-Control"] = http_cache.UNCACHED
            return response

        def render():
            campaign = get_campaign(slug)
            publication = domain.get_publication(campaign, head.version)
            return _json(domain.publication_document(campaign, publication))

        return http_cache.cached(
            _key("results-json", head), render, http_cache.LATEST_CACHE_CONTROL
        )


@blp.route("/<slug>/results.csv")
class ResultsCsv(MethodView):
    @blp.doc(
        responses={
            200: {
                "description": "UTF-8 with BOM",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        }
    )
    @blp.alt_response(404, schema=ApiErrorSchema, description="not_published")
    def get(self, slug):
        """The latest publication as CSV (UTF-8 with BOM, for spreadsheet programs), with
        an ``interim`` column; cached like the JSON."""
        head = domain.latest_head(slug)
        if head is None:
            # Raises 404 not_found / not_published; answers, uncached, when this process's
            # latest_head (kept HOT_CACHE_SECONDS) does not know yet of a new publication.
            text, version = domain.results_csv(visible_campaign(slug, is_admin()))
            response = Response(text.encode("utf-8"), mimetype="text/csv")
            response.headers["Cache-Control"] = http_cache.UNCACHED
            response.headers["Content-Disposition"] = (
                f'attachment; filename="{slug}-results-v{version}.csv"'
            )
            return response

        def render():
            campaign = get_campaign(slug)
            publication = domain.get_publication(campaign, head.version)
            return domain.publication_csv(campaign, publication).encode("utf-8"), "text/csv"

        response = http_cache.cached(
            _key("results-csv", head), render, http_cache.LATEST_CACHE_CONTROL
        )
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{slug}-results-v{head.version}.csv"'
        )
        return response


@blp.route("/<slug>/publications/<int(max=2147483647):version>")
class PublicationItem(MethodView):
    @blp.doc(
        responses={
            200: {
                "description": "One version",
                "content": {"application/json": {"schema": DOCUMENT}},
            }
        }
    )
    @blp.alt_response(404, schema=ApiErrorSchema, description="not_found")
    def get(self, slug, version):
        """One published version, as published (immutable: cached for a year)."""
        campaign = visible_campaign(slug, is_admin())
        publication = domain.get_publication(campaign, version)
        key = (
            f"publication-json:{campaign.id}:{version}:{publication.digest}:"
            f"{campaign.updated_at.timestamp()}:{FORMAT_VERSION}"
        )
        return http_cache.cached(
            key,
            lambda: _json(domain.publication_document(campaign, publication)),
            http_cache.VERSION_CACHE_CONTROL,
        )
