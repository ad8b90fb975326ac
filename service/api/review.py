"""Expert review: experts, assignments, scoring, progress."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import ApiErrorSchema
from schemas.review import (
    AssignmentInSchema,
    AssignmentsOutSchema,
    ExpertSchema,
    ExpertWithdrawnSchema,
    ProgressSchema,
    ScoreHistoryOutSchema,
    ScoreInSchema,
    ScoreOutSchema,
)

from ..auth import current_principal, require
from ..domain import review as domain
from ..domain.campaigns import get_campaign
from ..domain.feasibility import warnings
from ..extensions import db

blp = Blueprint(
    "review", __name__, url_prefix="/api/v1/campaigns", description="专家评审 / Expert review"
)
ADMIN: list[dict[str, list[str]]] = [{"bearer": []}]


@blp.route("/<slug>/experts")
class Experts(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(200, ExpertSchema(many=True))
    def get(self, slug):
        """The campaign's experts (tokens are never shown again)."""
        return domain.list_experts(get_campaign(slug))

    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.arguments(ExpertSchema)
    @blp.response(201, ExpertSchema)
    def post(self, data, slug):
        """Register an expert; the token (and the personal review link) is returned once."""
        campaign = get_campaign(slug)
        expert, token = domain.add_expert(
            campaign, data["name"], data.get("area"), current_principal().actor
        )
        db.session.commit()
        return {
            "id": expert.id,
            "name": expert.name,
            "area": expert.area,
            "token": token,
            # The personal link an expert opens once to get a browser session.
            "review_url": f"/review/{slug}/login?token={token}",
            "created_at": expert.created_at,
            "revoked_at": None,
            "warnings": warnings(campaign),
        }


@blp.route("/<slug>/experts/<int(max=2147483647):expert_id>")
class ExpertItem(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(200, ExpertWithdrawnSchema)
    @blp.alt_response(404, schema=ApiErrorSchema, description="not_found")
    def delete(self, slug, expert_id):
        """Revoke an expert: the token stops working; their scores stay. ``warnings``
        names the entries that can no longer reach ``min_reviews``."""
        campaign = get_campaign(slug)
        domain.revoke_expert(campaign, expert_id, current_principal().actor)
        db.session.commit()
        expert = domain.get_expert(campaign, expert_id)
        return {"id": expert.id, "revoked_at": expert.revoked_at, "warnings": warnings(campaign)}


@blp.route("/<slug>/experts/<int(max=2147483647):expert_id>/assignments")
class ExpertAssignments(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.arguments(AssignmentInSchema)
    @blp.response(200, AssignmentInSchema)
    def put(self, data, slug, expert_id):
        """Assign entries to an expert explicitly (an empty list: every entry)."""
        campaign = get_campaign(slug)
        expert = domain.get_expert(campaign, expert_id)
        codes = domain.set_assignments(campaign, expert, data["entries"], current_principal().actor)
        db.session.commit()
        return {"entries": codes, "warnings": warnings(campaign)}


@blp.route("/<slug>/review/assignments")
class ReviewAssignments(MethodView):
    @require("expert")
    @blp.doc(security=ADMIN)
    @blp.response(200, AssignmentsOutSchema)
    def get(self, slug):
        """The entries this expert is to score, own scores included, recused ones left out."""
        campaign = get_campaign(slug)
        return domain.assignments(campaign, domain.expert_for(current_principal(), campaign))


@blp.route("/<slug>/entries/<code>/score")
class EntryScore(MethodView):
    @require("expert")
    @blp.doc(security=ADMIN)
    @blp.arguments(ScoreInSchema)
    @blp.response(201, ScoreOutSchema)
    @blp.alt_response(200, schema=ScoreOutSchema, description="a revision")
    @blp.alt_response(
        403,
        schema=ApiErrorSchema,
        description="recused, review_not_open, review_closed, not_assigned",
    )
    @blp.alt_response(
        422, schema=ApiErrorSchema, description="unknown_criterion, missing_criterion, out_of_range"
    )
    def put(self, data, slug, code):
        """Score an entry: 201 the first time, 200 for a revision (history kept)."""
        campaign = get_campaign(slug)
        expert = domain.expert_for(current_principal(), campaign)
        view, created = domain.submit_score(
            campaign, expert, code, data["scores"], data.get("comment")
        )
        db.session.commit()
        return view, 201 if created else 200


@blp.route("/<slug>/entries/<code>/scores/history")
class ScoreHistory(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(200, ScoreHistoryOutSchema)
    def get(self, slug, code):
        """Every version of every expert's score for an entry (for appeals)."""
        return {"history": domain.score_history(get_campaign(slug), code)}


@blp.route("/<slug>/review/progress")
class ReviewProgress(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(200, ProgressSchema)
    def get(self, slug):
        """Per entry: live reviews and whether min_reviews is met; per expert: done/assigned."""
        return domain.progress(get_campaign(slug))
