"""Ranking runs and publishing (admin): both only enqueue; workers do the work."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from redis import RedisError

from schemas.common import ApiErrorSchema, Text

from ..auth import current_principal, require
from ..domain import rankings as domain
from ..domain.campaigns import get_campaign
from ..domain.publications import publishable_run
from ..domain.runs import queue_unavailable, start_run
from ..errors import ApiError
from ..queues import enqueue_publish

blp = Blueprint(
    "rankings",
    __name__,
    url_prefix="/api/v1",
    description="排名计算与结果公示 / Ranking runs and publication",
)
ADMIN: list[dict[str, list[str]]] = [{"bearer": []}]


class RunAcceptedSchema(Schema):
    run_id = fields.String()
    job_id = fields.String()
    status = fields.String()


class RunSchema(Schema):
    id = fields.String()
    campaign = fields.String()
    status = fields.String(metadata={"enum": list(domain.STATUSES)})
    trigger = fields.String()
    job_id = fields.String(allow_none=True)
    input_digest = fields.String(allow_none=True)
    ballots_root = fields.String(allow_none=True)
    error = fields.Dict(allow_none=True)
    result = fields.Dict(allow_none=True)
    created_at = fields.String(allow_none=True)
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)


class PublishSchema(Schema):
    run_id = Text(load_default=None, allow_none=True, validate=validate.Length(max=36))


class PublishAcceptedSchema(Schema):
    job_id = fields.String()
    run_id = fields.String()


def _queue_unavailable() -> ApiError:
    return queue_unavailable()


@blp.route("/campaigns/<slug>/rankings")
class Rankings(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(202, RunAcceptedSchema)
    @blp.alt_response(503, schema=ApiErrorSchema, description="queue_unavailable")
    def post(self, slug):
        """Start a ranking run: freeze the input and compute it in a worker."""
        campaign = get_campaign(slug)
        run, job_id = start_run(campaign, current_principal().actor)
        return {"run_id": run.id, "job_id": job_id, "status": run.status}


@blp.route("/rankings/<run_id>")
class RankingItem(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.response(200, RunSchema)
    @blp.alt_response(404, schema=ApiErrorSchema, description="not_found")
    def get(self, run_id):
        """A run: queued, running, finished (with the result) or failed (with the error)."""
        return domain.run_view(domain.get_run(run_id))


@blp.route("/campaigns/<slug>/publications")
class Publications(MethodView):
    @require("admin")
    @blp.doc(security=ADMIN)
    @blp.arguments(PublishSchema, required=False)
    @blp.response(202, PublishAcceptedSchema)
    @blp.alt_response(
        409, schema=ApiErrorSchema, description="no_finished_run, run_not_finished, run_expired"
    )
    @blp.alt_response(503, schema=ApiErrorSchema, description="queue_unavailable")
    def post(self, data, slug):
        """Publish the latest finished run (or ``run_id``) as the next version."""
        campaign = get_campaign(slug)
        run = publishable_run(campaign.id, (data or {}).get("run_id"))
        try:
            job = enqueue_publish(campaign.id, run.id)
        except RedisError as exc:
            raise _queue_unavailable() from exc
        return {"job_id": job.id, "run_id": run.id}
