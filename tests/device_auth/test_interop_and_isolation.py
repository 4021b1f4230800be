from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from joserfc.jwk import ECKey

from device_auth.main import build_app
from smartpos_shared.ids import new_id
from tests.support.apps import running
from tests.support.auth_fixtures import (
    ISSUER,
    RegisterDevice,
    announce_store,
    auth_settings,
    basic,
    claims_of,
    post_device,
)
from tests.support.databases import TestDatabase
from tests.support.processes import PrivateRedis


async def test_authlib_private_key_jwt_client_obtains_a_token(
    auth: httpx.AsyncClient, register_device: RegisterDevice
) -> None:
    """A third-party OAuth client library, configured as its docs say, against our token endpoint."""
    device = await register_device()
    pem = device.key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Authlib puts `token_endpoint` in `aud`: our issuer identifier is what we require (rfc7523bis, FAPI 2.0).
    # Its default assertion lifetime is an hour; ours allows 60 s.
    method = PrivateKeyJWT(
        token_endpoint=ISSUER, claims={"exp": int(time.time()) + 50}, alg="ES256", headers={"kid": device.key.kid}
    )
    async with AsyncOAuth2Client(
        client_id=device.id,
        client_secret=ECKey.import_key(pem),
        token_endpoint_auth_method=method,
        transport=auth._transport,
        base_url=ISSUER,
    ) as client:
        token = await client.fetch_token(f"{ISSUER}/oauth/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["expires_in"] == 120
    assert claims_of(token["access_token"])["sub"] == device.id


async def test_token_endpoint_fails_closed_when_the_replay_store_is_down(
    databases: dict[str, TestDatabase], register_device: RegisterDevice
) -> None:
    device = await register_device()  # registered through the main app (same database)
    redis = PrivateRedis().start()
    app = build_app(auth_settings(databases, redis_url=redis.url))
    try:
        async with running(app, ISSUER) as client:
            assert (await client.post("/oauth/token", data=device.form())).status_code == 200
            redis.stop()
            response = await client.post("/oauth/token", data=device.form())
            assert response.status_code == 503
            assert response.json()["error"] == "temporarily_unavailable"
            assert "access_token" not in response.text
            assert response.headers["cache-control"] == "no-store"
    finally:
        redis.stop()


@pytest.fixture
async def merchant_tokens(auth: httpx.AsyncClient, admin_token: str) -> dict[str, tuple[str, str]]:
    tokens = {}
    for name in ("a", "b"):
        merchant_id = new_id("mer")
        client = (
            await auth.post(
                "/clients",
                json={"merchant_id": merchant_id, "name": name},
                headers={"Authorization": f"Bearer {admin_token}"},
            )
        ).json()
        token = (
            await auth.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                headers=basic(client["client_id"], client["client_secret"]),
            )
        ).json()["access_token"]
        tokens[name] = (merchant_id, token)
    return tokens


async def test_merchants_only_see_and_manage_their_own_devices(
    auth: httpx.AsyncClient, merchant_tokens: dict[str, tuple[str, str]]
) -> None:
    from tests.support.keys import DeviceKey

    (merchant_a, token_a), (merchant_b, token_b) = merchant_tokens["a"], merchant_tokens["b"]
    store_a, store_b = new_id("sto"), new_id("sto")
    await announce_store(merchant_a, store_a)
    await announce_store(merchant_b, store_b)
    created = await post_device(
        auth, token_a, {"store_id": store_a, "name": "till", "jwks": {"keys": [DeviceKey().public_jwk]}}
    )
    assert created.status_code == 201 and created.json()["merchant_id"] == merchant_a
    device_id = created.json()["id"]
    as_b = {"Authorization": f"Bearer {token_b}"}
    assert (await auth.get(f"/devices/{device_id}", headers=as_b)).status_code == 404
    assert (
        await auth.put(f"/devices/{device_id}/jwks", json={"keys": [DeviceKey().public_jwk]}, headers=as_b)
    ).status_code == 404
    assert (await auth.post(f"/devices/{device_id}/revoke", headers=as_b)).status_code == 404
    assert device_id not in {d["id"] for d in (await auth.get("/devices", headers=as_b)).json()["items"]}
    as_a = {"Authorization": f"Bearer {token_a}"}
    assert (await auth.get(f"/devices/{device_id}", headers=as_a)).status_code == 200
    assert [d["id"] for d in (await auth.get("/devices", headers=as_a)).json()["items"]] == [device_id]
    # A merchant cannot register a device under another merchant, nor for another merchant's store.
    foreign = await auth.post(
        "/devices",
        json={"merchant_id": merchant_b, "store_id": store_b, "name": "x", "jwks": {"keys": [DeviceKey().public_jwk]}},
        headers=as_a,
    )
    assert foreign.status_code == 404
    await post_device(
        auth, token_b, {"store_id": store_b, "name": "b's own", "jwks": {"keys": [DeviceKey().public_jwk]}}
    )
    into_b = await auth.post(
        "/devices", json={"store_id": store_b, "name": "x", "jwks": {"keys": [DeviceKey().public_jwk]}}, headers=as_a
    )
    assert into_b.status_code == 404 and into_b.json()["type"].endswith("/store_not_found")
    # Only admins create clients.
    assert (await auth.post("/clients", json={"merchant_id": merchant_a, "name": "x"}, headers=as_a)).status_code == 403


async def test_device_list_is_keyset_paginated_newest_first(
    auth: httpx.AsyncClient, admin_token: str, register_device: RegisterDevice
) -> None:
    merchant_id = new_id("mer")
    ids = [(await register_device(merchant_id=merchant_id)).id for _ in range(5)]
    headers = {"Authorization": f"Bearer {admin_token}"}
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await auth.get("/devices", params=params, headers=headers)).json()
        seen += [d["id"] for d in page["items"] if d["merchant_id"] == merchant_id]
        cursor = page["next_cursor"]
        if cursor is None or len(seen) == 5:
            break
    assert seen == sorted(ids, reverse=True)
    assert (await auth.get("/devices", params={"cursor": "!!bad"}, headers=headers)).status_code == 422
    assert (await auth.get("/devices", params={"limit": 0}, headers=headers)).status_code == 422


@pytest.mark.parametrize(
    "jwks",
    [
        {"keys": []},
        {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "a"}]},
        {"keys": [{"kty": "EC", "crv": "P-256", "x": "bad", "y": "bad", "kid": "a"}]},
        {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "small"}]},
        "not-an-object",
    ],
    ids=["empty", "symmetric", "garbage-ec", "tiny-rsa", "wrong-type"],
)
async def test_device_registration_refuses_unusable_keys(
    auth: httpx.AsyncClient, admin_token: str, jwks: object
) -> None:
    response = await auth.post(
        "/devices",
        json={"merchant_id": new_id("mer"), "store_id": new_id("sto"), "name": "x", "jwks": jwks},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_device_registration_refuses_private_keys(auth: httpx.AsyncClient, admin_token: str) -> None:
    import json as _json

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    private_jwk = _json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))
    private_jwk["kid"] = "oops"
    response = await auth.post(
        "/devices",
        json={"merchant_id": new_id("mer"), "store_id": new_id("sto"), "name": "x", "jwks": {"keys": [private_jwk]}},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 422
    assert "private" in response.text


async def test_devices_are_registered_only_for_stores_the_merchant_owns(
    auth: httpx.AsyncClient, admin_token: str
) -> None:
    """device-auth learns stores from the portal's store.created events (here published as the portal would)."""
    from tests.support.keys import DeviceKey

    owner, other = new_id("mer"), new_id("mer")
    store = new_id("sto")
    await announce_store(owner, store)

    def body(merchant_id: str, store_id: str) -> dict[str, object]:
        return {
            "merchant_id": merchant_id,
            "store_id": store_id,
            "name": "till",
            "jwks": {"keys": [DeviceKey().public_jwk]},
        }

    assert (await post_device(auth, admin_token, body(owner, store))).status_code == 201
    admin = {"Authorization": f"Bearer {admin_token}"}
    for merchant_id, store_id in ((other, store), (owner, new_id("sto"))):  # foreign store, unknown store
        response = await auth.post("/devices", json=body(merchant_id, store_id), headers=admin)
        assert response.status_code == 404, response.text
        assert response.json()["type"].endswith("/store_not_found")


async def test_the_store_projector_recreates_its_consumer_when_it_disappears(
    auth_app: FastAPI, admin_token: str, auth: httpx.AsyncClient
) -> None:
    """An operator deleted it, a cluster lost it, or it expired while the process was paused: stores are still
    learnt afterwards."""
    import nats

    from smartpos_shared.events import STREAM
    from tests.support.environment import nats_url
    from tests.support.keys import DeviceKey

    client = await nats.connect(nats_url())
    try:
        await client.jetstream().delete_consumer(STREAM, auth_app.state.settings.store_projector_durable)
    finally:
        await client.close()
    await asyncio.sleep(6)  # past the projector's idle check
    merchant_id, store_id = new_id("mer"), new_id("sto")
    await announce_store(merchant_id, store_id)
    body = {"merchant_id": merchant_id, "store_id": store_id, "name": "t", "jwks": {"keys": [DeviceKey().public_jwk]}}
    assert (await post_device(auth, admin_token, body)).status_code == 201
