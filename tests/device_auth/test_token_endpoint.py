"""The token endpoint's happy paths and contract (API.md: device-auth)."""

from __future__ import annotations

import asyncio

import httpx
import jwt
from fastapi import FastAPI

from tests.support.auth_fixtures import ISSUER, RegisterDevice, basic, claims_of
from tests.support.keys import DeviceKey


async def test_a_device_gets_a_120_second_es256_access_token(
    auth: httpx.AsyncClient, register_device: RegisterDevice
) -> None:
    device = await register_device()
    response = await auth.post("/oauth/token", data=device.form())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 120 and body["scope"]
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt" and header["kid"]
    claims = claims_of(body["access_token"])
    assert claims["iss"] == ISSUER and claims["aud"] == "smartpos"
    assert claims["sub"] == claims["client_id"] == device.id
    assert claims["role"] == "device"
    assert (claims["merchant_id"], claims["store_id"]) == (device.merchant_id, device.store_id)
    assert int(str(claims["exp"])) - int(str(claims["iat"])) == 120 and claims["jti"]


async def test_the_access_token_verifies_against_the_published_jwks(
    auth: httpx.AsyncClient, register_device: RegisterDevice
) -> None:
    device = await register_device()
    token = (await auth.post("/oauth/token", data=device.form())).json()["access_token"]
    jwks = (await auth.get("/.well-known/jwks.json")).json()
    key = next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(token)["kid"])
    assert "d" not in key  # public only
    claims = jwt.decode(token, jwt.PyJWK(key), algorithms=["ES256"], audience="smartpos", issuer=ISSUER)
    assert claims["sub"] == device.id


async def test_metadata_follows_rfc_8414(auth: httpx.AsyncClient) -> None:
    meta = (await auth.get("/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == ISSUER
    assert meta["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert meta["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert {"private_key_jwt", "client_secret_basic", "client_secret_post"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )
    assert "ES256" in meta["token_endpoint_auth_signing_alg_values_supported"]
    assert not {"none", "HS256"} & set(meta["token_endpoint_auth_signing_alg_values_supported"])


async def test_merchant_client_secret_is_shown_once_and_works_by_basic_and_post(
    auth: httpx.AsyncClient, admin_token: str
) -> None:
    from smartpos_shared.ids import new_id

    merchant_id = new_id("mer")
    created = await auth.post(
        "/clients",
        json={"merchant_id": merchant_id, "name": "back office"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert created.status_code == 201
    client = created.json()
    assert client["role"] == "merchant" and client["merchant_id"] == merchant_id
    by_basic = await auth.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client["client_id"], client["client_secret"]),
    )
    by_post = await auth.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
        },
    )
    for response in (by_basic, by_post):
        assert response.status_code == 200, response.text
        claims = claims_of(response.json()["access_token"])
        assert claims["role"] == "merchant" and claims["merchant_id"] == merchant_id and "store_id" not in claims


async def test_client_secrets_are_stored_only_as_slow_hashes(
    auth_app: FastAPI, admin_token: str, auth: httpx.AsyncClient
) -> None:
    from sqlalchemy import text

    from smartpos_shared.ids import new_id

    created = (
        await auth.post(
            "/clients",
            json={"merchant_id": new_id("mer"), "name": "x"},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
    ).json()
    async with auth_app.state.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT secret_hash, secret_encrypted FROM oauth_clients WHERE id = :id"),
                {"id": created["client_id"]},
            )
        ).one()
    assert row.secret_hash.startswith("$argon2id$")
    assert created["client_secret"] not in row.secret_hash
    assert row.secret_encrypted is None


async def test_signing_keys_are_encrypted_at_rest(auth_app: FastAPI) -> None:
    from sqlalchemy import text

    async with auth_app.state.engine.connect() as conn:
        blobs = (await conn.execute(text("SELECT private_key_encrypted FROM signing_keys"))).scalars().all()
    assert blobs and all(b"PRIVATE KEY" not in bytes(blob) for blob in blobs)


async def test_key_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(
    auth: httpx.AsyncClient, admin_token: str, register_device: RegisterDevice
) -> None:
    device = await register_device()
    old_token = (await auth.post("/oauth/token", data=device.form())).json()["access_token"]
    rotated = await auth.post("/signing-keys/rotate", headers={"Authorization": f"Bearer {admin_token}"})
    assert rotated.status_code == 201
    new_kid = rotated.json()["kid"]
    new_token = (await auth.post("/oauth/token", data=device.form())).json()["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    kids = [k["kid"] for k in (await auth.get("/.well-known/jwks.json")).json()["keys"]]
    assert kids[0] == new_kid and jwt.get_unverified_header(old_token)["kid"] in kids
    # A token signed with the old key is still accepted by a resource server (device-auth's own admin API).
    assert (
        await auth.get("/devices", headers={"Authorization": f"Bearer {old_token}"})
    ).status_code == 403  # device role


async def test_device_key_rotation_replaces_the_registered_keys(
    auth: httpx.AsyncClient, admin_token: str, register_device: RegisterDevice
) -> None:
    device = await register_device()
    new_key = DeviceKey()
    response = await auth.put(
        f"/devices/{device.id}/jwks",
        json={"keys": [new_key.public_jwk]},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 200 and response.json()["version"] == 2
    old_key_attempt = await auth.post("/oauth/token", data=device.form())
    assert old_key_attempt.status_code == 401
    device.key = new_key
    assert (await auth.post("/oauth/token", data=device.form())).status_code == 200


async def test_32_concurrent_copies_of_one_assertion_yield_exactly_one_token(
    auth: httpx.AsyncClient, register_device: RegisterDevice
) -> None:
    device = await register_device()
    form = device.form()
    responses = await asyncio.gather(*(auth.post("/oauth/token", data=form) for _ in range(32)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1
    # The copies are replays (401); after ten failures the client is throttled (429) for the rest.
    assert statuses.count(401) + statuses.count(429) == 31 and statuses.count(401) >= 10
