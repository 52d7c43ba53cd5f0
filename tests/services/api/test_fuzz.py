"""Property-based fuzzing from the API's own OpenAPI document (schemathesis + hypothesis).

Every operation is sent generated requests, valid ones (positive) and ones that break the
schema (negative), against the real app (uvicorn on a port, the test broker and database),
with an admin key so every route is reached past authorisation. The figures are asserted and
written to ``.state/test/fuzz.json``:

- at least MIN_REQUESTS requests, 0 answers with a status of 500 or above;
- every answer conforms to the document: a documented status code, the documented content
  type and body schema, and a 4xx for every request that breaks the schema.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.platform.settings import REPO_ROOT
from tests.services.api.conftest import ADMIN_KEY

logger = logging.getLogger(__name__)

MIN_REQUESTS = 1000
EXAMPLES_PER_ROUND = 50
# Generated strings hold a NUL about once in a hundred, and path parameters never: one case in
# NUL_ONE_IN gets one put into its first string, the input that PostgreSQL refuses.
NUL_ONE_IN = 5
TIME_BUDGET_S = 60.0
# uvicorn's answer to a request its parser cannot read (h11 and httptools alike).
SERVER_REFUSAL = "Invalid HTTP request received."
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def live_pool_manager(migrated_db: str) -> Iterator[None]:
    """A pool manager's heartbeat, so /scale and restarts are accepted rather than 503."""
    manager = f"pool-fuzz-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO workers (instance_id, service, host, pid, started_at, last_heartbeat)"
            " VALUES (%s, 'pool', 'fuzz', 1, now(), now() + interval '1 hour')",
            (manager,),
        )
    try:
        yield
    finally:
        with psycopg.connect(migrated_db, autocommit=True) as conn:
            conn.execute("DELETE FROM workers WHERE instance_id = %s", (manager,))


@dataclass
class _Fuzz:
    """One fuzzing session against the live app: what was sent and what came back."""

    base_url: str
    auth: dict[str, str]
    session: requests.Session = field(default_factory=requests.Session)
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def run(self, operation: Any, mode: GenerationMode) -> None:
        """One hypothesis round of generated cases of ``mode`` for ``operation``."""

        @given(case=operation.as_strategy(generation_mode=mode), nul=st.integers(0, NUL_ONE_IN - 1))
        @settings(
            max_examples=EXAMPLES_PER_ROUND,
            deadline=None,
            database=None,
            # Plain generation: failures are collected below, not shrunk.
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def probe(case: Any, nul: int) -> None:
            if nul == 0:
                _inject_nul(case)
            self.send(operation, case, mode)

        try:
            probe()
        except HypothesisException as exc:  # e.g. nothing negative to make of a bare GET
            logger.info("no %s cases for %s: %s", mode.value, operation.label, exc)

    def send(self, operation: Any, case: Any, mode: GenerationMode) -> None:
        """Send one case and record its status and every check it fails."""
        # A case whose headers break the schema may have dropped or mangled Authorization on
        # purpose: adding the key back would make it valid again. Send it as generated then
        # (the answer must be a 4xx all the same: here, 401).
        headers = None if _negated(case, ParameterLocation.HEADER) else self.auth
        response = case.call(
            base_url=self.base_url, session=self.session, headers=headers, timeout=30
        )
        self.statuses[response.status_code] += 1
        self.per_operation[operation.label] += 1
        where = f"{case.method} {case.formatted_path} -> {response.status_code}"
        if response.status_code >= 500:
            self.server_errors.append(f"{where}: {response.text[:300]}")
        if response.status_code == 400 and response.text == SERVER_REFUSAL:
            # Refused by the HTTP server's parser (e.g. a generated Transfer-Encoding value)
            # before the app saw it: a 4xx as it should be, in the server's own plain text.
            return
        try:
            case.validate_response(
                response,
                checks=CHECKS,
                headers=headers,
                transport_kwargs={"base_url": self.base_url},
            )
        except FailureGroup as exc:
            self.failures.append(f"[{mode.value}] {where}: {exc}"[:2000])


def _operations(document: dict[str, Any]) -> list[Any]:
    """Every operation of the document that a generated request can finish against."""
    schema = schemathesis.openapi.from_dict(document)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # every operation in the document loads
        # A live stream never ends, so a generated request would only time out; their bad
        # requests and their events are tested in test_events.py.
        if result.ok().path.endswith("/events"):
            continue
        operations.append(result.ok())
    return operations


def test_fuzz_every_operation_from_the_openapi_document(
    api_roles: httpx.Client, live_pool_manager: None
) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    document = api_roles.get("/openapi.json", headers=auth).json()
    operations = _operations(document)
    assert len(operations) >= 13, [op.label for op in operations]

    fuzz = _Fuzz(base_url=str(api_roles.base_url).rstrip("/"), auth=auth)
    deadline = time.monotonic() + TIME_BUDGET_S
    rounds = 0
    while (fuzz.sent < MIN_REQUESTS or rounds == 0) and time.monotonic() < deadline:
        rounds += 1
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz.run(operation, mode)

    figures: dict[str, Any] = {
        "requests": fuzz.sent,
        "server_errors": len(fuzz.server_errors),
        # Negative cases that break the Authorization header stop at 401; the rest got in.
        "past_auth": fuzz.sent - fuzz.statuses[401],
        "conformance_failures": len(fuzz.failures),
        "rounds": rounds,
        "operations": len(operations),
        "statuses": dict(sorted(fuzz.statuses.items())),
        "per_operation": dict(sorted(fuzz.per_operation.items())),
        "seconds": round(TIME_BUDGET_S - (deadline - time.monotonic()), 1),
    }
    out = REPO_ROOT / ".state" / "test" / "fuzz.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**figures, "failures": fuzz.failures[:50]}, indent=2) + "\n")
    logger.warning("fuzz figures %s", json.dumps(figures))

    assert fuzz.server_errors == [], "\n".join(fuzz.server_errors[:20])
    assert fuzz.failures == [], "\n\n".join(fuzz.failures[:10])
    assert fuzz.sent >= MIN_REQUESTS, figures
    assert figures["past_auth"] >= MIN_REQUESTS // 2, figures
    assert set(fuzz.per_operation) == {op.label for op in operations}, figures


def _negated(case: Any, location: ParameterLocation) -> bool:
    """Whether schemathesis generated this part of the case to break the schema."""
    info = case.meta.components.get(location) if case.meta is not None else None
    return info is not None and info.mode.is_negative


def _inject_nul(case: Any) -> None:
    """Put a NUL into the first string of the case's path, query or body, if it has one."""
    for container in (case.path_parameters, case.query, case.body):
        if not isinstance(container, dict):
            continue
        for name, value in container.items():
            if isinstance(value, str):
                container[name] = value[: len(value) // 2] + "\x00" + value[len(value) // 2 :]
                return
