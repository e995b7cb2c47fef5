"""A schema-driven fuzz run (schemathesis) against a real `labci serve`: every operation of
the application's own OpenAPI description, with generated and mutated parameters and bodies,
positive and negative (schema-violating)
cases, as an anonymous caller and as an administrator — 0 server errors.

Integers past 2**63 in paths and queries, NUL bytes and odd Unicode in strings, negative
limits and bodies of the wrong shape once gave 500s; each must now be a 4xx. The number of
examples per operation is bounded so the run stays short; Hypothesis' example database is
off so every run is the same size.
"""

from __future__ import annotations

import itertools
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 20
# Operations that would end the fuzzing caller's own access part-way through.
SKIPPED_AS_ADMIN = {("DELETE", "/api/v1/tokens/{token_id}")}


def server_errors(
    stack, schema, headers: dict[str, str], skip: set, statuses: Counter
) -> list[str]:
    found: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation, mode in itertools.product(operations, GenerationMode):
        if (operation.method.upper(), operation.path) in skip:
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def probe(case) -> None:
            response = case.call(base_url=stack.url, headers=headers, timeout=30)
            statuses[response.status_code // 100] += 1
            if response.status_code >= 500:
                found.append(
                    f"{case.method} {case.formatted_path} {case.query} -> "
                    f"{response.status_code} {response.text[:200]}"
                )

        try:
            probe()
        except Unsatisfiable:
            # Nothing to get wrong: an operation without parameters or body has no
            # negative cases.
            assert mode is GenerationMode.NEGATIVE
    return found


# Every operation gets its own examples: on a loaded machine this takes minutes, more than
# the suite's per-test hang guard.
@pytest.mark.timeout(900)
def test_fuzzing_every_operation_finds_no_server_error(stack):
    stack.start_server()
    token = stack.admin_token
    # Something to find: a run of a public and a private repository is not needed for the
    # server to answer well, but an admin's token reaches the deepest handlers.
    schema = schemathesis.openapi.from_url(stack.url + "/openapi.json")
    statuses: Counter[int] = Counter()
    anonymous = server_errors(stack, schema, {}, set(), statuses)
    bearer = {"authorization": f"Bearer {token}"}
    admin = server_errors(stack, schema, bearer, SKIPPED_AS_ADMIN, statuses)
    assert anonymous == []
    assert admin == []
    # The run reached handlers (2xx) and refusals (4xx) alike, in numbers worth the name.
    assert statuses[2] > 100
    assert statuses[4] > 500
    assert httpx.get(stack.url + "/healthz", timeout=10).status_code == 200
