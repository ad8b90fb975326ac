"""The JSON API (v1), documented by flask-smorest at /api/openapi.json."""

from flask_smorest import Api

from schemas.ballot import BallotInSchema
from schemas.common import ApiErrorSchema
from schemas.roll import RollInSchema

from . import ballots, campaigns, kiosks, rankings, results, review, roll, verifications


class VotesApi(Api):
    """flask-smorest Api whose error handler is the service's own (one error shape)."""

    # Documented error responses use the shape the service really sends.
    ERROR_SCHEMA = ApiErrorSchema

    def _register_error_handlers(self):
        # The app registers the handlers (service.errors); smorest must not override them.
        pass


def register_api(app) -> VotesApi:
    api = VotesApi()
    api.init_app(
        app,
        spec_kwargs={
            "info": {"description": "选评服务 API / Voting and project-selection service API"},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        },
    )
    for module in (campaigns, kiosks, ballots, verifications, review, rankings, results, roll):
        api.register_blueprint(module.blp)
    # Documented by reference from the ballot endpoint (JSON and form bodies).
    api.spec.components.schema("BallotIn", schema=BallotInSchema)
    api.spec.components.schema("RollIn", schema=RollInSchema)
    return api
