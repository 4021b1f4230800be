"""Client authentication at the token endpoint and access-token issuance.

Devices authenticate with `private_key_jwt` (RFC 7523). The assertion is checked in the order of a hardened
server (RFC 8725, OIDC Core 9, FAPI 2.0, draft-ietf-oauth-rfc7523bis): algorithm allow-list, no `crit`, keys
only from the device's own registered set (never `jku`/`x5u`/`jwk`/`x5c`), signature, `iss == sub == client_id`,
`aud` == issuer as a single string, `exp` in the future, `iat` present and not ahead of the clock, lifetime at
most 60 s, then `jti` consumed once (atomic `SET NX` with expiry, per client, failing closed), then the device must
be active. Every failure answers the same `invalid_client`; the log records which check failed (never secrets).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import jwt
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from smartpos_shared.auth import AUDIENCE, numeric_date
from smartpos_shared.ids import is_id
from smartpos_shared.pg import Db

from ..clients import repository as clients
from ..crypto import verify_secret
from ..devices import repository as devices
from ..keys.service import KeyRing
from ..settings import AuthSettings
from .algorithms import ASSERTION_ALGORITHMS
from .assertions import DeviceKeys, ParsedJws

log = structlog.get_logger("smartpos.auth.token")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_BYTES = 8192
MAX_ASSERTION_LIFETIME = 60
MAX_IAT_SKEW = 10
EXP_LEEWAY = 5
FORBIDDEN_HEADERS = ("crit", "jku", "jwk", "x5u", "x5c")


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer."""

    def __init__(self, status: int, error: str, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}


def invalid_request(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


class ClientAuthFailed(Exception):
    """Internal: which check failed (for the audit log only; the client sees a generic answer)."""

    def __init__(self, reason: str, client_id: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.client_id = client_id


class AuthUnavailable(Exception):
    """The replay store cannot be reached: no token may be issued (fail closed)."""


@dataclass(frozen=True)
class AuthenticatedClient:
    client_id: str
    role: str
    merchant_id: str | None
    store_id: str | None
    method: str


@dataclass(frozen=True)
class TokenRequest:
    grant_type: str | None
    client_assertion_type: str | None
    client_assertion: str | None
    client_id: str | None
    client_secret: str | None
    basic: tuple[str, str] | None
    params: dict[str, str] = field(default_factory=dict)  # every parameter (the code and refresh grants' own)


def parse_form(body: bytes, content_type: str, authorization: str | None) -> TokenRequest:
    """Strict RFC 6749 form parsing: url-encoded only, no repeated parameters."""
    params = parse_params(body, content_type)
    basic = _parse_basic(authorization) if authorization else None
    return TokenRequest(
        grant_type=params.get("grant_type"),
        client_assertion_type=params.get("client_assertion_type"),
        client_assertion=params.get("client_assertion"),
        client_id=params.get("client_id"),
        client_secret=params.get("client_secret"),
        basic=basic,
        params=params,
    )


def parse_params(body: bytes, content_type: str) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body as a dict; a parameter sent twice is refused."""
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise invalid_request("the body must be application/x-www-form-urlencoded")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_request("the body must be UTF-8") from None
    params: dict[str, str] = {}
    for pair in filter(None, text.split("&")):
        name, _, value = pair.partition("=")
        name, value = unquote_plus(name), unquote_plus(value)
        if name in params:
            raise invalid_request(f"parameter {name!r} appears more than once")
        params[name] = value
    return params


def _parse_basic(authorization: str) -> tuple[str, str] | None:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(
            401, "invalid_client", "client authentication failed", {"WWW-Authenticate": 'Basic realm="smartpos"'}
        ) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError(
            401, "invalid_client", "client authentication failed", {"WWW-Authenticate": 'Basic realm="smartpos"'}
        )
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


class TokenService:
    def __init__(self, settings: AuthSettings, keyring: KeyRing, redis: Redis[bytes]) -> None:
        self.settings = settings
        self.issuer = settings.auth_issuer
        self.keyring = keyring
        self.redis = redis
        self._keys = DeviceKeys()

    # ----------------------------------------------------------------- client authentication

    async def authenticate(self, db: Db, request: TokenRequest, now: float) -> AuthenticatedClient:
        methods = [
            name
            for name, present in (
                ("private_key_jwt", request.client_assertion is not None or request.client_assertion_type is not None),
                ("client_secret_basic", request.basic is not None),
                ("client_secret_post", request.client_secret is not None),
            )
            if present
        ]
        if len(methods) > 1:
            raise invalid_request("use exactly one client authentication method")
        if not methods:
            raise OAuthError(
                401,
                "invalid_client",
                "client authentication is required",
                {"WWW-Authenticate": 'Basic realm="smartpos"'},
            )
        method = methods[0]
        try:
            if method == "private_key_jwt":
                return await self._authenticate_device(db, request, now)
            # Before the deliberately slow hash: a throttled client costs nothing more.
            await self._check_rate_limit(request.basic[0] if request.basic is not None else request.client_id)
            return await self._authenticate_secret(db, request, method)
        except ClientAuthFailed as failure:
            await self._record_failure(failure, method)
            headers = {"WWW-Authenticate": 'Basic realm="smartpos"'} if method == "client_secret_basic" else {}
            raise OAuthError(401, "invalid_client", "client authentication failed", headers) from None

    async def _check_rate_limit(self, client_id: str | None) -> None:
        if not client_id:
            return
        try:
            failures = await self.redis.get(_failure_key(client_id))
        except RedisError:
            return  # the limiter fails open; the replay store (below) fails closed
        self._throttle(client_id, failures)

    def _throttle(self, client_id: str, failures: bytes | None) -> None:
        if failures is not None and int(failures) >= self.settings.failure_limit:
            log.warning("token_request_throttled", client_id=client_id[:64])
            raise OAuthError(
                429,
                "temporarily_unavailable",
                "too many failed attempts; retry later",
                {"Retry-After": str(self.settings.failure_window_seconds)},
            )

    async def _record_failure(self, failure: ClientAuthFailed, method: str) -> None:
        log.warning(
            "token_request_denied",
            client_id=(failure.client_id or "")[:64] or None,
            method=method,
            reason=failure.reason,
        )
        if not failure.client_id:
            return
        try:
            key = _failure_key(failure.client_id)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, self.settings.failure_window_seconds, nx=True)
                await pipe.execute()
        except RedisError:
            pass

    async def _authenticate_secret(self, db: Db, request: TokenRequest, method: str) -> AuthenticatedClient:
        client_id, secret = request.basic if request.basic is not None else (request.client_id, request.client_secret)
        if request.basic is not None and request.client_id is not None and request.client_id != client_id:
            raise invalid_request("client_id does not match the Basic credentials")
        if not client_id or secret is None:
            raise ClientAuthFailed("missing_credentials", client_id)
        client = await clients.client_for_token(db, client_id) if is_id(client_id, "cli") else None
        valid = await verify_secret(client.secret_hash if client is not None else None, secret)
        if client is None:
            raise ClientAuthFailed("unknown_client", client_id)
        if not valid:
            raise ClientAuthFailed("wrong_secret", client_id)
        if client.status != "active":
            raise ClientAuthFailed("client_revoked", client_id)
        return AuthenticatedClient(client.id, client.role, client.merchant_id, None, method)

    async def _authenticate_device(self, db: Db, request: TokenRequest, now: float) -> AuthenticatedClient:
        if request.client_assertion_type != ASSERTION_TYPE:
            raise invalid_request("client_assertion_type must be " + ASSERTION_TYPE)
        assertion = request.client_assertion
        if not assertion:
            raise invalid_request("client_assertion is required")
        claimed = request.client_id
        if len(assertion) > MAX_ASSERTION_BYTES:
            raise ClientAuthFailed("malformed_assertion", claimed)
        # 1. one parse of the compact JWS (strict JSON: NaN and Infinity are not JSON and are refused here).
        try:
            jws = ParsedJws.parse(assertion)
        except ValueError:
            raise ClientAuthFailed("malformed_assertion", claimed) from None
        header, claims = jws.header, jws.claims
        # 2. algorithm allow-list and forbidden headers, before anything else is trusted.
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASSERTION_ALGORITHMS:
            raise ClientAuthFailed(f"alg_not_allowed:{str(alg)[:16]}", claimed)
        for name in FORBIDDEN_HEADERS:
            if name in header:
                raise ClientAuthFailed(f"forbidden_header:{name}", claimed)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ClientAuthFailed("bad_kid", claimed)
        iss = claims.get("iss")
        if not isinstance(iss, str) or not is_id(iss, "dev"):
            raise ClientAuthFailed("bad_iss", claimed)
        if claimed is not None and claimed != iss:
            raise ClientAuthFailed("client_id_mismatch", claimed)
        device = await devices.device_for_token(db, iss)
        if device is None:
            raise ClientAuthFailed("unknown_device", iss)
        # 3. keys only from the device's own registered set; 4. signature.
        verdict = self._keys.verify(device, jws, alg, kid)
        if verdict is not None:
            raise ClientAuthFailed(verdict, device.id)
        # 5. claims (iss was read above, before the signature, to find the device; it is signed too).
        if claims.get("sub") != device.id:
            raise ClientAuthFailed("iss_sub_mismatch", device.id)
        aud = claims.get("aud")
        if not isinstance(aud, str):
            raise ClientAuthFailed("aud_not_single_string", device.id)
        if aud != self.issuer:
            raise ClientAuthFailed("wrong_aud", device.id)
        # Times are integers only: NaN compares false with everything and would pass every check below.
        exp, iat = numeric_date(claims.get("exp")), numeric_date(claims.get("iat"))
        if exp is None:
            raise ClientAuthFailed("missing_exp", device.id)
        if exp <= now - EXP_LEEWAY:
            raise ClientAuthFailed("expired", device.id)
        if iat is None:
            raise ClientAuthFailed("missing_iat", device.id)
        if iat > now + MAX_IAT_SKEW:
            raise ClientAuthFailed("iat_in_future", device.id)
        if exp - iat > MAX_ASSERTION_LIFETIME or exp <= iat:
            raise ClientAuthFailed("lifetime_too_long", device.id)
        if "nbf" in claims:
            nbf = numeric_date(claims["nbf"])
            if nbf is None or nbf > now + MAX_IAT_SKEW:
                raise ClientAuthFailed("not_yet_valid", device.id)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 1 <= len(jti) <= 256:
            raise ClientAuthFailed("missing_jti", device.id)
        # 6. single use and the failure throttle, in one Redis round trip: the jti is consumed only now that
        # signature and claims passed; a throttled client is refused even with a valid assertion.
        await self._consume_jti(device.id, jti, ttl=int(exp - now) + EXP_LEEWAY + 1)
        # 7. device active.
        if device.status != "active":
            raise ClientAuthFailed("device_revoked", device.id)
        # 8. its integration is enabled for its merchant (a rollout): a proven device, so it may know why not.
        if not device.integration_enabled:
            raise OAuthError(
                403, "integration_not_enabled", "this device's integration is not enabled for its merchant"
            )
        return AuthenticatedClient(device.id, "device", device.merchant_id, device.store_id, "private_key_jwt")

    async def _consume_jti(self, client_id: str, jti: str, ttl: int) -> None:
        """Consume the jti and read the client's failure count in one Redis round trip (fails closed)."""
        digest = hashlib.sha256(jti.encode()).hexdigest()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(_failure_key(client_id))
                pipe.set(f"auth:jti:{client_id}:{digest}", b"1", nx=True, ex=max(ttl, 1))
                failures, fresh = await pipe.execute()
        except RedisError as exc:
            log.error("replay_store_unavailable", client_id=client_id, error=type(exc).__name__)
            raise AuthUnavailable from exc
        self._throttle(client_id, failures)
        if not fresh:
            raise ClientAuthFailed("jti_replayed", client_id)

    # ----------------------------------------------------------------- issuance

    async def issue(self, client: AuthenticatedClient, now: float) -> dict[str, Any]:
        lifetime = (
            self.settings.device_token_lifetime if client.role == "device" else self.settings.client_token_lifetime
        )
        issued_at = int(now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client.client_id,
            "aud": AUDIENCE,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + lifetime,
            "jti": uuid.uuid4().hex,
            "client_id": client.client_id,
            "role": client.role,
            "scope": client.role,
        }
        if client.merchant_id is not None:
            claims["merchant_id"] = client.merchant_id
        if client.store_id is not None:
            claims["store_id"] = client.store_id
        key = await self.keyring.active()
        token = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid, "typ": "at+jwt"})
        log.info("token_issued", client_id=client.client_id, role=client.role, method=client.method)
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": client.role}

    async def issue_for_user(
        self,
        user_id: str,
        role: str,
        merchant_id: str | None,
        partner_id: str | None,
        web_client: str,
        now: float,
    ) -> dict[str, Any]:
        """A person's access token (browser sign-in): `sub` the user, `client_id` the web client it was issued to,
        and for a partner engineer the partner they act for (`partner_id`)."""
        lifetime = self.settings.user_token_lifetime
        issued_at = int(now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user_id,
            "aud": AUDIENCE,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + lifetime,
            "jti": uuid.uuid4().hex,
            "client_id": web_client,
            "role": role,
            "scope": role,
        }
        if merchant_id is not None:
            claims["merchant_id"] = merchant_id
        if partner_id is not None:
            claims["partner_id"] = partner_id
        key = await self.keyring.active()
        token = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid, "typ": "at+jwt"})
        log.info("token_issued", client_id=web_client, user_id=user_id, role=role, method="authorization_code")
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": role}


def _failure_key(client_id: str) -> str:
    return "auth:fail:" + hashlib.sha256(client_id.encode()).hexdigest()[:32]
