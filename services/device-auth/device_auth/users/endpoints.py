"""Users and their browser sign-in: `POST /users` (admins), `GET/POST /authorize` (the sign-in page of the
authorization code flow with PKCE). The token endpoint redeems the code and rotates refresh tokens
(tokens/endpoints.py). users/service.py says how it is kept safe.

The sign-in page: a registered web client (`AUTH_WEB_CLIENTS`) and its exact redirect URI, or a plain 400 page
(never a redirect to an unchecked URI); `response_type=code` and an S256 `code_challenge` only. The form is
protected from cross-site posting by a double-submit token (a SameSite=Strict cookie and the same value in the
form) and from framing by CSP `frame-ancestors 'none'`.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field, StringConstraints, model_validator
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from smartpos_shared.auth import AdminDep
from smartpos_shared.db import SessionDep
from smartpos_shared.errors import MALFORMED_BODY, Conflict, Unprocessable, problem_schema
from smartpos_shared.schemas import RequestModel

from ..settings import AuthSettings
from ..tokens.service import parse_params
from . import service

router = APIRouter(tags=["users"])
USER_ERRORS: dict[int | str, dict[str, Any]] = {
    400: problem_schema(MALFORMED_BODY),
    401: problem_schema("Missing, invalid or expired access token"),
    403: problem_schema("Admins only"),
    409: problem_schema("email_taken: a user with this email exists"),
    413: problem_schema("Request body too large"),
    422: problem_schema("Invalid input"),
}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


PAGE_ANSWERS: dict[int | str, dict[str, Any]] = {
    303: {"description": "back to the web client's redirect URI: `code` and `state`, or `error` (RFC 6749 4.1.2)"},
    400: _html("unknown web client or redirect URI (never redirected), or a malformed form"),
    401: _html("the sign-in page again: wrong email or password, or too many attempts"),
    403: _html("the form was not sent from the sign-in page (no matching double-submit token)"),
    413: _html("request body too large"),
    503: _html("sign-in unavailable for a moment (Redis)"),
}
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates"),
    autoescape=select_autoescape(["html"]),
)
CSRF_COOKIE = "smartpos_signin"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "code_challenge", "code_challenge_method", "state")


class UserCreate(RequestModel):
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    password: Annotated[str, StringConstraints(min_length=12, max_length=256)]
    role: Literal["merchant", "admin", "partner"]
    merchant_id: Annotated[str, StringConstraints(pattern=r"^mer_[0-9A-HJKMNP-TV-Z]{26}$")] | None = None
    partner_id: Annotated[str, StringConstraints(pattern=r"^cli_[0-9A-HJKMNP-TV-Z]{26}$")] | None = Field(
        default=None, description="partner engineers: their partner's API client (console: integrations, runs)"
    )

    @model_validator(mode="after")
    def _organisation(self) -> UserCreate:
        if (self.role == "merchant") != (self.merchant_id is not None):
            raise ValueError("merchant staff name their merchant_id; nobody else has one")
        if (self.role == "partner") != (self.partner_id is not None):
            raise ValueError("partner engineers name their partner_id; nobody else has one")
        return self


class UserPublic(BaseModel):
    id: str
    email: str
    role: str
    merchant_id: str | None = Field(description="merchant staff: their merchant")
    partner_id: str | None = Field(default=None, description="partner engineers: their partner")


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=USER_ERRORS,
    summary="Create a user who signs in through a browser: merchant staff or an operator (admins)",
)
async def create_user(body: UserCreate, _: AdminDep, session: SessionDep) -> Any:
    if body.partner_id is not None:
        partner = await session.execute(
            text("SELECT 1 FROM oauth_clients WHERE id = :id AND role = 'partner' AND status = 'active'"),
            {"id": body.partner_id},
        )
        if partner.first() is None:
            raise Unprocessable("no active partner client has this id", code="unknown_partner")
    try:
        async with session.begin_nested():
            user = await service.create_user(
                session, body.email, body.password, body.role, body.merchant_id, body.partner_id
            )
    except IntegrityError:
        raise Conflict("a user with this email exists", code="email_taken") from None
    return {"id": user.id, "email": user.email, "role": user.role, "merchant_id": user.merchant_id,
            "partner_id": user.partner_id}  # fmt: skip


def _page(status_code: int, redirect_uri: str, **context: Any) -> HTMLResponse:
    """The sign-in page. Its form may lead (by the 303) to the web client's verified redirect URI only: browsers
    apply `form-action` to the redirect too."""
    target = urlsplit(redirect_uri)
    headers = {**PAGE_HEADERS, "Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"].replace(
        "form-action 'self'", f"form-action 'self' {target.scheme}://{target.netloc}")}  # fmt: skip
    return HTMLResponse(TEMPLATES.get_template("sign_in.html").render(**context), status_code, headers=headers)


def _refusal(status_code: int, message: str) -> HTMLResponse:
    body = f"<!doctype html><html lang=en><title>Sign-in refused</title><main><h1>{message}</h1></main></html>"
    return HTMLResponse(body, status_code, headers=PAGE_HEADERS)


def _checked(settings: AuthSettings, params: dict[str, str]) -> Response | None:
    """None if the request may be answered with a sign-in page; else the answer (a 400 page or an error
    redirect to the verified redirect URI)."""
    client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
    if redirect_uri not in settings.web_clients.get(client_id, ()):
        return _refusal(400, "Unknown application or redirect address")  # never redirect to an unchecked URI
    error = None
    if params.get("response_type") != "code":
        error = ("unsupported_response_type", "only the authorization code flow (response_type=code)")
    elif params.get("code_challenge_method") != "S256" or not service.valid_challenge(params.get("code_challenge", "")):
        error = ("invalid_request", "PKCE is required: code_challenge_method=S256 and a code_challenge")
    if error is None:
        return None
    query = {
        "error": error[0],
        "error_description": error[1],
        **({"state": params["state"]} if "state" in params else {}),
    }
    return RedirectResponse(f"{redirect_uri}?{urlencode(query)}", status.HTTP_303_SEE_OTHER)


@router.get(
    "/authorize",
    response_class=HTMLResponse,
    responses=PAGE_ANSWERS,
    summary="Browser sign-in (authorization code flow with PKCE)",
)
async def authorize_page(request: Request) -> Response:
    params = {k: v for k, v in request.query_params.items() if k in AUTHORIZE_PARAMS}
    if (refused := _checked(request.app.state.settings, params)) is not None:
        return refused
    token = secrets.token_urlsafe(32)
    page = _page(200, params["redirect_uri"], client_name=params["client_id"], action="/authorize",
                 hidden={**params, "csrf": token},
                 email="", error=None)  # fmt: skip
    page.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/authorize", max_age=900)
    return page


@router.post(
    "/authorize",
    response_class=HTMLResponse,
    responses=PAGE_ANSWERS,
    summary="Sign in: redirects back with a one-time code",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["email", "password", "csrf", "client_id", "redirect_uri"],
                        "properties": {
                            name: {"type": "string"} for name in ("email", "password", "csrf", *AUTHORIZE_PARAMS)
                        },
                    }
                }
            },
        }
    },
)
async def authorize(request: Request) -> Response:
    settings: AuthSettings = request.app.state.settings
    try:
        form = parse_params(await request.body(), request.headers.get("content-type", ""))
    except Exception:
        return _refusal(400, "Malformed sign-in form")
    params = {k: v for k, v in form.items() if k in AUTHORIZE_PARAMS}
    if (refused := _checked(settings, params)) is not None:
        return refused
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, form.get("csrf", "")):
        return _refusal(403, "This sign-in form expired or was not sent from this site: open the sign-in page again")
    now = datetime.fromtimestamp(float(request.app.state.clock()), UTC)
    # Its own transaction, committed either way: a failure counts towards the lockout.
    async with request.app.state.sessionmaker() as session, session.begin():
        user = await service.sign_in(
            session,
            form.get("email", ""),
            form.get("password", ""),
            now,
            limit=settings.login_failure_limit,
            lockout=timedelta(seconds=settings.login_lockout_seconds),
        )
    if user is None:
        return _page(401, params["redirect_uri"], client_name=params["client_id"], action="/authorize",
                     hidden={**params, "csrf": cookie}, email=form.get("email", ""),
                     error="Wrong email or password, or too many attempts: try again later.")  # fmt: skip
    try:
        code = await service.issue_code(
            request.app.state.redis, user, params["client_id"], params["redirect_uri"], params["code_challenge"]
        )
    except RedisError:
        return _refusal(503, "Sign-in is unavailable for a moment: try again")
    query = {"code": code, **({"state": params["state"]} if "state" in params else {})}
    answer = RedirectResponse(f"{params['redirect_uri']}?{urlencode(query)}", status.HTTP_303_SEE_OTHER)
    answer.delete_cookie(CSRF_COOKIE, path="/authorize")
    return answer
