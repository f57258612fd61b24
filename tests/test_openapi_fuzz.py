"""schemathesis against ``/openapi.json`` of a running ``cronica serve``: whatever it sends,
no 5xx, and every answer conforms to the schema (status, content type, body)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.processes import Server

EXAMPLES = 40
"""Cases per operation."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    running = Server(
        "--store", f"sqlite:///{folder / 'fuzz.db'}", "--min-position-timeout", "0.05", cwd=folder
    )
    with httpx.Client(base_url=running.base) as http:  # something for the reads to find
        http.post("/accounts", json={"owner": "Ana", "accountId": "ana"})
        http.post("/accounts/ana/deposits", json={"amount": "10.00"})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api_schema(server: Server) -> schemathesis.schemas.BaseSchema:
    loaded = schemathesis.openapi.from_url(f"{server.base}/openapi.json")
    return loaded.exclude(path="/events/live")  # an endless stream: followed in test_serve.py


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_the_api_never_fails_and_keeps_to_its_schema(
    api_schema: schemathesis.schemas.BaseSchema, mode: GenerationMode
) -> None:
    """Positive cases (valid by the schema) and negative ones (invalid on purpose)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 14
    unbreakable: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            fuzz()
        except Unsatisfiable:
            # Nothing to get wrong: no parameters, no body (GET /health, say).
            assert mode is GenerationMode.NEGATIVE, operation.label
            unbreakable.append(operation.label)
    assert len(unbreakable) <= 4, unbreakable
