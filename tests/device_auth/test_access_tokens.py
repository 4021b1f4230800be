"""Access tokens at a resource server (the shared verifier; here device-auth's own admin API): forged,
tampered, expired and misdirected tokens are refused with 401 and `WWW-Authenticate: Bearer`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from tests.support.auth_fixtures import ISSUER, RegisterDevice, claims_of


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def mint(app: FastAPI, **overrides: Any) -> str:
    """A token signed with the service's real key, so only the claim or header under test is wrong."""
    key = await app.state.keyring.active()
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "cli_test",
        "aud": "smartpos",
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "client_id": "cli_test",
        "role": "admin",
    }
    headers = {"kid": key.kid, "typ": "at+jwt"}
    headers.update(overrides.pop("headers", {}))
    claims.update(overrides)
    for name in [k for k, v in claims.items() if v is None]:
        del claims[name]
    return jwt.encode(claims, key.private_key, algorithm="ES256", headers=headers)


async def get_devices(auth: httpx.AsyncClient, token: str) -> httpx.Response:
    return await auth.get("/devices", headers={"Authorization": f"Bearer {token}"})


async def test_a_correctly_minted_token_is_accepted(auth: httpx.AsyncClient, auth_app: FastAPI) -> None:
    assert (await get_devices(auth, await mint(auth_app))).status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": "other-api"}, id="wrong-aud"),
        pytest.param({"aud": ["smartpos", "other"]}, id="multi-aud"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-iss"),
        pytest.param({"exp": int(time.time()) - 60}, id="expired"),
        pytest.param({"iat": int(time.time()) + 3600}, id="issued-in-future"),
        pytest.param({"role": "superuser"}, id="unknown-role"),
        pytest.param({"role": None}, id="no-role"),
        pytest.param({"role": "merchant"}, id="merchant-without-merchant-id"),
        pytest.param({"role": "device", "merchant_id": "mer_x"}, id="device-without-store"),
        pytest.param({"jti": None}, id="no-jti"),
        pytest.param({"headers": {"typ": "JWT"}}, id="typ-JWT-not-at+jwt"),
        pytest.param({"headers": {"kid": "unknown-kid"}}, id="unknown-kid"),
        pytest.param({"headers": {"crit": ["exp"]}}, id="crit-header"),
        pytest.param({"exp": float("nan")}, id="exp-NaN"),
        pytest.param({"exp": float("inf")}, id="exp-Infinity"),
        pytest.param({"iat": float("nan"), "exp": int(time.time()) + 365 * 86400}, id="iat-NaN"),
        pytest.param({"exp": time.time() + 60.5}, id="exp-fractional"),
        pytest.param({"exp": True}, id="exp-boolean"),
        pytest.param({"nbf": float("nan")}, id="nbf-NaN"),
        pytest.param({"sub": {"id": "cli_test"}}, id="sub-object"),
        pytest.param({"jti": 12345}, id="jti-number"),
    ],
)
async def test_misissued_access_tokens_are_refused(
    auth: httpx.AsyncClient, auth_app: FastAPI, overrides: dict[str, Any]
) -> None:
    response = await get_devices(auth, await mint(auth_app, **overrides))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_tampered_access_token_is_refused(auth: httpx.AsyncClient, auth_app: FastAPI) -> None:
    token = await mint(auth_app, role="merchant", merchant_id="mer_01M7ZA17RNWPP5DXHVJ28PZ197")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"  # privilege escalation attempt
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    assert (await get_devices(auth, forged)).status_code == 401


async def test_alg_none_and_hmac_access_tokens_are_refused(auth: httpx.AsyncClient, auth_app: FastAPI) -> None:
    jwks = (await auth.get("/.well-known/jwks.json")).json()
    kid = jwks["keys"][0]["kid"]
    claims = claims_of(await mint(auth_app))
    none_token = (
        f"{b64(json.dumps({'alg': 'none', 'typ': 'at+jwt', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}."
    )
    assert (await get_devices(auth, none_token)).status_code == 401
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    mac = hmac.new(json.dumps(jwks["keys"][0]).encode(), signing_input.encode(), hashlib.sha256).digest()
    hmac_token = f"{signing_input}.{b64(mac)}"
    assert (await get_devices(auth, hmac_token)).status_code == 401


async def test_a_token_signed_by_a_foreign_key_under_our_kid_is_refused(
    auth: httpx.AsyncClient, auth_app: FastAPI
) -> None:
    real = await auth_app.state.keyring.active()
    claims = claims_of(await mint(auth_app))
    forged = jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": real.kid, "typ": "at+jwt"}
    )
    assert (await get_devices(auth, forged)).status_code == 401


async def test_a_client_assertion_is_not_an_access_token(
    auth: httpx.AsyncClient, register_device: RegisterDevice
) -> None:
    device = await register_device()
    assertion = device.key.assertion(device.id, ISSUER)
    assert (await get_devices(auth, assertion)).status_code == 401


async def test_an_access_token_expires_with_the_injected_clock(
    auth: httpx.AsyncClient, auth_app: FastAPI, admin_token: str
) -> None:
    assert (await get_devices(auth, admin_token)).status_code == 200
    auth_app.state.clock.offset = 600 + 10  # the admin token lives 600 s (+5 s leeway)
    response = await get_devices(auth, admin_token)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic abc", "Token abc", "Bearer a.b"])
async def test_missing_or_malformed_authorization_is_401(auth: httpx.AsyncClient, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = await auth.get("/devices", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
