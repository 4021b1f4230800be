"""Partner clients (issue 15): a partner's engineers get tokens with role `partner` and no merchant, for the
console — and the services that hold merchants' data refuse those tokens on every endpoint (403)."""

from __future__ import annotations

import httpx
import jwt
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from smartpos_shared.ids import new_id
from tests.support.auth_fixtures import basic
from tests.support.portal_fixtures import Tenant, bearer


async def partner_token(auth: httpx.AsyncClient, admin_token: str) -> tuple[dict[str, str], str]:
    created = await auth.post(
        "/clients", json={"role": "partner", "name": "Acme POS engineering"}, headers=bearer(admin_token)
    )
    assert created.status_code == 201, created.text
    client = created.json()
    assert (client["role"], client["merchant_id"]) == ("partner", None)
    token = await auth.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client["client_id"], client["client_secret"]),
    )
    assert token.status_code == 200, token.text
    return client, token.json()["access_token"]


async def test_a_partner_client_gets_partner_tokens_without_a_merchant(
    auth: httpx.AsyncClient, admin_token: str
) -> None:
    client, token = await partner_token(auth, admin_token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["role"] == "partner" and claims["sub"] == client["client_id"] and "merchant_id" not in claims


@pytest.mark.parametrize(
    "body",
    [
        {"role": "partner", "merchant_id": new_id("mer"), "name": "x"},  # a partner has no merchant
        {"role": "merchant", "name": "x"},  # a merchant client names its merchant
        {"role": "admin", "name": "x"},  # admins are bootstrapped, never created here
    ],
)
async def test_client_kinds_are_checked(auth: httpx.AsyncClient, admin_token: str, body: dict[str, str]) -> None:
    assert (await auth.post("/clients", json=body, headers=bearer(admin_token))).status_code == 422


async def test_the_database_refuses_a_partner_with_a_merchant(auth_app: object) -> None:
    engine = auth_app.state.engine  # type: ignore[attr-defined]
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO oauth_clients (id, merchant_id, role, name, secret_hash, status, created_at)"
                    " VALUES (:id, :m, 'partner', 'p', 'x', 'active', now())"
                ),
                {"id": new_id("cli"), "m": new_id("mer")},
            )


async def test_merchant_data_services_refuse_partner_tokens(
    auth: httpx.AsyncClient, portal: httpx.AsyncClient, admin_token: str, tenant: Tenant
) -> None:
    _, token = await partner_token(auth, admin_token)
    as_partner = bearer(token)
    for method, path in (
        ("GET", "/orders"),
        ("GET", f"/stores/{tenant.store_id}"),
        ("GET", f"/merchants/{tenant.merchant_id}"),
        ("POST", "/orders"),
        ("GET", f"/stores/{tenant.store_id}/closeouts"),
    ):
        response = await portal.request(method, path, headers=as_partner, json={} if method == "POST" else None)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["type"].endswith("/role_not_served")
    devices = await auth.post(
        "/devices",
        json={"merchant_id": tenant.merchant_id, "store_id": tenant.store_id, "name": "x", "jwks": {"keys": []}},
        headers=as_partner,
    )
    assert devices.status_code in (403, 422)  # never a device registered by a partner
    assert (await auth.get("/devices", headers=as_partner)).status_code == 403
