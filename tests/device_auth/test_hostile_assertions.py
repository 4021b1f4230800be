"""Hostile client assertions at the token endpoint: each is refused, and every `invalid_client` answer is the
same, so an attacker learns nothing about which check failed (docs/security.md maps each case to its check)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.auth_fixtures import ISSUER, RegisterDevice, RegisteredDevice, basic
from tests.support.keys import DeviceKey, assertion_form

GENERIC_401 = {"error": "invalid_client", "error_description": "client authentication failed"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def claims_for(device: RegisteredDevice, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": device.id,
        "sub": device.id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 30,
        "jti": f"j-{now}-{id(overrides)}",
    }
    claims.update(overrides)
    return claims


def alg_none(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(unsigned({"alg": "none", "typ": "JWT", "kid": d.key.kid}, claims_for(d)))


def hs256_with_public_key(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    # The classic key-confusion attack: HMAC "signed" with the device's public key as the secret.
    pem = d.key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header, claims = {"alg": "HS256", "typ": "JWT", "kid": d.key.kid}, claims_for(d)
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return assertion_form(f"{signing_input}.{b64(signature)}")


def another_devices_key(d: RegisteredDevice, other: RegisteredDevice) -> dict[str, str]:
    impostor = DeviceKey(kid=d.key.kid, private_key=other.key.private_key)
    return assertion_form(impostor.assertion(d.id, ISSUER))


def unregistered_key(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(DeviceKey().assertion(d.id, ISSUER))


def wrong_aud(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, "https://evil.example"))


def multi_valued_aud(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, [ISSUER, "https://evil.example"]))


def single_element_aud_array(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, [ISSUER]))


def token_endpoint_aud(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, f"{ISSUER}/oauth/token"))


def iss_not_sub(d: RegisteredDevice, other: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, claims={"sub": other.id}))


def iss_of_another_device(d: RegisteredDevice, other: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, claims={"iss": other.id}))


def client_id_param_mismatch(d: RegisteredDevice, other: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER), client_id=other.id)


def expired(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, now=time.time() - 120, lifetime=30))


def lifetime_over_60s(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, lifetime=61))


def hour_long_lifetime(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, lifetime=3600))


def iat_in_future(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, now=time.time() + 60, lifetime=30))


def missing_iat(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, drop=("iat",)))


def missing_exp(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, drop=("exp",)))


def missing_jti(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, drop=("jti",)))


def nbf_in_future(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, claims={"nbf": int(time.time()) + 300}))


def crit_header(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, headers={"crit": ["exp"]}))


def jku_header(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, headers={"jku": "https://evil.example/jwks.json"}))


def embedded_jwk_header(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    attacker = DeviceKey(kid=d.key.kid)
    return assertion_form(attacker.assertion(d.id, ISSUER, headers={"jwk": attacker.public_jwk}))


def x5u_header(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, headers={"x5u": "https://evil.example/cert.pem"}))


def x5c_header(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, headers={"x5c": ["MIIB"]}))


def garbage_assertion(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form("not.a.jwt")


def tampered_assertion(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    header, payload, signature = d.key.assertion(d.id, ISSUER).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["exp"] += 3600
    return assertion_form(f"{header}.{b64(json.dumps(claims).encode())}.{signature}")


YEAR = 365 * 24 * 3600


def iat_nan_exp_a_year_ahead(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    # JSON parsers accept NaN, and every comparison with NaN is false: the lifetime and iat checks must not pass.
    return assertion_form(d.key.assertion(d.id, ISSUER, claims={"iat": float("nan"), "exp": int(time.time()) + YEAR}))


def exp_nan(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, claims={"exp": float("nan")}))


def exp_infinity(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, claims={"exp": float("inf")}))


def iat_minus_infinity(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, claims={"iat": float("-inf")}))


def fractional_exp(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, claims={"exp": time.time() + 30.5}))


def boolean_iat(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, claims={"iat": True}))


def nbf_nan(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(d.key.assertion(d.id, ISSUER, claims={"nbf": float("nan")}))


def alg_is_a_list(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(unsigned({"alg": ["ES256"], "kid": d.key.kid}, claims_for(d), b"sig"))


def alg_is_an_object(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(unsigned({"alg": {"name": "ES256"}, "kid": d.key.kid}, claims_for(d), b"sig"))


def kid_is_a_list(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    return assertion_form(unsigned({"alg": "ES256", "kid": [d.key.kid]}, claims_for(d), b"sig"))


def unknown_device(d: RegisteredDevice, _: RegisteredDevice) -> dict[str, str]:
    from smartpos_shared.ids import new_id

    ghost = new_id("dev")
    return assertion_form(d.key.assertion(ghost, ISSUER))


HOSTILE_401: dict[str, Callable[[RegisteredDevice, RegisteredDevice], dict[str, str]]] = {
    fn.__name__: fn
    for fn in (
        alg_none,
        hs256_with_public_key,
        another_devices_key,
        unregistered_key,
        wrong_aud,
        multi_valued_aud,
        single_element_aud_array,
        token_endpoint_aud,
        iss_not_sub,
        iss_of_another_device,
        client_id_param_mismatch,
        expired,
        lifetime_over_60s,
        hour_long_lifetime,
        iat_in_future,
        missing_iat,
        missing_exp,
        missing_jti,
        nbf_in_future,
        crit_header,
        jku_header,
        embedded_jwk_header,
        x5u_header,
        x5c_header,
        garbage_assertion,
        tampered_assertion,
        unknown_device,
        iat_nan_exp_a_year_ahead,
        exp_nan,
        exp_infinity,
        iat_minus_infinity,
        fractional_exp,
        boolean_iat,
        nbf_nan,
        alg_is_a_list,
        alg_is_an_object,
        kid_is_a_list,
    )
}


@pytest.mark.parametrize("case", sorted(HOSTILE_401))
async def test_hostile_assertion_is_refused_with_a_generic_invalid_client(
    auth: httpx.AsyncClient, register_device: RegisterDevice, case: str
) -> None:
    device, other = await register_device(), await register_device()
    response = await auth.post("/oauth/token", data=HOSTILE_401[case](device, other))
    assert response.status_code == 401, response.text
    assert response.json() == GENERIC_401
    assert response.headers["cache-control"] == "no-store"
    # The failure consumed nothing the real device needs: it still signs in.
    assert (await auth.post("/oauth/token", data=device.form())).status_code == 200


async def test_a_replayed_assertion_is_refused(auth: httpx.AsyncClient, register_device: RegisterDevice) -> None:
    device = await register_device()
    form = device.form()
    assert (await auth.post("/oauth/token", data=form)).status_code == 200
    replay = await auth.post("/oauth/token", data=form)
    assert replay.status_code == 401 and replay.json() == GENERIC_401


async def test_jti_is_namespaced_per_client(auth: httpx.AsyncClient, register_device: RegisterDevice) -> None:
    a, b = await register_device(), await register_device()
    shared_jti = {"jti": "same-jti-for-both"}
    assert (await auth.post("/oauth/token", data=a.form(claims=shared_jti))).status_code == 200
    assert (await auth.post("/oauth/token", data=b.form(claims=shared_jti))).status_code == 200


async def test_a_revoked_device_gets_no_new_token(
    auth: httpx.AsyncClient, admin_token: str, register_device: RegisterDevice
) -> None:
    device = await register_device()
    revoked = await auth.post(f"/devices/{device.id}/revoke", headers={"Authorization": f"Bearer {admin_token}"})
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    response = await auth.post("/oauth/token", data=device.form())
    assert response.status_code == 401 and response.json() == GENERIC_401


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password", "username": "u", "password": "p"}, "unsupported_grant_type"),
        ({"client_assertion": "x.y.z"}, "invalid_request"),
        (
            {"grant_type": "client_credentials", "client_assertion_type": "urn:wrong", "client_assertion": "x.y.z"},
            "invalid_request",
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            },
            "invalid_request",
        ),
    ],
)
async def test_malformed_token_requests_are_invalid_request(
    auth: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    response = await auth.post("/oauth/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


async def test_repeated_parameters_and_json_bodies_are_refused(auth: httpx.AsyncClient) -> None:
    repeated = await auth.post(
        "/oauth/token",
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert repeated.status_code == 400 and repeated.json()["error"] == "invalid_request"
    as_json = await auth.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


async def test_two_authentication_methods_at_once_are_refused(
    auth: httpx.AsyncClient, register_device: RegisterDevice, admin_credentials: dict[str, str]
) -> None:
    device = await register_device()
    response = await auth.post(
        "/oauth/token",
        data=device.form(),
        headers=basic(admin_credentials["client_id"], admin_credentials["client_secret"]),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_wrong_client_secret_is_401_with_basic_challenge(
    auth: httpx.AsyncClient, admin_credentials: dict[str, str]
) -> None:
    response = await auth.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(admin_credentials["client_id"], "wrong"),
    )
    assert response.status_code == 401 and response.json() == GENERIC_401
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_repeated_failures_for_one_client_are_throttled(
    auth: httpx.AsyncClient, register_device: RegisterDevice
) -> None:
    device = await register_device()
    for _ in range(10):
        assert (
            await auth.post("/oauth/token", data=assertion_form(DeviceKey().assertion(device.id, ISSUER)))
        ).status_code == 401
    throttled = await auth.post("/oauth/token", data=device.form())  # even a valid assertion waits now
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "temporarily_unavailable" and throttled.headers["retry-after"]
    # Another client is not affected.
    other = await register_device()
    assert (await auth.post("/oauth/token", data=other.form())).status_code == 200


async def test_the_audit_log_names_the_failed_check_but_never_the_assertion(
    auth: httpx.AsyncClient, register_device: RegisterDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    import structlog
    from structlog.testing import capture_logs

    from device_auth.tokens import service as token_service

    device = await register_device()
    form = lifetime_over_60s(device, device)
    with capture_logs() as logs:
        # A fresh logger, first used under capture: the module's own may be cached already (services configure
        # structlog with cache_logger_on_first_use, and which test used it first depends on the test order).
        monkeypatch.setattr(token_service, "log", structlog.get_logger("smartpos.auth.token"))
        await auth.post("/oauth/token", data=form)
    denied = [entry for entry in logs if entry["event"] == "token_request_denied"]
    assert denied and denied[0]["reason"] == "lifetime_too_long" and denied[0]["client_id"] == device.id
    assert form["client_assertion"] not in repr(logs)
