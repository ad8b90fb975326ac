"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

Bounded: a fixed number of generated requests per operation and mode, sent as admin
against a campaign with entries, so that generated requests reach deep into the
handlers. (schemathesis' pytest plugin does not support pytest 9 yet, so the operations
are driven with Hypothesis directly.)
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support import ADMIN

pytestmark = pytest.mark.slow  # schemathesis fuzzes every operation

EXAMPLES = 15
CHECKS = [not_a_server_error, response_schema_conformance]


def _strategies(operation):
    """Random and pinned-to-a-real-campaign cases, valid (positive) and invalid (negative)."""
    pinned = {k: v for k, v in (("slug", "c1"), ("code", "A01")) if f"{{{k}}}" in operation.path}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        yield mode, operation.as_strategy(mode)
        if pinned:
            yield mode, operation.as_strategy(mode, path_parameters=pinned)


def _run(strategy) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        case.call_and_validate(headers=ADMIN, checks=CHECKS)

    fuzz()


def test_api_never_fails_and_keeps_its_schema(app, make_campaign):
    """Whatever a client sends, no 500 and no response outside the documented schema."""
    make_campaign("c1")
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    ran = 0
    for operation in operations:
        for mode, strategy in _strategies(operation):
            try:
                _run(strategy)
                ran += 1
            except Unsatisfiable:
                # Nothing to get wrong (no parameters, no body): no negative cases exist.
                assert mode is GenerationMode.NEGATIVE, operation.path
    assert ran >= 2 * len(operations)
