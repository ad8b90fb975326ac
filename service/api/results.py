"""Published results (public): the latest version, a CSV of it, and every version."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import ApiErrorSchema

from ..auth import is_admin
from ..domain import publications as domain
from ..domain.campaigns import visible_campaign

blp = Blueprint(
    "results",
    __name__,
    url_prefix="/api/v1/campaigns",
    description="公示结果 / Published results",
)

DOCUMENT = {"type": "object", "description": "The publication document (DESIGN.md)"}


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
        """The latest publication (or, with ``results.live``, a provisional run)."""
        return domain.results_document(visible_campaign(slug, is_admin()))


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
        """The latest publication as CSV (UTF-8 with BOM, for spreadsheet programs)."""
        text, version = domain.results_csv(visible_campaign(slug, is_admin()))
        return Response(
            text.encode("utf-8"),
            mimetype="text/csv",
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{slug}-results-v{version}.csv"',
            },
        )


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
        """One published version, as published."""
        return domain.get_publication(visible_campaign(slug, is_admin()), version).document
