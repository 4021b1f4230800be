"""People sign in through a browser (issue 17): the authorization code flow with PKCE at device-auth, following
RFC 7636 and the OAuth 2.0 Security BCP (RFC 9700) — exact redirect URIs, no implicit flow, one-time codes bound to
the client, redirect URI and challenge, refresh tokens rotated with reuse detection, lockout after repeated
failures, a sign-in form that cannot be posted from another site or framed."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from fastapi import FastAPI

from tests.support.auth_fixtures import DASHBOARD, DASHBOARD_CALLBACK
from tests.support.portal_fixtures import Tenant, bearer

PASSWORD = "correct horse battery staple"


def pkce() -> tuple[str, str]:
    from device_auth.users.service import challenge_of

    verifier = secrets.token_urlsafe(48)
    return verifier, challenge_of(verifier)


async def make_user(auth: httpx.AsyncClient, admin_token: str, tenant: Tenant, role: str = "merchant") -> str:
    email = f"staff-{uuid.uuid4().hex[:8]}@kissa.example"
    body: dict[str, Any] = {"email": email, "password": PASSWORD, "role": role}
    if role == "merchant":
        body["merchant_id"] = tenant.merchant_id
    created = await auth.post("/users", json=body, headers=bearer(admin_token))
    assert created.status_code == 201, created.text
    return email


def authorize_query(challenge: str, **extra: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": DASHBOARD, "redirect_uri": DASHBOARD_CALLBACK,
            "code_challenge": challenge, "code_challenge_method": "S256", "state": "st-1", **extra}  # fmt: skip


async def sign_in(auth: httpx.AsyncClient, email: str, password: str, challenge: str) -> httpx.Response:
    """What the browser does: open the page (its cookie and hidden fields), then post the form."""
    page = await auth.get("/authorize", params=authorize_query(challenge))
    assert page.status_code == 200, page.text
    hidden = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page.text))
    assert page.cookies["smartpos_signin"] == hidden["csrf"]  # the browser keeps it (the client's cookie jar)
    return await auth.post("/authorize", data={**hidden, "email": email, "password": password})


def code_of(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == DASHBOARD_CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


async def exchange(auth: httpx.AsyncClient, code: str, verifier: str, **extra: str) -> httpx.Response:
    form = {"grant_type": "authorization_code", "client_id": DASHBOARD, "code": code,
            "redirect_uri": DASHBOARD_CALLBACK, "code_verifier": verifier, **extra}  # fmt: skip
    return await auth.post("/oauth/token", data=form)


async def test_a_merchant_signs_in_with_pkce_and_uses_the_platform(
    auth: httpx.AsyncClient, portal: httpx.AsyncClient, tenant: Tenant, admin_token: str
) -> None:
    email = await make_user(auth, admin_token, tenant)
    verifier, challenge = pkce()
    page = await auth.get("/authorize", params=authorize_query(challenge))
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert 'for="email"' in page.text and "<main>" in page.text  # labelled fields, a landmark
    assert "samesite=strict" in page.headers["set-cookie"].lower() and "httponly" in page.headers["set-cookie"].lower()

    code = code_of(await sign_in(auth, email, PASSWORD, challenge))
    tokens = await exchange(auth, code, verifier)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["role"], claims["merchant_id"], claims["client_id"]) == ("merchant", tenant.merchant_id, DASHBOARD)
    assert claims["sub"].startswith("usr_") and body["expires_in"] <= 600 and body["refresh_token"].startswith("spr_")
    orders = await portal.get("/orders", headers=bearer(body["access_token"]))
    assert orders.status_code == 200, orders.text  # the portal takes a person's token like any merchant token

    replayed = await exchange(auth, code, verifier)  # a code works once
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_grant")


async def test_codes_are_bound_to_their_verifier_and_redirect(
    auth: httpx.AsyncClient, tenant: Tenant, admin_token: str
) -> None:
    email = await make_user(auth, admin_token, tenant)
    verifier, challenge = pkce()
    stolen = code_of(await sign_in(auth, email, PASSWORD, challenge))
    wrong = await exchange(auth, stolen, pkce()[0])  # an attacker with the code but not the verifier
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    assert (await exchange(auth, stolen, verifier)).status_code == 400  # and it is spent now
    code = code_of(await sign_in(auth, email, PASSWORD, challenge))
    elsewhere = await exchange(auth, code, verifier, redirect_uri="http://dashboard.test/other")
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (400, "invalid_grant")


async def test_refresh_tokens_rotate_and_a_reused_one_revokes_its_family(
    auth: httpx.AsyncClient, tenant: Tenant, admin_token: str
) -> None:
    email = await make_user(auth, admin_token, tenant)
    verifier, challenge = pkce()
    first = (await exchange(auth, code_of(await sign_in(auth, email, PASSWORD, challenge)), verifier)).json()

    async def refresh(token: str) -> httpx.Response:
        return await auth.post(
            "/oauth/token", data={"grant_type": "refresh_token", "client_id": DASHBOARD, "refresh_token": token}
        )

    second = await refresh(first["refresh_token"])
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    reused = await refresh(first["refresh_token"])  # stolen and replayed, or a client racing itself
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    revoked = await refresh(second.json()["refresh_token"])  # the whole family is gone
    assert (revoked.status_code, revoked.json()["error"]) == (400, "invalid_grant")


async def test_the_sign_in_page_never_redirects_to_an_unchecked_address_and_requires_pkce(
    auth: httpx.AsyncClient,
) -> None:
    challenge = pkce()[1]
    for bad in ({"redirect_uri": "https://evil.example/cb"}, {"client_id": "unknown"},
                {"redirect_uri": DASHBOARD_CALLBACK + "/"}):  # fmt: skip
        refused = await auth.get("/authorize", params=authorize_query(challenge, **bad))
        assert refused.status_code == 400 and "location" not in refused.headers
    implicit = await auth.get("/authorize", params=authorize_query(challenge, response_type="token"))
    assert implicit.status_code == 303
    assert parse_qs(urlsplit(implicit.headers["location"]).query)["error"] == ["unsupported_response_type"]
    for weak in ({"code_challenge_method": "plain"}, {"code_challenge": "short"}):
        refused = await auth.get("/authorize", params=authorize_query(challenge, **weak))
        assert parse_qs(urlsplit(refused.headers["location"]).query)["error"] == ["invalid_request"]


async def test_a_form_posted_from_another_site_is_refused(
    auth: httpx.AsyncClient, tenant: Tenant, admin_token: str
) -> None:
    email = await make_user(auth, admin_token, tenant)
    form = {**authorize_query(pkce()[1]), "csrf": "guessed", "email": email, "password": PASSWORD}
    refused = await auth.post("/authorize", data=form)  # no cookie: not from the sign-in page
    assert refused.status_code == 403 and "location" not in refused.headers


async def test_repeated_failures_lock_the_user_even_with_the_right_password(
    auth: httpx.AsyncClient, auth_app: FastAPI, tenant: Tenant, admin_token: str
) -> None:
    email = await make_user(auth, admin_token, tenant)
    challenge = pkce()[1]
    for _ in range(5):
        failed = await sign_in(auth, email, "wrong password!", challenge)
        assert failed.status_code == 401 and "Wrong email or password" in failed.text
    locked = await sign_in(auth, email, PASSWORD, challenge)
    assert locked.status_code == 401  # the same answer: nothing says it is locked, or that the password was right
    unknown = await sign_in(auth, "nobody@kissa.example", PASSWORD, challenge)
    assert unknown.status_code == 401 and unknown.text.count("Wrong email or password") == 1
    auth_app.state.clock.offset = 15 * 60 + 1
    assert (await sign_in(auth, email, PASSWORD, challenge)).status_code == 303


async def test_only_admins_create_users_and_emails_are_unique(
    auth: httpx.AsyncClient, tenant: Tenant, admin_token: str
) -> None:
    email = await make_user(auth, admin_token, tenant)
    again = await auth.post("/users", json={"email": email.upper(), "password": PASSWORD, "role": "merchant",
                                            "merchant_id": tenant.merchant_id}, headers=bearer(admin_token))  # fmt: skip
    assert again.status_code == 409
    as_merchant = await auth.post("/users", json={"email": "x@kissa.example", "password": PASSWORD, "role": "admin"},
                                  headers=tenant.as_merchant)  # fmt: skip
    assert as_merchant.status_code == 403
    staff_without_merchant = await auth.post(
        "/users",
        json={"email": "y@kissa.example", "password": PASSWORD, "role": "merchant"},
        headers=bearer(admin_token),
    )
    assert staff_without_merchant.status_code == 422
    short = await auth.post("/users", json={"email": "z@kissa.example", "password": "short", "role": "admin"},
                            headers=bearer(admin_token))  # fmt: skip
    assert short.status_code == 422
