from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from smartpos_shared.certification import observe
from smartpos_shared.errors import ServiceUnavailable
from smartpos_shared.pg import DbDep

from ..users import service as users
from .algorithms import ASSERTION_ALGORITHMS
from .service import AuthUnavailable, OAuthError, TokenService, invalid_request, parse_form

router = APIRouter(tags=["oauth"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_TOKEN_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {
                            "type": "string",
                            "enum": ["client_credentials", "authorization_code", "refresh_token"],
                        },
                        "client_assertion_type": {
                            "type": "string",
                            "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
                        },
                        "client_assertion": {"type": "string", "description": "private_key_jwt assertion (devices)"},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string", "description": "client_secret_post"},
                        "code": {"type": "string", "description": "authorization_code: from /authorize"},
                        "redirect_uri": {"type": "string", "description": "authorization_code: as at /authorize"},
                        "code_verifier": {"type": "string", "description": "authorization_code: PKCE (RFC 7636)"},
                        "refresh_token": {"type": "string", "description": "refresh_token: rotated on each use"},
                    },
                }
            }
        },
    }
}
_OAUTH_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
            }
        }
    }
}


def oauth_error_response(exc: OAuthError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers={**NO_STORE, **exc.headers},
    )


@router.post(
    "/oauth/token",
    summary="Token endpoint (client_credentials; private_key_jwt, client_secret_basic, client_secret_post)",
    openapi_extra=_TOKEN_FORM,
    responses={
        200: {
            "description": "An access token",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "access_token": {"type": "string"},
                            "token_type": {"type": "string"},
                            "expires_in": {"type": "integer"},
                            "scope": {"type": "string"},
                        },
                    }
                }
            },
        },
        400: {"description": "invalid_request / unsupported_grant_type", **_OAUTH_ERROR},
        401: {"description": "invalid_client", **_OAUTH_ERROR},
        429: {"description": "too many failed attempts for this client", **_OAUTH_ERROR},
        503: {"description": "the replay store is unavailable: no token is issued", **_OAUTH_ERROR},
    },
)
async def token(request: Request, db: DbDep) -> JSONResponse:
    service: TokenService = request.app.state.token_service
    now = float(request.app.state.clock())
    try:
        form = parse_form(
            await request.body(), request.headers.get("content-type", ""), request.headers.get("authorization")
        )
        if form.grant_type is None:
            raise invalid_request("grant_type is required")
        if form.grant_type in ("authorization_code", "refresh_token"):
            return JSONResponse(await browser_grant(request, form.grant_type, form.params, now), headers=NO_STORE)
        if form.grant_type != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "client_credentials, authorization_code or refresh_token")
        client = await service.authenticate(db, form, now)
        body = await service.issue(client, now)
        if client.merchant_id is not None:  # in a certification run (sandbox): evidence for `token_renewed`
            await observe(
                db,
                source="device-auth",
                event_type="token.issued",
                merchant_id=client.merchant_id,
                store_id=client.store_id,
                subject=client.client_id,
                data={
                    "client_id": client.client_id,
                    "role": client.role,
                    "method": client.method,
                    "issued_at": int(now),
                    "expires_at": int(now) + int(body["expires_in"]),
                },
                now=datetime.fromtimestamp(now, UTC),
            )
    except OAuthError as exc:
        return oauth_error_response(exc)
    except (AuthUnavailable, ServiceUnavailable, RedisError):  # Redis: where sign-in codes are kept
        return oauth_error_response(
            OAuthError(503, "temporarily_unavailable", "the authorization server cannot issue tokens right now")
        )
    return JSONResponse(body, headers=NO_STORE)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


async def browser_grant(request: Request, grant_type: str, params: dict[str, str], now: float) -> dict[str, Any]:
    """A person's tokens: a sign-in code redeemed with its PKCE verifier (users/service.py), or a refresh token
    rotated. Public web clients: no secret, the registered client id and redirect URI instead."""
    settings = request.app.state.settings
    web_client = params.get("client_id", "")
    if web_client not in settings.web_clients:
        raise OAuthError(401, "invalid_client", "not a registered web client")
    at = datetime.fromtimestamp(now, UTC)
    lifetime = timedelta(seconds=settings.refresh_token_lifetime)
    refused: str | None = None
    async with request.app.state.sessionmaker() as session, session.begin():
        if grant_type == "authorization_code":
            verifier, code = params.get("code_verifier", ""), params.get("code", "")
            if not code or not users.valid_verifier(verifier):
                raise invalid_request("code and a code_verifier (43-128 characters) are required")
            grant = await users.redeem_code(request.app.state.redis, code)  # spent, whatever follows
            if grant is None or grant["client_id"] != web_client or grant["redirect_uri"] != params.get("redirect_uri"):
                raise invalid_grant("the code is unknown, spent, expired, or was issued for another client or redirect")
            if not hmac.compare_digest(users.challenge_of(verifier), grant["challenge"]):
                raise invalid_grant("the code_verifier does not match the code_challenge")
            user_id, role, merchant_id = grant["user_id"], grant["role"], grant["merchant_id"]
            partner_id = grant.get("partner_id")
            refresh = await users.new_refresh_token(session, user_id, web_client, None, at, lifetime)
        else:
            rotated = await users.rotate(session, params.get("refresh_token", ""), web_client, at, lifetime)
            if isinstance(rotated, str):  # refused; a reuse's family revocation commits with the refusal
                refused = rotated
            else:
                user, refresh = rotated
                user_id, role, merchant_id, partner_id = user.id, user.role, user.merchant_id, user.partner_id
    if refused is not None:
        raise invalid_grant("the refresh token is unknown, expired, revoked or was used before")
    service: TokenService = request.app.state.token_service
    body = await service.issue_for_user(user_id, role, merchant_id, partner_id, web_client, now)
    return {**body, "refresh_token": refresh}


@router.get("/.well-known/oauth-authorization-server", summary="RFC 8414 authorization server metadata")
async def metadata(request: Request) -> dict[str, Any]:
    issuer = request.app.state.settings.auth_issuer.rstrip("/")
    return {
        "issuer": request.app.state.settings.auth_issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "authorization_endpoint": f"{issuer}/authorize",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "client_secret_post"],
        "token_endpoint_auth_signing_alg_values_supported": sorted(ASSERTION_ALGORITHMS),
        "response_types_supported": ["code"],
        "scopes_supported": ["device", "merchant", "admin"],
        "service_documentation": f"{issuer}/docs",
    }


@router.get("/.well-known/jwks.json", summary="Public keys that sign access tokens (newest first)")
async def jwks(request: Request) -> JSONResponse:
    keys = await request.app.state.keyring.jwks()
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=60"})
