"""Bearer JWT authentication, through a small FastAPI app and a real local JWKS server."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from prodops.http.auth import (
    AuthError,
    FeedbackRead,
    FeedbackWrite,
    Principal,
    TokenVerifier,
    install_auth,
    mint_token,
)
from prodops.http.problems import ProblemError
from prodops.runtime.settings import Settings

SECRET = "x" * 40
CHALLENGE = 'Bearer realm="prodops"'
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def make_settings(**overrides: Any) -> Settings:
    fields: dict[str, Any] = {"env": "test", "jwt_secret": SECRET} | overrides
    return Settings(**fields)


def claims(**overrides: Any) -> dict[str, Any]:
    """Good claims; an override of None drops that claim."""
    now = int(time.time())
    base = {"ws": "acme", "scope": "feedback:read", "sub": "user-7", "iat": now, "exp": now + 300}
    merged = base | overrides
    return {name: value for name, value in merged.items() if value is not None}


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def b64url(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


def build_app(settings: Settings) -> FastAPI:
    app = FastAPI()
    install_auth(app, settings)

    @app.exception_handler(ProblemError)
    async def render_problem(request: Request, exc: ProblemError) -> JSONResponse:
        body = {"type": "about:blank", "title": exc.title, "status": exc.status}
        return JSONResponse(
            body | {"detail": exc.detail},
            status_code=exc.status,
            headers=exc.headers,
            media_type="application/problem+json",
        )

    @app.get("/feedback")
    async def list_feedback(principal: FeedbackRead) -> dict[str, Any]:
        return {"workspace": principal.workspace, "subject": principal.subject}

    @app.post("/feedback")
    async def submit_feedback(principal: FeedbackWrite) -> dict[str, Any]:
        return {"workspace": principal.workspace}

    return app


async def call(app: FastAPI, headers: dict[str, str], method: str = "GET") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://prodops.test") as client:
        return await client.request(method, "/feedback", headers=headers)


async def call_with(token: str, settings: Settings | None = None) -> httpx.Response:
    app = build_app(settings or make_settings())
    return await call(app, {"Authorization": f"Bearer {token}"})


def assert_unauthorized(response: httpx.Response, token: str | None = None) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == CHALLENGE
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Unauthorized"
    assert SECRET not in response.text
    if token:
        assert token not in response.text


async def test_valid_token_becomes_a_principal() -> None:
    principal = await TokenVerifier(make_settings()).verify(hs256(claims(scope="feedback:read x")))
    assert principal == Principal(
        workspace="acme", scopes=frozenset({"feedback:read"}), subject="user-7"
    )


async def test_valid_token_reaches_the_route() -> None:
    response = await call_with(hs256(claims()))
    assert response.status_code == 200
    assert response.json() == {"workspace": "acme", "subject": "user-7"}


async def test_lowercase_bearer_scheme_is_accepted() -> None:
    response = await call(
        build_app(make_settings()), {"Authorization": f"bearer {hs256(claims())}"}
    )
    assert response.status_code == 200


async def test_expired_token_is_unauthorized() -> None:
    token = hs256(claims(exp=int(time.time()) - 120))
    response = await call_with(token)
    assert_unauthorized(response, token)
    assert response.json()["detail"] == "the token has expired"


async def test_token_signed_with_another_secret_is_unauthorized() -> None:
    token = hs256(claims(), secret="y" * 40)
    assert_unauthorized(await call_with(token), token)


async def test_unsigned_alg_none_token_is_unauthorized() -> None:
    token = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims())}."
    response = await call_with(token)
    assert_unauthorized(response, token)
    assert response.json()["detail"] == "the token signing algorithm is not accepted"


async def test_token_with_a_tampered_payload_is_unauthorized() -> None:
    header, _, signature = hs256(claims()).split(".")
    token = f"{header}.{b64url(claims(ws='someone-else'))}.{signature}"
    response = await call_with(token)
    assert_unauthorized(response, token)
    assert response.json()["detail"] == "the token signature does not match"


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"ws": None}, "the token lacks the ws claim"),
        ({"scope": None}, "the token lacks the scope claim"),
        ({"exp": None}, "the token lacks the exp claim"),
        ({"ws": "Acme"}, "the token ws claim is not a workspace slug"),
        ({"ws": "-acme"}, "the token ws claim is not a workspace slug"),
        ({"ws": "acme\n"}, "the token ws claim is not a workspace slug"),
        ({"ws": "a" * 64}, "the token ws claim is not a workspace slug"),
        ({"ws": 42}, "the token ws claim is not a workspace slug"),
        ({"scope": ["feedback:read"]}, "the token scope claim must be a space-separated string"),
        ({"iat": int(time.time()) + 3600}, "the token is not valid yet"),
    ],
)
async def test_token_with_bad_claims_is_unauthorized(
    overrides: dict[str, Any], detail: str
) -> None:
    token = hs256(claims(**overrides))
    response = await call_with(token)
    assert_unauthorized(response, token)
    assert response.json()["detail"] == detail


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
    ],
)
async def test_missing_or_malformed_authorization_is_unauthorized(
    authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_unauthorized(await call(build_app(make_settings()), headers))


async def test_token_without_the_scope_is_forbidden() -> None:
    token = hs256(claims(scope="feedback:read admin"))
    response = await call(build_app(make_settings()), {"Authorization": f"Bearer {token}"}, "POST")
    assert response.status_code == 403
    assert response.json()["detail"] == "this token lacks the scope feedback:write"


async def test_audience_and_issuer_are_enforced_when_configured() -> None:
    settings = make_settings(jwt_audience="prodops-api", jwt_issuer="https://id.example")
    good = {"aud": "prodops-api", "iss": "https://id.example"}
    assert (await call_with(hs256(claims(**good)), settings)).status_code == 200
    refused: list[tuple[dict[str, Any], str]] = [
        (good | {"aud": "billing-api"}, "the token is meant for another audience"),
        (good | {"iss": "https://evil.example"}, "the token comes from an unexpected issuer"),
        (good | {"aud": None}, "the token lacks the aud claim"),
        (good | {"iss": None}, "the token lacks the iss claim"),
    ]
    for overrides, detail in refused:
        response = await call_with(hs256(claims(**overrides)), settings)
        assert_unauthorized(response)
        assert response.json()["detail"] == detail


async def test_audience_is_ignored_when_not_configured() -> None:
    response = await call_with(hs256(claims(aud="anything")))
    assert response.status_code == 200


async def test_minted_token_round_trips() -> None:
    settings = make_settings(jwt_audience="prodops-api", jwt_issuer="https://id.example")
    token = mint_token(settings, workspace="acme", scopes=["roadmap:read", "admin"], ttl_seconds=60)
    principal = await TokenVerifier(settings).verify(token)
    assert principal == Principal(
        workspace="acme", scopes=frozenset({"roadmap:read", "admin"}), subject="prodops-cli"
    )


def test_minting_refuses_what_verification_would_refuse() -> None:
    settings = make_settings()
    with pytest.raises(ValueError, match="workspace slug"):
        mint_token(settings, workspace="Acme", scopes=["admin"])
    with pytest.raises(ValueError, match="unknown scopes: feedback:delete"):
        mint_token(settings, workspace="acme", scopes=["feedback:delete"])
    with pytest.raises(ValueError, match="PRODOPS_JWT_SECRET"):
        mint_token(
            make_settings(jwt_secret=None, jwks_url="http://127.0.0.1:9/jwks"),
            workspace="acme",
            scopes=["admin"],
        )


@pytest.mark.parametrize("algorithms", [("none",), ("HS256", "NONE"), ("HS999",), ()])
def test_verifier_refuses_unsafe_algorithm_settings(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="PRODOPS_JWT_ALGORITHMS"):
        TokenVerifier(make_settings(jwt_algorithms=algorithms))


async def test_auth_error_detail_never_holds_the_token_or_secret() -> None:
    verifier = TokenVerifier(make_settings())
    for token in [hs256(claims(exp=1)), hs256(claims(), secret="y" * 40), "x" * 50, SECRET]:
        with pytest.raises(AuthError) as caught:
            await verifier.verify(token)
        assert token not in caught.value.detail
        assert SECRET not in caught.value.detail


def test_openapi_documents_the_bearer_scheme() -> None:
    openapi = build_app(make_settings()).openapi()
    [scheme] = openapi["components"]["securitySchemes"].values()
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert openapi["paths"]["/feedback"]["get"]["security"] == [{"HTTPBearer": []}]


# --- JWKS: RS256/ES256 keys served by a real HTTP server on 127.0.0.1 -----------------


class JwksServer:
    """Serves a fixed JWK set and counts how often it was fetched."""

    def __init__(self, keys: dict[str, PrivateKey]) -> None:
        body = json.dumps({"keys": [public_jwk(kid, key) for kid, key in keys.items()]}).encode()
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keeps pytest output free of access logs

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


def public_jwk(kid: str, key: PrivateKey) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return jwk | {"kid": kid, "use": "sig", "alg": "RS256"}
    return ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": kid, "use": "sig"}


@pytest.fixture(scope="module")
def signing_keys() -> dict[str, PrivateKey]:
    return {
        "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec-1": ec.generate_private_key(ec.SECP256R1()),
    }


@pytest.fixture(scope="module")
def jwks(signing_keys: dict[str, PrivateKey]) -> Iterator[JwksServer]:
    server = JwksServer(signing_keys)
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    server.thread.join()


@pytest.fixture
def jwks_app(jwks: JwksServer) -> FastAPI:
    return build_app(make_settings(jwt_secret=None, jwks_url=jwks.url))


def signed(key: PrivateKey, kid: str, payload: dict[str, Any] | None = None) -> str:
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    return jwt.encode(payload or claims(), key, algorithm=algorithm, headers={"kid": kid})


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
async def test_token_signed_by_a_jwks_key_is_accepted(
    jwks_app: FastAPI, signing_keys: dict[str, PrivateKey], kid: str
) -> None:
    token = signed(signing_keys[kid], kid)
    response = await call(jwks_app, {"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"workspace": "acme", "subject": "user-7"}


async def test_token_signed_by_another_rsa_key_is_unauthorized(jwks_app: FastAPI) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for kid, detail in [
        ("rsa-1", "the token signature does not match"),
        ("rsa-unknown", "no known signing key matches the token"),
    ]:
        token = signed(impostor, kid)
        response = await call(jwks_app, {"Authorization": f"Bearer {token}"})
        assert_unauthorized(response, token)
        assert response.json()["detail"] == detail


async def test_hs256_token_is_refused_when_keys_come_from_jwks(jwks_app: FastAPI) -> None:
    response = await call(jwks_app, {"Authorization": f"Bearer {hs256(claims())}"})
    assert_unauthorized(response)
    assert response.json()["detail"] == "the token signing algorithm is not accepted"


async def test_jwks_is_fetched_once_for_many_tokens(
    jwks: JwksServer, signing_keys: dict[str, PrivateKey]
) -> None:
    verifier = TokenVerifier(make_settings(jwt_secret=None, jwks_url=jwks.url))
    before = jwks.fetches
    for kid in ["rsa-1", "ec-1", "rsa-1"]:
        await verifier.verify(signed(signing_keys[kid], kid))
    assert jwks.fetches == before + 1


async def test_unreachable_jwks_is_service_unavailable(signing_keys: dict[str, PrivateKey]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = make_settings(jwt_secret=None, jwks_url=f"http://127.0.0.1:{closed_port}/jwks")
    token = signed(signing_keys["rsa-1"], "rsa-1")
    response = await call(build_app(settings), {"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.json()["detail"] == "the signing keys could not be fetched"
