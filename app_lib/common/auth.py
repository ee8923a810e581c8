"""Bearer tokens, verified in the app itself (also behind API Gateway: defence in depth).

AUTH_MODE:
- `jwt`: tokens of AUTH_ISSUER for AUTH_AUDIENCE, RS256 or ES256, keys from AUTH_JWKS_URL or the
  issuer's OIDC discovery document, cached (JWKS_TTL) and refreshed once for an unknown `kid`
  (at most every MIN_REFRESH seconds). An unreachable key endpoint is a 503, never a pass.
- `dev`: the app is its own issuer. It signs with an ES256 key kept in DATA_DIR/auth (created on
  first use, never committed), publishes it at /.well-known/jwks.json, and
  `python -m app_lib token --sub alice --scope passengers:write` prints a token.
- `off`: no checks; every caller is an anonymous admin. Refused with APP_ENV=prod.

Scopes (the `scope` claim, space-separated): `<feature>:write` for a feature's writes, `admin`
for everything. A feature's router says what it needs: `dependencies=[Authorize("x:write")]`
(reads public) or `Authorize("jobs:write", public_reads=False)`; a route that needs the caller
(ownership) takes `caller: Caller`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import iter_route_contexts

from app_lib.common.config import Settings
from app_lib.common.errors import (
    ForbiddenError,
    ServiceUnavailableError,
    UnauthorizedError,
)
from app_lib.common.routing import GatedRouter

ALGORITHMS = ("RS256", "ES256")
LEEWAY_SECONDS = 60
JWKS_TTL = 300.0
MIN_REFRESH = 30.0
FETCH_TIMEOUT = 3.0
DEV_ISSUER = "urn:app-lib:dev"
DEV_AUDIENCE = "app-lib"  # with AUTH_MODE=dev and no AUTH_AUDIENCE
DEV_KEY_FILE = Path("auth") / "dev-signing-key.pem"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """Who calls: the token's `sub` and scopes."""

    sub: str
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def may(self, scope: str) -> bool:
        return self.is_admin or scope in self.scopes


# AUTH_MODE=off: nobody is checked, so everybody may do everything.
ANONYMOUS_ADMIN = Principal("anonymous", frozenset({"admin"}))


def _invalid(reason: str) -> UnauthorizedError:
    return UnauthorizedError(f"the bearer token was refused: {reason}")


# ----- keys --------------------------------------------------------------------------------------


class JwksKeys:
    """The signing keys of an issuer: its JWKS, fetched over HTTP(S), cached for `ttl` seconds;
    an unknown `kid` fetches again, at most once every `min_refresh` seconds (so a stream of
    forged kids cannot make the app hammer the issuer)."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str = "",
        *,
        ttl: float = JWKS_TTL,
        min_refresh: float = MIN_REFRESH,
        timeout: float = FETCH_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.ttl, self.min_refresh, self.timeout, self.clock = ttl, min_refresh, timeout, clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str | None) -> jwt.PyJWK:
        with self._lock:
            now = self.clock()
            stale = self._fetched_at is None or now - self._fetched_at > self.ttl
            unknown = self._find(kid) is None
            may_refresh = self._fetched_at is None or now - self._fetched_at >= self.min_refresh
            if stale or (unknown and may_refresh):
                self._refresh(now)
            found = self._find(kid)
        if found is None:
            raise _invalid("its key is not one of the issuer's")
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        url = self.jwks_url or self._discover()
        document = self._get_json(url)
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key of a type or algorithm we do not accept
            if key.algorithm_name in ALGORITHMS:
                keys[str(entry.get("kid", ""))] = key
        self._keys, self._fetched_at = keys, now

    def _discover(self) -> str:
        document = self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        url = document.get("jwks_uri") if isinstance(document, dict) else None
        if not isinstance(url, str):
            raise ServiceUnavailableError("the token issuer's discovery document has no jwks_uri")
        self.jwks_url = url
        return url

    def _get_json(self, url: str) -> Any:
        if not url.startswith(("https://", "http://")):
            raise ServiceUnavailableError("the token issuer's key URL is not http(s)")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as answer:  # noqa: S310
                return json.loads(answer.read(1_000_000))
        except (OSError, ValueError, urllib.error.URLError) as error:
            raise ServiceUnavailableError("the token issuer's keys cannot be fetched") from error


class DevIssuer:
    """AUTH_MODE=dev: an ES256 key of the app's own, in DATA_DIR (or in memory when DATA_DIR is
    empty: then only this process can make tokens, e.g. tests)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> DevIssuer:
        return cls(settings.data_dir, settings.auth_audience or DEV_AUDIENCE)

    def __init__(self, data_dir: str, audience: str) -> None:
        self.audience = audience
        self.private_key = _load_or_create_key(Path(data_dir) / DEV_KEY_FILE if data_dir else None)
        public = self.private_key.public_key()
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).decode().rstrip("=")
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
        self.jwk = {**jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}
        self.public = jwt.PyJWK(self.jwk)

    def key(self, kid: str | None) -> jwt.PyJWK:
        if kid not in (None, self.kid):
            raise _invalid("its key is not one of the issuer's")
        return self.public

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}

    def sign(self, sub: str, scopes: str = "", ttl: int = 3600) -> str:
        """A token for `sub` with `scopes`, valid `ttl` seconds (negative: already expired)."""
        now = int(time.time())
        claims = {
            "iss": DEV_ISSUER,
            "aud": self.audience,
            "sub": sub,
            "scope": scopes,
            "iat": min(now, now + ttl),
            "exp": now + ttl,
        }
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers={"kid": self.kid})


def _load_or_create_key(path: Path | None) -> ec.EllipticCurvePrivateKey:
    if path is not None and path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(loaded, ec.EllipticCurvePrivateKey):
            return loaded
    key = ec.generate_private_key(ec.SECP256R1())
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Only this user may read it; written once, under a temporary name, then renamed.
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        temporary.replace(path)
    return key


# ----- verification ------------------------------------------------------------------------------


class Auth:
    """The app's token policy, built once from the settings (`app.state.auth`)."""

    def __init__(self, settings: Settings) -> None:
        self.mode = settings.effective_auth_mode
        self.dev: DevIssuer | None = None
        self.keys: JwksKeys | DevIssuer | None = None
        self.issuer = settings.auth_issuer
        # One audience or several (comma-separated: the stack's JwtAudience list); a token
        # must name one of them.
        audiences = [part.strip() for part in settings.auth_audience.split(",") if part.strip()]
        self.audience = audiences or [DEV_AUDIENCE]
        if self.mode == "dev":
            self.dev = DevIssuer.from_settings(settings)
            self.keys, self.issuer = self.dev, DEV_ISSUER
        elif self.mode == "jwt":
            self.keys = JwksKeys(settings.auth_issuer, settings.auth_jwks_url)

    def verify(self, token: str) -> Principal:
        """The caller of a token; raises UnauthorizedError (401) for any token not ours, and
        ServiceUnavailableError (503) when the issuer's keys cannot be fetched."""
        if self.keys is None:
            return ANONYMOUS_ADMIN
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("it is not a JWT") from None
        algorithm = header.get("alg")
        # Only asymmetric algorithms, fixed here: never `none`, never HS256 (which would let a
        # token "signed" with the public key pass).
        if algorithm not in ALGORITHMS:
            raise _invalid(f"algorithm {str(algorithm)[:16]!r} is not accepted")
        kid = header.get("kid")
        key = self.keys.key(kid if isinstance(kid, str) else None)
        if key.algorithm_name != algorithm:
            raise _invalid("its algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("it has expired") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("it is not valid yet") from None
        except jwt.PyJWTError as error:
            raise _invalid(_reason(error)) from None
        return Principal(str(claims["sub"]), _scopes(claims))


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(error, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"no {error.claim!r} claim"
    if isinstance(error, jwt.InvalidSignatureError):
        return "bad signature"
    return "malformed"


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope", claims.get("scp", ""))
    if isinstance(scope, list):
        return frozenset(str(part) for part in scope)
    return frozenset(str(scope).split())


# ----- dependencies ------------------------------------------------------------------------------

# The scheme as the document declares it (`install_auth`). The dependencies below read the
# header themselves rather than through FastAPI's `Security(HTTPBearer())`: every dependency is a
# node FastAPI resolves on each request (a security scheme costs more: scopes are worked out per
# request), and the caller is needed on every route.
BEARER_SCHEME = "HTTPBearer"
_BEARER_DOCUMENT = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A JWT of the configured issuer. With AUTH_MODE=dev: "
    "`python -m app_lib token --sub alice --scope passengers:write`.",
}
_UNRESOLVED = object()
_CALLER_KEY = "app_lib.caller"


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>` (scheme in any case); None without one, as
    FastAPI's HTTPBearer(auto_error=False) reads it."""
    authorization = request.headers.get("authorization")
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


async def resolve_caller(request: Request) -> Principal | None:
    """The verified caller, None without a token; a token that fails is a 401 even where none
    is needed (a client should learn its token is bad). Worked out once per request."""
    state = request.scope.setdefault("state", {})
    found = state.get(_CALLER_KEY, _UNRESOLVED)
    if found is not _UNRESOLVED:
        return found  # type: ignore[no-any-return]
    auth: Auth = request.app.state.auth
    caller: Principal | None
    if auth.mode == "off":
        caller = ANONYMOUS_ADMIN
    else:
        token = bearer_token(request)
        # Verifying may fetch the JWKS over the network: off the event loop. Without a token
        # (public reads) there is no I/O, hence no threadpool hop.
        caller = None if token is None else await run_in_threadpool(auth.verify, token)
    state[_CALLER_KEY] = caller
    return caller


async def current_caller(request: Request) -> Principal:
    caller = await resolve_caller(request)
    if caller is None:
        raise UnauthorizedError("this route needs a bearer token (Authorization: Bearer ...)")
    return caller


# A route parameter: the verified caller (401 without a valid token).
Caller = Annotated[Principal, Depends(current_caller)]


class Authorize:
    """A router's requirement: `APIRouter(dependencies=[Depends(Authorize("x:write"))])`.
    Writes need `scope` (or `admin`; None: any valid token, the routes then check ownership
    with `Caller`); reads are public unless `public_reads=False`, where they need a token."""

    def __init__(self, scope: str | None, *, public_reads: bool = True) -> None:
        self.scope = scope
        self.public_reads = public_reads

    async def __call__(self, request: Request) -> None:
        caller = await resolve_caller(request)
        if request.method in READ_METHODS:
            if not self.public_reads and caller is None:
                raise UnauthorizedError("this route needs a bearer token")
            return
        if caller is None:
            raise UnauthorizedError("this route needs a bearer token")
        if self.scope is not None and not caller.may(self.scope):
            raise ForbiddenError(f"this write needs the scope {self.scope!r}", scope=self.scope)


def public_reads(scope: str) -> list[Any]:
    """A router's dependencies when its reads are public and its writes need `scope`:
    `APIRouter(..., dependencies=public_reads("x:write"))`."""
    return [Depends(Authorize(scope))]


# ----- the app -----------------------------------------------------------------------------------


def install_auth(app: FastAPI, settings: Settings) -> None:
    """The token policy (`app.state.auth`), the dev issuer's JWKS, and an OpenAPI document that
    says which operations need a token (public reads list none)."""
    auth = Auth(settings)
    app.state.auth = auth
    if auth.dev is not None:
        issuer = auth.dev
        router = GatedRouter(tags=["auth"])

        @router.get("/.well-known/jwks.json", summary="The dev issuer's public keys")
        async def dev_jwks() -> dict[str, Any]:
            """AUTH_MODE=dev only: the key that verifies the app's own tokens."""
            return issuer.jwks()

        app.include_router(router)
    inner = app.openapi

    def openapi() -> dict[str, Any]:
        schema = inner()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[BEARER_SCHEME] = dict(_BEARER_DOCUMENT)
        # Operations behind Authorize or taking the Caller need the bearer token, but the
        # reads of a router with public reads.
        for route in iter_route_contexts(app.routes):
            takes_caller = _takes_caller(route)
            if not takes_caller and not _authorizers(route):
                continue
            path = schema["paths"].get(route.path_format or "", {})
            public = set() if takes_caller else _public_methods(route)
            for method in route.methods or ():
                operation = path.get(method.lower())
                if operation is None:
                    continue
                # A bad token is a 401 even on a public read; only a need can be a 403.
                statuses = ["401"] if method in public else ["401", "403"]
                _document_refusals(operation["responses"], statuses)
                if method not in public:
                    operation["security"] = [{BEARER_SCHEME: []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_REFUSALS = {
    "401": ("No valid bearer token", 'Bearer error="invalid_token", error_description="..."'),
    "403": (
        "The token lacks the scope (or ownership) this needs",
        'Bearer error="insufficient_scope"',
    ),
}


def _document_refusals(responses: dict[str, Any], statuses: list[str]) -> None:
    """401 (and 403) of an operation behind Authorize: problem+json, with the challenge."""
    for status in statuses:
        description, example = _REFUSALS[status]
        if status in responses:
            continue
        headers = {
            name: header
            for name, header in responses.get("503", {}).get("headers", {}).items()
            if name.lower() != "retry-after"
        }
        headers["WWW-Authenticate"] = {
            "description": "RFC 6750's challenge: why the token was refused",
            "schema": {"type": "string", "example": example},
        }
        responses[status] = {
            "description": description,
            "headers": headers,
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }


def _authorizers(route: Any) -> list[Authorize]:
    dependant = getattr(route, "dependant", None)
    calls = [dependency.call for dependency in getattr(dependant, "dependencies", ())]
    return [call for call in calls if isinstance(call, Authorize)]


def _takes_caller(route: Any) -> bool:
    """Whether `route` (or a dependency of it, at any depth) takes the `Caller`."""
    pending = list(getattr(getattr(route, "dependant", None), "dependencies", ()))
    while pending:
        dependency = pending.pop()
        if dependency.call is current_caller:
            return True
        pending.extend(dependency.dependencies)
    return False


def _public_methods(route: Any) -> set[str]:
    """The methods of `route` that need no token: reads of a router with public reads."""
    authorizers = _authorizers(route)
    if not authorizers or not all(a.public_reads for a in authorizers):
        return set()
    return set(route.methods or ()) & READ_METHODS
