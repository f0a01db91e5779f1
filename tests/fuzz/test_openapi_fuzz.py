"""Schemathesis against each service's OpenAPI document: no 5xx, every answer as documented.

Every operation is fuzzed in-process over ASGI, with the app's lifespan running against the real
PostgreSQL and NATS and a token with every scope. Positive cases are valid by the schema; negative
ones are not and must be refused with a documented 4xx. Half the cases of an operation with path
parameters aim at records that exist (seeded first), so updates and deletes get past the 404.
The number of examples is bounded and derandomised: the run is the same every time.

`POST /webhooks/{provider}/{source_id}` is fuzzed here only for its URL (no signature, so it
never gets past the source lookup or the signature check); test_webhook_fuzz.py covers its bodies
and headers. The NDJSON import is fuzzed with its text body sent as `application/x-ndjson`.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fuzz.harness import Service, fuzz_settings

# Per operation and generation mode: ~90 operations x 2 modes x 12 takes ~20 s on two cores.
EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BASE_URL = "http://prodops.test"
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)

# The NDJSON import takes a text body: send what schemathesis generates for it as that text.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def _request(case: Case[Any], headers: dict[str, str]) -> dict[str, Any]:
    """httpx arguments for a case (schemathesis serialises for `requests`)."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
    request: dict[str, Any] = {
        k: kwargs[k] for k in ("method", "url", "headers", "params") if k in kwargs
    }
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        request["content"] = data.encode() if isinstance(data, str) else data
    key = request["headers"].get("Idempotency-Key")
    # Generated keys repeat ("0", "00"), and a repeated key with another body is 409 before
    # anything else runs; a fresh valid key keeps the replay store in the path but out of the way.
    if key is not None and 1 <= len(key) <= 255:
        request["headers"]["Idempotency-Key"] = uuid.uuid4().hex
    return request


def _cases(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, known: dict[str, str]
) -> Any:
    """The operation's cases; half of them on known records when its path names some."""
    names = re.findall(r"{(\w+)}", operation.path)
    resource = operation.path.split("/")[2] if operation.path.startswith("/v1/") else ""
    fixed = {n: known.get(f"{resource}.{n}", known.get(n)) for n in names}
    fixed = {n: v for n, v in fixed.items() if v is not None}
    anything = operation.as_strategy(generation_mode=mode)
    if not fixed:
        return anything
    return st.one_of(anything, operation.as_strategy(generation_mode=mode, path_parameters=fixed))


def _conforms(
    service: Service,
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    headers: dict[str, str],
    known: dict[str, str],
) -> None:
    """Fuzz one operation in one mode; raises what schemathesis or Hypothesis found."""
    checks = CHECKS

    @fuzz_settings(EXAMPLES)
    @given(case=_cases(operation, mode, known))
    def conforms(case: Case[Any]) -> None:
        response = service.send(**_request(case, headers))
        case.validate_response(response, checks=checks, headers=headers)

    conforms()


def _fuzz(service: Service, headers: dict[str, str], known: dict[str, str]) -> list[str]:
    """Every operation, positive and negative; the failures as text (empty when none)."""
    schema = schemathesis.openapi.from_dict(service.app.openapi())
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"an operation schemathesis cannot read: {result.err()}")
            continue
        operation = result.ok()
        for mode in MODES:
            try:
                _conforms(service, operation, mode, headers, known)
            except Unsatisfiable:
                continue  # nothing to negate: the operation takes no parameters and no body
            except BaseException as exc:  # FailureGroup is a BaseExceptionGroup
                if not isinstance(exc, Exception | BaseExceptionGroup):
                    raise
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    return failures


async def _seed(service: Service, headers: dict[str, str]) -> dict[str, str]:
    """Create one record of each kind the service keeps; their ids by path parameter name."""

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await service.client.post(path, json=body, headers=headers)
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created

    name = service.app.title.removeprefix("prodops ")
    if name == "insights":
        return {}
    provider = "zendesk" if name == "feedback" else "github"
    known = {"source_id": (await post("/v1/sources", {"provider": provider, "name": "S"}))["id"]}
    if name == "feedback":
        account = {"name": "Acme", "arr": 1000}
        put = await service.client.put("/v1/accounts/acme", json=account, headers=headers)
        assert put.status_code in {200, 201}, put.text
        feedback = await post("/v1/feedback", {"title": "Seed", "account_external_id": "acme"})
        return known | {"feedback_id": feedback["id"], "external_id": "acme", "item_key": "ITEM-1"}
    objective = await post("/v1/objectives", {"name": "Grow"})
    launch = await post("/v1/launches", {"key": "LAUNCH-1", "name": "Launch"})
    item = await post("/v1/items", {"title": "Seed", "launch_id": launch["id"]})
    entries = launch.get("checklist") or [{}]
    return known | {
        "objective_id": objective["id"],
        "items.id_or_key": item["key"],
        "items.key": item["key"],
        "launches.id_or_key": launch["key"],
        "launches.key": launch["key"],
        **({"entry_id": entries[0]["id"]} if "id" in entries[0] else {}),
    }


# Schemathesis draws some values with `random` inside its strategies, which Hypothesis flags.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@pytest.mark.parametrize("service", ["feedback", "roadmap", "insights"], indirect=True)
async def test_every_operation_answers_as_documented_and_never_with_5xx(
    service: Service, headers: dict[str, str]
) -> None:
    known = await _seed(service, headers)
    failures = await asyncio.to_thread(_fuzz, service, headers, known)
    assert not failures, "\n\n".join(failures)
