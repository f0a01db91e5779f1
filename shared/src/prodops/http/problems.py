"""RFC 9457 problem details: every HTTP error of a prodops service as application/problem+json."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from asyncpg.exceptions import CharacterNotInRepertoireError, UntranslatableCharacterError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.constants import REF_PREFIX
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

PROBLEM_MEDIA_TYPE = "application/problem+json"

_log = logging.getLogger(__name__)


class ProblemError(Exception):
    """An error the HTTP layer renders as application/problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: object,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type_ = type_
        self.headers = headers
        self.extensions = extensions


class ValidationIssue(BaseModel):
    """One reason a request was refused: where, what, and the machine-readable kind."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """The body of every error response (RFC 9457); extension members may follow."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ValidationIssue] | None = None


class ProblemResponse(JSONResponse):
    """A JSON response served as application/problem+json."""

    media_type = PROBLEM_MEDIA_TYPE


def documented_problem(status: int) -> dict[str, Any]:
    """An OpenAPI response entry for a problem+json answer with this status."""
    # No "model" key on purpose: FastAPI would file the schema under the route's media type
    # (application/json); install_problem_handlers adds the Problem schema to components.
    return {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": f"{REF_PREFIX}Problem"}}},
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: documented_problem(status)
    for status in (400, 401, 403, 404, 409, 413, 415, 422, 429, 500)
}


def problem_response(error: ProblemError, instance: str | None) -> Response:
    """Render a ProblemError; also usable as an ASGI app by middlewares."""
    body: dict[str, Any] = {
        **error.extensions,
        "type": error.type_,
        "title": error.title,
        "status": error.status,
    }
    if error.detail is not None:
        body["detail"] = error.detail
    if instance is not None:
        body["instance"] = instance
    return ProblemResponse(body, status_code=error.status, headers=error.headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(exc, request.url.path)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # These statuses forbid a body.
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=exc.headers)
    headers = dict(exc.headers) if exc.headers else None
    error = ProblemError(exc.status_code, _phrase(exc.status_code), exc.detail, headers=headers)
    return problem_response(error, request.url.path)


def _issue(error: dict[str, Any]) -> dict[str, Any]:
    # Only loc, msg and type: `input` and `ctx` may echo what was sent, passwords included.
    return {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error["type"]}


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        malformed = ProblemError(400, "Malformed JSON body", "the request body is not valid JSON")
        return problem_response(malformed, request.url.path)
    invalid = ProblemError(
        422,
        "Unprocessable Content",
        "the request does not match the expected shape",
        errors=[_issue(error) for error in errors],
    )
    return problem_response(invalid, request.url.path)


async def _on_unstorable_text(request: Request, exc: Exception) -> Response:  # noqa: ARG001
    # PostgreSQL text and jsonb cannot hold U+0000: such a value is the caller's to fix, not a 500.
    invalid = ProblemError(
        422, "Unprocessable Content", "text values cannot contain the NUL character (U+0000)"
    )
    return problem_response(invalid, request.url.path)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Called by Starlette inside its `except` block, so the traceback is still at hand.
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    error = ProblemError(500, "Internal Server Error", "the server failed to answer this request")
    return problem_response(error, request.url.path)


async def rendered_by_app(scope: Scope, exc: Exception) -> Response:
    """The response the app's exception handler for `exc` gives, as FastAPI would use it.

    For fast paths that answer ahead of the app's stack (the handlers are the app's, so the
    errors are the same). With no handler for `exc`, it is raised again.
    """
    handlers = scope["app"].exception_handlers
    handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
    if handler is None:
        raise exc
    response = handler(Request(scope), exc)
    if inspect.isawaitable(response):
        response = await response
    assert isinstance(response, Response)
    return response


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` an application/problem+json response, and document Problem."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(CharacterNotInRepertoireError, _on_unstorable_text)
    app.add_exception_handler(UntranslatableCharacterError, _on_unstorable_text)
    app.add_exception_handler(Exception, _on_unexpected)
    app.openapi = _with_problem_schema(app.openapi)  # type: ignore[method-assign]


def _with_problem_schema(openapi: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    def document() -> dict[str, Any]:
        schema = openapi()
        problem = Problem.model_json_schema(ref_template=f"{REF_PREFIX}{{model}}")
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in problem.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas.setdefault("Problem", problem)
        return schema

    return document


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    main, _, subtype = media_type.partition("/")
    # FastAPI parses a body as JSON only for application/json and application/*+json.
    return main == "application" and (subtype == "json" or subtype.endswith("+json"))


async def require_json(request: Request) -> None:
    """Refuse a POST, PUT or PATCH body that is not JSON with 415 Unsupported Media Type."""
    if request.method not in {"POST", "PUT", "PATCH"}:
        return
    headers = request.headers
    has_body = "transfer-encoding" in headers or headers.get("content-length", "0") not in {"", "0"}
    if has_body and not _is_json(headers.get("content-type", "")):
        raise ProblemError(
            415,
            "Unsupported Media Type",
            "send the body as application/json",
        )
