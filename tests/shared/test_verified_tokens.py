"""A verified token is remembered until it expires, never beyond what verifying it again says."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from prodops.http import auth
from prodops.http.auth import AuthError, Principal, TokenVerifier
from prodops.runtime.settings import Settings

SECRET = "v" * 40
# auth.py accepts a token this long after its exp claim (clock skew between issuer and host).
LEEWAY_SECONDS = 30


def hs256(**overrides: Any) -> str:
    now = int(time.time())
    claims = {"ws": "acme", "scope": "feedback:read", "sub": "user-7", "iat": now, "exp": now + 300}
    return jwt.encode(claims | overrides, SECRET, algorithm="HS256")


class RotatingJwks:
    """A JWKS endpoint whose key set can be swapped, as an identity provider rotates keys."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"keys": [jwk(k, key) for k, key in outer.keys.items()]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keeps pytest output free of access logs

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks.json"


def jwk(kid: str, key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": kid, "use": "sig"}


def rs256(key: rsa.RSAPrivateKey, kid: str) -> str:
    claims = {"ws": "acme", "scope": "feedback:read", "exp": int(time.time()) + 300}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def jwks() -> Iterator[RotatingJwks]:
    endpoint = RotatingJwks()
    thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()
    thread.join()


async def test_token_verified_again_gives_the_same_principal() -> None:
    verifier = TokenVerifier(Settings(env="test", jwt_secret=SECRET))
    token = hs256()

    first, second = await verifier.verify(token), await verifier.verify(token)

    assert first == second == Principal("acme", frozenset({"feedback:read"}), "user-7")


async def test_remembered_token_is_refused_once_it_expires() -> None:
    verifier = TokenVerifier(Settings(env="test", jwt_secret=SECRET))
    # Still inside the clock-skew leeway for one to two more seconds.
    exp = int(time.time()) - LEEWAY_SECONDS + 2
    token = hs256(exp=exp)
    await verifier.verify(token)

    await asyncio.sleep(exp + LEEWAY_SECONDS - time.time() + 0.05)

    with pytest.raises(AuthError, match="the token has expired"):
        await verifier.verify(token)


async def test_refused_token_stays_refused() -> None:
    verifier = TokenVerifier(Settings(env="test", jwt_secret=SECRET))
    token = hs256(ws="Not A Slug")
    for _ in range(2):
        with pytest.raises(AuthError, match="not a workspace slug"):
            await verifier.verify(token)


async def test_withdrawn_jwks_key_is_refused_once_the_key_set_is_fetched_again(
    jwks: RotatingJwks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The key set is trusted this long before it is fetched again (five minutes in service).
    monkeypatch.setattr(auth, "_JWKS_CACHE_SECONDS", 1)
    old, new = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in "ab")
    jwks.keys = {"old": old}
    verifier = TokenVerifier(Settings(env="test", jwks_url=jwks.url))
    signed_by_old = rs256(old, "old")
    for _ in range(3):
        assert (await verifier.verify(signed_by_old)).workspace == "acme"

    jwks.keys = {"new": new}  # the provider withdraws the old key
    await asyncio.sleep(1.1)

    with pytest.raises(AuthError, match="no known signing key matches the token"):
        await verifier.verify(signed_by_old)
    assert (await verifier.verify(rs256(new, "new"))).workspace == "acme"
