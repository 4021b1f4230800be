from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from smartpos_shared.certification import observe
from smartpos_shared.errors import ServiceUnavailable
from smartpos_shared.pg import DbDep

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
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "client_assertion_type": {
                            "type": "string",
                            "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
                        },
                        "client_assertion": {"type": "string", "description": "private_key_jwt assertion (devices)"},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string", "description": "client_secret_post"},
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
        if form.grant_type != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "only client_credentials is supported")
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
    except (AuthUnavailable, ServiceUnavailable):
        return oauth_error_response(
            OAuthError(503, "temporarily_unavailable", "the authorization server cannot issue tokens right now")
        )
    return JSONResponse(body, headers=NO_STORE)


@router.get("/.well-known/oauth-authorization-server", summary="RFC 8414 authorization server metadata")
async def metadata(request: Request) -> dict[str, Any]:
    issuer = request.app.state.settings.auth_issuer.rstrip("/")
    return {
        "issuer": request.app.state.settings.auth_issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "client_secret_post"],
        "token_endpoint_auth_signing_alg_values_supported": sorted(ASSERTION_ALGORITHMS),
        "response_types_supported": [],
        "scopes_supported": ["device", "merchant", "admin"],
        "service_documentation": f"{issuer}/docs",
    }


@router.get("/.well-known/jwks.json", summary="Public keys that sign access tokens (newest first)")
async def jwks(request: Request) -> JSONResponse:
    keys = await request.app.state.keyring.jwks()
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=60"})
