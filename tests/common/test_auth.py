"""Bearer tokens against the real app: every refusal with real signed tokens (keys made here,
served by a JWKS endpoint of this test), scopes, public reads, the dev issuer, CORS, and the
OpenAPI document's security."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app_lib.common.auth import DEV_ISSUER, DevIssuer, JwksKeys
from app_lib.common.config import Settings, describe_error
from app_lib.main import create_app
from tests.factories import passenger_body

ISSUER = "https://issuer.test"
AUDIENCE = "app-lib-test"
PASSENGERS = "/api/v1/passengers"
PROBLEM = "application/problem+json"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid, "alg": alg}


class Issuer:
    """A JWKS endpoint (and OIDC discovery document) on 127.0.0.1, whose keys a test changes."""

    def __init__(self) -> None:
        self.keys = [_jwk(RSA_KEY, "rsa-1", "RS256"), _jwk(EC_KEY, "ec-1", "ES256")]
        self.fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/jwks.json":
                    issuer.fetches += 1
                    body = json.dumps({"keys": issuer.keys}).encode()
                elif self.path == "/.well-known/openid-configuration":
                    body = json.dumps({"jwks_uri": f"{issuer.url}/jwks.json"}).encode()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    served = Issuer()
    yield served
    served.stop()


def jwt_settings(settings: Settings, **changes: Any) -> Settings:
    values = {"auth_mode": "jwt", "auth_issuer": ISSUER, "auth_audience": AUDIENCE, **changes}
    return settings.model_copy(update=values)


@pytest.fixture
def jwt_app(settings: Settings, issuer: Issuer, tables: str) -> FastAPI:
    issuer.keys = [_jwk(RSA_KEY, "rsa-1", "RS256"), _jwk(EC_KEY, "ec-1", "ES256")]
    return create_app(
        jwt_settings(settings, auth_jwks_url=f"{issuer.url}/jwks.json"), manage_database=False
    )


@pytest.fixture
def api(jwt_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(jwt_app) as client:
        yield client


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "scope": "passengers:write",
        "iat": now,
        "exp": now + 600,
    }
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


def sign(key: Any = RSA_KEY, kid: str | None = "rsa-1", alg: str = "RS256", **changes: Any) -> str:
    headers = {"kid": kid} if kid else {}
    return jwt.encode(claims(**changes), key, algorithm=alg, headers=headers)


def post(api: TestClient, token: str | None, path: str = PASSENGERS) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return api.post(path, json=passenger_body(), headers=headers)


def refused(response: Any, error: str = "invalid_token") -> bool:
    return (
        response.status_code == (401 if error == "invalid_token" else 403)
        and response.headers["content-type"] == PROBLEM
        and f'error="{error}"' in response.headers["WWW-Authenticate"]
    )


def test_valid_rs256_and_es256_tokens_write(api: TestClient) -> None:
    assert post(api, sign()).status_code == 201
    assert post(api, sign(EC_KEY, "ec-1", "ES256")).status_code == 201
    # Within the leeway (60 s), an expired token still passes.
    assert post(api, sign(exp=int(time.time()) - 30)).status_code == 201


def _unsigned() -> str:
    return jwt.encode(claims(), None, algorithm="none")


def _hs256_with_the_public_key() -> str:
    public = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    # PyJWT refuses to HMAC with a PEM public key, so the token is made by hand.
    import base64
    import hashlib
    import hmac

    def part(value: Any) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(claims())}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _tampered() -> str:
    head, _payload, signature = sign().split(".")
    import base64

    forged = dict(claims(), scope="admin")
    raw = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    return f"{head}.{raw}.{signature}"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: None, id="no token"),
        pytest.param(lambda: "not-a-jwt", id="garbage"),
        pytest.param(_unsigned, id="alg none"),
        pytest.param(_hs256_with_the_public_key, id="HS256 signed with the public key"),
        pytest.param(_tampered, id="tampered payload"),
        pytest.param(lambda: sign()[:-12], id="cut signature"),
        pytest.param(lambda: sign(exp=int(time.time()) - 120), id="expired"),
        pytest.param(lambda: sign(nbf=int(time.time()) + 300), id="nbf in the future"),
        pytest.param(lambda: sign(iss="https://evil.test"), id="wrong issuer"),
        pytest.param(lambda: sign(aud="someone-else"), id="wrong audience"),
        pytest.param(lambda: sign(exp=None), id="no exp"),
        pytest.param(lambda: sign(OTHER_KEY, "rsa-1"), id="signed by another key"),
        pytest.param(lambda: sign(EC_KEY, "rsa-1", "ES256"), id="key of another algorithm"),
    ],
)
def test_bad_tokens_are_401_with_invalid_token(api: TestClient, make: Any) -> None:
    response = post(api, make())
    assert refused(response), (response.status_code, response.text)
    assert "Traceback" not in response.text
    assert api.get(PASSENGERS).json()["items"] == []  # nothing written


def test_an_unknown_kid_refreshes_once_and_is_rate_limited(
    jwt_app: FastAPI, api: TestClient, issuer: Issuer
) -> None:
    now = [1000.0]
    keys: JwksKeys = jwt_app.state.auth.keys
    keys.clock = lambda: now[0]
    assert post(api, sign()).status_code == 201  # first fetch
    fetched = issuer.fetches
    unknown = sign(OTHER_KEY, "rsa-2")
    assert refused(post(api, unknown))
    assert issuer.fetches == fetched  # just fetched: an unknown kid waits for MIN_REFRESH
    now[0] += 31
    assert refused(post(api, unknown))
    assert issuer.fetches == fetched + 1  # one refresh for the unknown kid, still unknown
    issuer.keys = [*issuer.keys, _jwk(OTHER_KEY, "rsa-2", "RS256")]
    now[0] += 5  # within MIN_REFRESH: no refetch, still unknown
    assert refused(post(api, unknown))
    assert issuer.fetches == fetched + 1
    now[0] += 60  # the key rotated in: found after the next permitted refresh
    assert post(api, unknown).status_code == 201
    assert issuer.fetches == fetched + 2


def test_an_unreachable_jwks_endpoint_is_503_never_a_pass(settings: Settings, tables: str) -> None:
    app = create_app(
        jwt_settings(settings, auth_jwks_url="http://127.0.0.1:9/jwks.json"),
        manage_database=False,
    )
    with TestClient(app) as api:
        response = post(api, sign())
    assert response.status_code == 503 and response.headers["content-type"] == PROBLEM
    assert api.get(PASSENGERS).status_code == 200  # public reads need no keys


def test_keys_from_the_issuers_discovery_document(
    settings: Settings, issuer: Issuer, tables: str
) -> None:
    issuer.keys = [_jwk(RSA_KEY, "rsa-1", "RS256")]
    app = create_app(jwt_settings(settings, auth_issuer=issuer.url), manage_database=False)
    with TestClient(app) as api:
        assert post(api, sign(iss=issuer.url)).status_code == 201


def test_scopes(api: TestClient) -> None:
    assert api.get(PASSENGERS).status_code == 200  # public read, no token
    assert refused(api.get(PASSENGERS, headers={"Authorization": "Bearer junk"}))
    missing = post(api, sign(scope="students:write"))
    assert refused(missing, "insufficient_scope")
    assert 'scope="passengers:write"' in missing.headers["WWW-Authenticate"]
    assert missing.json()["scope"] == "passengers:write"
    assert refused(post(api, sign(scope="")), "insufficient_scope")
    assert post(api, sign(scope="students:read admin")).status_code == 201
    student = {"student_id": 1, "first_name": "A", "last_name": "B"}
    headers = {"Authorization": f"Bearer {sign()}"}
    assert api.post("/api/v1/students", json=student, headers=headers).status_code == 403
    headers = {"Authorization": f"Bearer {sign(scope='students:write')}"}
    assert api.post("/api/v1/students", json=student, headers=headers).status_code == 201


def test_the_authorization_header_is_read_as_http_bearer_reads_it(api: TestClient) -> None:
    """The scheme in any case; another scheme, or Bearer without a token, is no token at all
    (a public read passes, a write is a 401 that asks for one), never a refused token."""
    token = sign()
    assert post(api, None, PASSENGERS).status_code == 401
    for header in (f"bearer {token}", f"BEARER {token}"):
        assert (
            api.post(
                PASSENGERS, json=passenger_body(), headers={"Authorization": header}
            ).status_code
            == 201
        )
    for header in ("Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ", token):
        assert api.get(PASSENGERS, headers={"Authorization": header}).status_code == 200
        answer = api.post(PASSENGERS, json=passenger_body(), headers={"Authorization": header})
        assert answer.status_code == 401
        assert "needs a bearer token" in answer.json()["detail"]
    # One verification per request, where Authorize and the route's Caller both need it.
    auth = api.app.state.auth  # type: ignore[attr-defined]
    calls: list[str] = []
    verify = auth.verify
    auth.verify = lambda token: calls.append(token) or verify(token)
    try:
        headers = {"Authorization": f"Bearer {sign(scope='jobs:write')}"}
        assert api.get("/api/v1/jobs", headers=headers).status_code == 200
    finally:
        auth.verify = verify
    assert len(calls) == 1


def test_the_document_declares_the_bearer_scheme_per_operation(jwt_app: FastAPI) -> None:
    document = jwt_app.openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {**schemes["HTTPBearer"], "type": "http", "scheme": "bearer"}
    paths = document["paths"]
    assert "security" not in paths[PASSENGERS]["get"]
    assert "security" not in paths["/api/v1/passengers/{passenger_id}"]["get"]
    assert paths[PASSENGERS]["post"]["security"] == [{"HTTPBearer": []}]
    assert paths["/api/v1/passengers/{passenger_id}"]["delete"]["security"] == [{"HTTPBearer": []}]
    assert paths["/api/v1/jobs"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in paths["/health"]["get"]


def test_settings_refuse_what_cannot_be_safe() -> None:
    def make(**values: Any) -> Settings:
        return Settings(_env_file=None, **{"auth_mode": "", **values})  # type: ignore[call-arg]

    with pytest.raises(ValidationError) as caught:
        make(app_env="prod", auth_mode="off")
    assert describe_error(caught.value) == "AUTH_MODE=off is refused with APP_ENV=prod"
    with pytest.raises(ValidationError) as caught:
        make(dynamodb_host="", auth_issuer="x")  # AWS: jwt by default
    assert "AUTH_ISSUER and AUTH_AUDIENCE" in describe_error(caught.value)
    assert make(dynamodb_host="embedded").effective_auth_mode == "dev"
    assert make(dynamodb_host="", auth_issuer="x", auth_audience="y").effective_auth_mode == "jwt"


def test_the_dev_issuer_keeps_its_key_and_publishes_it(tmp_path: Path) -> None:
    first = DevIssuer(str(tmp_path), "app-lib")
    again = DevIssuer(str(tmp_path), "app-lib")
    assert first.kid == again.kid
    key_file = tmp_path / "auth" / "dev-signing-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    token = first.sign("bob", "admin", 60)
    decoded = jwt.decode(token, again.public.key, algorithms=["ES256"], audience="app-lib")
    assert decoded["iss"] == DEV_ISSUER and decoded["scope"] == "admin"
    assert first.jwks()["keys"][0]["kid"] == first.kid


def test_the_token_command_prints_a_token_the_app_accepts(
    settings: Settings, tables: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DATA_DIR": str(tmp_path), "AUTH_MODE": "dev"}
    command = [sys.executable, "-m", "app_lib", "token", "--sub", "alice"]
    done = subprocess.run(
        [*command, "--scope", "passengers:write"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert done.stdout == token + "\n" and token.count(".") == 2
    expired = subprocess.run(
        [*command, "--ttl", "-3600"], env=env, capture_output=True, text=True
    ).stdout.strip()
    app = create_app(
        settings.model_copy(update={"auth_mode": "dev", "data_dir": str(tmp_path)}),
        manage_database=False,
    )
    with TestClient(app) as api:
        assert post(api, token).status_code == 201
        assert refused(post(api, expired))
        keys = api.get("/.well-known/jwks.json").json()["keys"]
    assert [key["kid"] for key in keys] == [DevIssuer(str(tmp_path), "app-lib").kid]


def test_cors_answers_listed_origins_only(settings: Settings, tables: str) -> None:
    app = create_app(
        settings.model_copy(update={"cors_origins": "https://app.example, https://b.example"}),
        manage_database=False,
    )
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with TestClient(app) as api:
        allowed = api.options(PASSENGERS, headers={**preflight, "Origin": "https://app.example"})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-credentials" not in allowed.headers
        other = api.options(PASSENGERS, headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        read = api.get(PASSENGERS, headers={"Origin": "https://b.example"})
        assert read.headers["access-control-allow-origin"] == "https://b.example"
        assert "ETag" in read.headers["access-control-expose-headers"]
