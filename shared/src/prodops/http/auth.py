"""Bearer JWT authentication: turn a token into a Principal and guard routes by scope."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt.algorithms import get_default_algorithms

from prodops.http.problems import ProblemError
from prodops.runtime.settings import Settings

SCOPES = frozenset(
    {"feedback:read", "feedback:write", "roadmap:read", "roadmap:write", "insights:read", "admin"}
)
WORKSPACE_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")

_HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
_JWKS_DEFAULT_ALGORITHMS = ("RS256", "ES256")
_REQUIRED_CLAIMS = ["exp", "ws", "scope"]
# Tolerates small clock drift between the identity provider and this host.
_CLOCK_SKEW_SECONDS = 30
_JWKS_CACHE_SECONDS = 300
# A JWKS fetch sits in the request path, so it must fail fast rather than hang requests.
_JWKS_TIMEOUT_SECONDS = 5
# Verified tokens remembered per process: enough for every caller of a busy replica.
_VERIFIED_TOKENS_KEPT = 10_000
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="prodops"'}

_DETAILS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is meant for another audience"),
    (jwt.InvalidIssuerError, "the token comes from an unexpected issuer"),
    (jwt.InvalidSignatureError, "the token signature does not match"),
    (jwt.InvalidAlgorithmError, "the token signing algorithm is not accepted"),
    (jwt.PyJWKClientError, "no known signing key matches the token"),
    (jwt.PyJWKSetError, "no known signing key matches the token"),
    (jwt.DecodeError, "the token is malformed"),
)


class AuthError(Exception):
    """A token was refused; `detail` is safe to show the caller (never the token or a key)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SigningKeysUnavailableError(AuthError):
    """The JWKS endpoint could not be reached, so no token can be checked right now."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the workspace every query is scoped by, and what they may do."""

    workspace: str
    scopes: frozenset[str]
    subject: str | None


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token that passed verification, and until when that verdict holds."""

    principal: Principal
    expires_at: float  # the exp claim plus the clock-skew leeway: when PyJWT starts refusing it
    signing_keys: object | None  # the JWK set that held its key; None for the HMAC secret


# Stands for "a JWK set fetched while the token was checked": which one verified it is unknown.
_KEYS_CHANGED = object()


class TokenVerifier:
    """Checks bearer tokens against the keys, algorithms and claims the settings require.

    A token that passes is remembered (by its exact text) until it expires, so a caller's next
    requests skip the signature check. Nothing else decides its fate while it lives: the HMAC
    secret is fixed, and a JWKS-signed token is remembered only while the very key set that
    verified it is still the current, unexpired one, so a withdrawn key is refused as soon as
    the key set is fetched again, as before. Refused tokens are never remembered.
    """

    def __init__(self, settings: Settings) -> None:
        secret = settings.jwt_secret
        self._secret = secret.get_secret_value() if secret is not None else None
        self._jwks = _jwks_client(settings.jwks_url) if settings.jwks_url else None
        self._algorithms = _allowed_algorithms(settings)
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        """Return the token's principal, or raise AuthError saying why it was refused."""
        known = self.remembered(token)
        if known is not None:
            return known
        try:
            claims, signing_keys = await self._decode(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise SigningKeysUnavailableError("the signing keys could not be fetched") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(_describe(exc)) from exc
        principal = _principal(claims)
        if signing_keys is not _KEYS_CHANGED:
            # PyJWT has accepted `exp` as an integer; it refuses once exp <= now - leeway.
            expires_at = int(claims["exp"]) + _CLOCK_SKEW_SECONDS
            self._verified[token] = _Verified(principal, expires_at, signing_keys)
            if len(self._verified) > _VERIFIED_TOKENS_KEPT:
                self._verified.popitem(last=False)
        return principal

    def remembered(self, token: str) -> Principal | None:
        """The principal of a token verified earlier and still good; None means verify it."""
        verified = self._verified.get(token)
        if verified is None:
            return None
        keys = verified.signing_keys
        withdrawn = keys is not None and keys is not self._signing_keys()
        if withdrawn or time.time() >= verified.expires_at:
            # Verified again from scratch, so the caller hears exactly why it is refused now.
            del self._verified[token]
            return None
        self._verified.move_to_end(token)
        return verified.principal

    def _signing_keys(self) -> object | None:
        """The JWK set PyJWKClient would use now without fetching, or None."""
        cache = self._jwks.jwk_set_cache if self._jwks is not None else None
        if cache is None or cache.is_expired():
            return None
        return cache.jwk_set_with_timestamp

    async def _decode(self, token: str) -> tuple[dict[str, Any], object | None]:
        key, signing_keys = await self._key_for(token)
        claims = jwt.decode(
            token,
            key,
            algorithms=self._algorithms,
            audience=self._audience,
            issuer=self._issuer,
            leeway=_CLOCK_SKEW_SECONDS,
            options={"require": _REQUIRED_CLAIMS, "verify_aud": self._audience is not None},
        )
        return claims, signing_keys

    async def _key_for(self, token: str) -> tuple[str | jwt.PyJWK, object | None]:
        algorithm = jwt.get_unverified_header(token).get("alg")
        # Each algorithm family has its own key source, so a public JWKS key can never be
        # used as an HMAC secret (the classic algorithm-confusion attack).
        if algorithm not in self._algorithms:
            raise AuthError("the token signing algorithm is not accepted")
        if algorithm in _HMAC_ALGORITHMS:
            if self._secret is None:
                raise AuthError("the token signing algorithm is not accepted")
            return self._secret, None
        if self._jwks is None:
            raise AuthError("the token signing algorithm is not accepted")
        before = self._signing_keys()
        # PyJWKClient fetches with blocking urllib; a worker thread keeps the event loop free.
        key = await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)
        # Unchanged and unexpired throughout, so the key came from exactly that set.
        unchanged = before is not None and before is self._signing_keys()
        return key, before if unchanged else _KEYS_CHANGED


def _jwks_client(url: str) -> jwt.PyJWKClient:
    # Only the whole key set is cached, with a lifespan: PyJWT's per-kid cache never
    # expires, so it would keep accepting a key the provider has withdrawn.
    return jwt.PyJWKClient(
        url, cache_jwk_set=True, lifespan=_JWKS_CACHE_SECONDS, timeout=_JWKS_TIMEOUT_SECONDS
    )


def _allowed_algorithms(settings: Settings) -> tuple[str, ...]:
    algorithms = settings.jwt_algorithms
    if settings.jwks_url and algorithms == Settings.model_fields["jwt_algorithms"].default:
        algorithms = _JWKS_DEFAULT_ALGORITHMS
    # "none" means unsigned: accepting it would let anyone write their own token.
    if not algorithms or any(name.lower() == "none" for name in algorithms):
        raise ValueError("PRODOPS_JWT_ALGORITHMS must name signing algorithms, never 'none'")
    unknown = sorted(set(algorithms) - set(get_default_algorithms()))
    if unknown:
        raise ValueError(f"PRODOPS_JWT_ALGORITHMS has unknown algorithms: {', '.join(unknown)}")
    return tuple(algorithms)


def _describe(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the {exc.claim} claim"
    return next((text for kind, text in _DETAILS if isinstance(exc, kind)), "the token is invalid")


def _principal(claims: dict[str, Any]) -> Principal:
    workspace = claims["ws"]
    if not isinstance(workspace, str) or not WORKSPACE_SLUG.fullmatch(workspace):
        raise AuthError("the token ws claim is not a workspace slug")
    scope = claims["scope"]
    if not isinstance(scope, str):
        raise AuthError("the token scope claim must be a space-separated string")
    # Scopes meant for other systems (an IdP may add "openid" and the like) grant nothing here.
    scopes = frozenset(scope.split()) & SCOPES
    # PyJWT has already refused a `sub` that is present but not a string.
    return Principal(workspace=workspace, scopes=scopes, subject=claims.get("sub"))


def mint_token(
    settings: Settings,
    *,
    workspace: str,
    scopes: Sequence[str],
    ttl_seconds: int = 3600,
    subject: str = "prodops-cli",
) -> str:
    """Sign an HS256 token with the configured shared secret, for local use."""
    if settings.jwt_secret is None:
        raise ValueError(
            "minting needs PRODOPS_JWT_SECRET; with only PRODOPS_JWKS_URL set, tokens must come "
            "from the identity provider that holds those keys"
        )
    if not WORKSPACE_SLUG.fullmatch(workspace):
        raise ValueError(f"{workspace!r} is not a workspace slug")
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)}")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    now = int(time.time())
    claims: dict[str, Any] = {
        "ws": workspace,
        "scope": " ".join(sorted(set(scopes))),
        "sub": subject,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    claims |= {"aud": settings.jwt_audience} if settings.jwt_audience else {}
    claims |= {"iss": settings.jwt_issuer} if settings.jwt_issuer else {}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A prodops JWT whose `ws` claim names the workspace and `scope` lists scopes.",
)


def install_auth(app: FastAPI, settings: Settings) -> TokenVerifier:
    """Build the token verifier and put it where the `require` dependencies look for it."""
    verifier = TokenVerifier(settings)
    app.state.token_verifier = verifier
    return verifier


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    verifier = _verifier(request)
    if credentials is None:
        raise _unauthorized("send the header Authorization: Bearer <token>")
    try:
        return await verifier.verify(credentials.credentials)
    except SigningKeysUnavailableError as exc:
        # Not the caller's fault: a 401 would make clients throw away a good token.
        raise ProblemError(
            status=503,
            title="Service Unavailable",
            detail=exc.detail,
            headers={"Retry-After": "30"},
        ) from exc
    except AuthError as exc:
        raise _unauthorized(exc.detail) from exc


def _verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise RuntimeError("install_auth(app, settings) must run before routes require scopes")
    return verifier


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(status=401, title="Unauthorized", detail=detail, headers=dict(_CHALLENGE))


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Return a dependency admitting only bearer tokens that carry `scope` (admin implies none)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def require_scope(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        principal = await _authenticate(request, credentials)
        if scope not in principal.scopes:
            raise ProblemError(
                status=403, title="Forbidden", detail=f"this token lacks the scope {scope}"
            )
        return principal

    return require_scope


FeedbackRead = Annotated[Principal, Depends(require("feedback:read"))]
FeedbackWrite = Annotated[Principal, Depends(require("feedback:write"))]
RoadmapRead = Annotated[Principal, Depends(require("roadmap:read"))]
RoadmapWrite = Annotated[Principal, Depends(require("roadmap:write"))]
InsightsRead = Annotated[Principal, Depends(require("insights:read"))]
Admin = Annotated[Principal, Depends(require("admin"))]
