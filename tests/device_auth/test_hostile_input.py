"""Hostile bodies on device-auth's admin API (issue 10): clear 422s, never a 500, nothing stored."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from smartpos_shared.ids import new_id
from tests.support.keys import DeviceKey

NUL = "\u0000"


def _device_body(**changes: Any) -> dict[str, Any]:
    jwk = DeviceKey().public_jwk
    jwk.update(changes.pop("jwk", {}))
    body: dict[str, Any] = {
        "merchant_id": new_id("mer"),
        "store_id": new_id("sto"),
        "name": "till",
        "jwks": {"keys": [jwk]},
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_device_body(name=f"till{NUL}"), id="nul-in-name"),
        pytest.param(_device_body(jwk={"kid": f"k{NUL}"}), id="nul-in-kid"),
        pytest.param(_device_body(jwk={"ext": f"{NUL}"}), id="nul-in-an-ignored-jwk-member"),
        pytest.param(_device_body(jwk={"alg": ["ES256"]}), id="jwk-alg-is-a-list"),
        pytest.param(_device_body(jwk={"alg": {"v": "ES256"}}), id="jwk-alg-is-an-object"),
        pytest.param(_device_body(jwk={"kty": ["EC"]}), id="jwk-kty-is-a-list"),
        pytest.param(_device_body(jwk={"crv": 256}), id="jwk-crv-is-a-number"),
        pytest.param(_device_body(jwk={"use": None}), id="jwk-use-is-null"),
        pytest.param(_device_body(jwk={"key_ops": "verify"}), id="jwk-key-ops-not-a-list"),
    ],
)
async def test_hostile_device_registrations_are_422(
    auth: httpx.AsyncClient, admin_token: str, body: dict[str, Any]
) -> None:
    response = await auth.post("/devices", json=body, headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_nul_in_a_client_name_is_422(auth: httpx.AsyncClient, admin_token: str) -> None:
    response = await auth.post(
        "/clients",
        json={"merchant_id": new_id("mer"), "name": f"office{NUL}"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("raw", [f"dev_{NUL}", "dev_" + NUL * 26])
async def test_hostile_device_list_cursors_are_422(auth: httpx.AsyncClient, admin_token: str, raw: str) -> None:
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    response = await auth.get("/devices", params={"cursor": cursor}, headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 422, response.text


async def test_nul_in_token_endpoint_parameters_is_a_clean_oauth_error(auth: httpx.AsyncClient) -> None:
    response = await auth.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": f"cli_{NUL}", "client_secret": NUL}
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
