"""Resource-server side of authentication: verify SmartPOS access tokens locally and give endpoints a typed
principal.

Tokens are ES256 JWTs (`typ: at+jwt`, RFC 9068) from device-auth. Keys come from its JWKS, cached and refreshed
on an unknown `kid` at most every `refresh_interval` seconds. A revoked device's unexpired tokens are refused
once its `device.revoked` event arrives (see `DenyList`). Time comes from an injectable clock so tests can
move past expiry without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

import httpx
import jwt
import structlog
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from .db import utcnow
from .errors import Forbidden, NotFound, ServiceUnavailable, Unauthorized
from .events import ensure_stream

log = structlog.get_logger("smartpos.auth")

ACCESS_TOKEN_ALGORITHMS = ("ES256",)
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
AUDIENCE = "smartpos"
LEEWAY_SECONDS = 5
JWKS_REFRESH_INTERVAL = 5.0
DEVICE_TOKEN_LIFETIME = 120
CLIENT_TOKEN_LIFETIME = 600
REVOKED_SUBJECT = "smartpos.*.device.revoked"
VERIFIED_CACHE_SIZE = 10_000

Clock = Callable[[], float]
JwksLoader = Callable[[], Awaitable[dict[str, Any]]]


def numeric_date(value: object) -> int | None:
    """A JWT NumericDate as this platform accepts it: an integer (never a bool, a float, NaN or Infinity).

    JSON parsers accept `NaN` and `Infinity`, and every comparison with NaN is false, so a check like
    `exp <= now` silently passes: every time claim is read through this function, at the token endpoint and
    at every resource server."""
    return value if type(value) is int else None


class Role(StrEnum):
    device = "device"
    merchant = "merchant"
    admin = "admin"
    partner = "partner"  # a partner's engineers (console: integrations, certification); never a merchant's data


# The roles portal, smarttab and device-auth serve: a partner token is refused there (403), whatever the endpoint.
SERVICE_ROLES = frozenset({Role.device, Role.merchant, Role.admin})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the access token says."""

    role: Role
    subject: str
    client_id: str
    merchant_id: str | None
    store_id: str | None
    token_id: str
    expires_at: int
    # Partners: the partner organisation (its API client's id) this caller acts for — the client itself, or a
    # partner engineer signed in as a user (`partner_id` claim). None for every other role.
    partner_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    def merchant_scope(self, requested: str | None = None) -> str:
        """The merchant whose data this call may touch. Admins name it; others get their own (a different
        one requested by a non-admin is answered as not found, never revealing that it exists)."""
        if self.role is Role.admin:
            if not requested:
                raise Forbidden("an admin must name the merchant (merchant_id)", code="merchant_id_required")
            return requested
        assert self.merchant_id is not None
        if requested is not None and requested != self.merchant_id:
            raise NotFound("merchant not found")
        return self.merchant_id


class DenyList:
    """Devices whose tokens must be refused until their last token has expired anyway."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._until: dict[str, float] = {}
        self._clock = clock

    def add(self, subject: str, until: float) -> None:
        self._until[subject] = max(until, self._until.get(subject, 0.0))
        self._prune()

    def __contains__(self, subject: object) -> bool:
        until = self._until.get(subject) if isinstance(subject, str) else None
        return until is not None and until > self._clock()

    def _prune(self) -> None:
        now = self._clock()
        for subject in [s for s, until in self._until.items() if until <= now]:
            del self._until[subject]


def remote_jwks(url: str) -> JwksLoader:
    async def load() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=3.0) as http:
            response = await http.get(url)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data

    return load


class TokenVerifier:
    def __init__(
        self,
        issuer: str,
        jwks_loader: JwksLoader,
        *,
        audience: str = AUDIENCE,
        clock: Clock = time.time,
        deny_list: DenyList | None = None,
        refresh_interval: float = JWKS_REFRESH_INTERVAL,
        roles: frozenset[Role] = SERVICE_ROLES,
    ) -> None:
        self.issuer = issuer
        self.roles = roles
        self.audience = audience
        self.clock = clock
        self.deny_list = deny_list or DenyList(clock)
        self._load = jwks_loader
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_refresh = float("-inf")
        self._refresh_lock = asyncio.Lock()
        self._refresh_interval = refresh_interval
        self._verified: dict[str, Principal] = {}

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._refresh_lock:
            key = self._keys.get(kid)
            if key is None and time.monotonic() - self._last_refresh >= self._refresh_interval:
                await self._refresh()
                key = self._keys.get(kid)
        return key

    async def _refresh(self) -> None:
        self._last_refresh = time.monotonic()
        try:
            jwks = await self._load()
        except Exception as exc:
            log.warning("jwks_fetch_failed", error=repr(exc))
            if not self._keys:
                raise ServiceUnavailable("token keys are unavailable; retry shortly") from exc
            return
        keys: dict[str, jwt.PyJWK] = {}
        for raw in jwks.get("keys", []):
            try:
                jwk = jwt.PyJWK(raw)
            except jwt.PyJWTError:
                continue
            if raw.get("kid") and jwk.algorithm_name in ACCESS_TOKEN_ALGORITHMS:
                keys[raw["kid"]] = jwk
        self._keys = keys

    async def verify(self, token: str) -> Principal:
        """Check alg, typ, kid and signature, then iss, aud, exp (small leeway), iat and role claims.

        A token that verified is remembered (by its exact bytes) so the signature is not checked again on every
        request; expiry and the revocation deny-list are still checked each time."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at <= self.clock() - LEEWAY_SECONDS:
                raise Unauthorized("access token expired", error="invalid_token")
            if cached.subject in self.deny_list:
                raise Unauthorized("access token revoked")
            return cached
        principal = await self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # bounded; refilled by the next requests
        self._verified[token] = principal
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed access token") from None
        if header.get("alg") not in ACCESS_TOKEN_ALGORITHMS:
            raise Unauthorized("access token algorithm not accepted")
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise Unauthorized("not an access token")
        if "crit" in header:
            raise Unauthorized("access token has unsupported critical headers")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("access token has no key id")
        key = await self._key(kid)
        if key is None:
            raise Unauthorized("access token signed by an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(ACCESS_TOKEN_ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": ["exp", "iat", "iss", "aud", "sub", "jti"],
                    "verify_exp": False,  # checked below against the injectable clock
                    "verify_iat": False,
                    "verify_nbf": False,
                    "strict_aud": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid access token ({type(exc).__name__})") from None
        now = self.clock()
        exp, iat = numeric_date(claims.get("exp")), numeric_date(claims.get("iat"))
        if exp is None or iat is None or ("nbf" in claims and numeric_date(claims["nbf"]) is None):
            raise Unauthorized("invalid access token times")
        if exp <= now - LEEWAY_SECONDS:
            raise Unauthorized("access token expired", error="invalid_token")
        if iat > now + LEEWAY_SECONDS:
            raise Unauthorized("access token issued in the future")
        return self._principal(claims, exp)

    def _principal(self, claims: dict[str, Any], expires_at: int) -> Principal:
        try:
            role = Role(str(claims.get("role")))
        except ValueError:
            raise Unauthorized("access token has no valid role") from None
        if role not in self.roles:
            raise Forbidden(f"this service does not serve {role} tokens", code="role_not_served")
        merchant_id, store_id = claims.get("merchant_id"), claims.get("store_id")
        without_merchant = role in (Role.admin, Role.partner)
        if not without_merchant and not isinstance(merchant_id, str):
            raise Unauthorized("access token has no merchant")
        if role is Role.device and not isinstance(store_id, str):
            raise Unauthorized("device token has no store")
        subject, token_id = claims.get("sub"), claims.get("jti")
        if not isinstance(subject, str) or not isinstance(token_id, str):
            raise Unauthorized("access token has no valid subject or id")
        if subject in self.deny_list:
            raise Unauthorized("access token revoked")
        return Principal(
            role=role,
            subject=subject,
            client_id=str(claims.get("client_id", subject)),
            merchant_id=None if without_merchant else merchant_id,
            store_id=store_id if role is Role.device else None,
            token_id=token_id,
            expires_at=expires_at,
            partner_id=(str(claims.get("partner_id") or subject)) if role is Role.partner else None,
        )


_bearer = HTTPBearer(auto_error=False, description="Access token from device-auth (`POST /oauth/token`)")
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
"""The `Authorization: Bearer` credentials as the security scheme documents them (not yet verified)."""


async def principal_of(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """Verify the bearer token of a request. For dependencies that authenticate as part of a bigger job (one
    dependency level less on hot paths); everyone else uses `PrincipalDep`."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("a bearer access token is required", error="invalid_request")
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.verify(credentials.credentials)


async def authenticate(request: Request, credentials: BearerCredentials) -> Principal:
    return await principal_of(request, credentials)


async def authenticate_websocket(websocket: WebSocket) -> Principal:
    """The WebSocket handshake may carry the token as `?access_token=` (browsers cannot set headers)."""
    header = websocket.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else websocket.query_params.get("access_token")
    if not token:
        raise Unauthorized("a bearer access token is required", error="invalid_request")
    verifier: TokenVerifier = websocket.app.state.token_verifier
    return await verifier.verify(token)


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    allowed = frozenset(roles)

    async def check(principal: PrincipalDep) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(f"this operation needs the role {' or '.join(sorted(r.value for r in allowed))}")
        return principal

    return check


AdminDep = Annotated[Principal, Depends(require_roles(Role.admin))]
MerchantOrAdminDep = Annotated[Principal, Depends(require_roles(Role.merchant, Role.admin))]


def deny_revoked_devices(app: FastAPI, verifier: TokenVerifier) -> None:
    """Feed the deny-list from `device.revoked` events. The consumer starts a token lifetime in the past, so a
    process that (re)starts still learns of every revocation whose tokens could be alive."""
    state: dict[str, Any] = {}

    async def on_event(msg: Msg) -> None:
        try:
            event = json.loads(msg.data)
            subject = str(event["subject"])
        except (ValueError, KeyError, TypeError):
            log.warning("bad_revocation_event")
            return
        verifier.deny_list.add(subject, until=verifier.clock() + DEVICE_TOKEN_LIFETIME + 2 * LEEWAY_SECONDS)
        log.info("device_denied", device_id=subject)

    async def subscribe(client: Client) -> None:
        old = state.pop("subscription", None)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        js = await ensure_stream(client)
        start = utcnow() - timedelta(seconds=DEVICE_TOKEN_LIFETIME + 2 * LEEWAY_SECONDS)
        state["subscription"] = await js.subscribe(
            REVOKED_SUBJECT,
            cb=on_event,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start),
        )

    app.state.nats.on_connected(subscribe)


def token_verification(
    jwks_loader: JwksLoader | None = None,
    refresh_interval: float = JWKS_REFRESH_INTERVAL,
    roles: frozenset[Role] = SERVICE_ROLES,
) -> Callable[[FastAPI], Any]:
    """App extension: a verifier for the issuer's tokens (remote JWKS by default) fed by revocation events.
    `refresh_interval` bounds how often an unknown `kid` may trigger a JWKS fetch (a remote fetch is a DoS lever)."""

    @asynccontextmanager
    async def extension(app: FastAPI) -> AsyncIterator[None]:
        issuer = app.state.settings.auth_issuer
        jwks_url = app.state.settings.auth_jwks_url or issuer.rstrip("/") + "/.well-known/jwks.json"
        loader = jwks_loader or remote_jwks(jwks_url)
        verifier = TokenVerifier(
            issuer, loader, clock=lambda: float(app.state.clock()), refresh_interval=refresh_interval, roles=roles
        )
        app.state.token_verifier = verifier
        deny_revoked_devices(app, verifier)
        yield

    return extension
