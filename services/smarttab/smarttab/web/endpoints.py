"""The merchant dashboard: pages served by smarttab, for people signed in through device-auth (web/session.py).

`/dashboard` lists the merchant's stores; `/dashboard/stores/{id}` shows today's totals and orders, updated live
from the WebSocket feed (static/live.js) without a reload. Another merchant's store is the same 404 page as a store
that does not exist. Pages carry a strict CSP (scripts and styles from this origin only, no framing), and the one
form (sign out) a synchronizer token.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from smartpos_shared.auth import Principal, Role
from smartpos_shared.db import SessionDep

from ..projections import repository
from . import session as web

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
ULID = r"[0-9A-HJKMNP-TV-Z]{26}"


def headers_for(request: Request) -> dict[str, str]:
    origin = urlsplit(request.app.state.settings.public_url)
    ws = f"{'wss' if origin.scheme == 'https' else 'ws'}://{origin.netloc}"
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' {ws};"
            " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    body = TEMPLATES.get_template(template).render(csrf=web.csrf_token(request), **context)
    return HTMLResponse(body, status_code, headers=headers_for(request))


def _safe_next(path: str) -> str:
    """Only a path of the dashboard itself (never another site, never `//host`)."""
    return path if path.startswith("/dashboard") and not path.startswith("//") and "\\" not in path else "/dashboard"


def _sign_in(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/dashboard/login?next={request.url.path}", status.HTTP_303_SEE_OTHER)


@router.get("/login")
async def login(request: Request, next: Annotated[str, Query(max_length=300)] = "/dashboard") -> Response:
    return RedirectResponse(await web.start(request.app, _safe_next(next)), status.HTTP_303_SEE_OTHER)


@router.get("/callback")
async def callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=200)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    if error is not None or not code or not state:
        return render(request, "message.html", 400, title="Sign-in did not complete", principal=None,
                      message=f"The sign-in was refused ({error or 'no code'}).", link="/dashboard/login",
                      link_text="Sign in again")  # fmt: skip
    try:
        sid, next_path = await web.finish(request.app, code, state)
    except web.SignInFailed as exc:
        return render(request, "message.html", 400, title="Sign-in did not complete", principal=None,
                      message=str(exc), link="/dashboard/login", link_text="Sign in again")  # fmt: skip
    answer = RedirectResponse(_safe_next(next_path), status.HTTP_303_SEE_OTHER)
    secure = request.app.state.settings.public_url.startswith("https://")
    answer.set_cookie(web.COOKIE, sid, httponly=True, samesite="lax", secure=secure, path="/",
                      max_age=request.app.state.settings.web_session_seconds)  # fmt: skip
    return answer


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    if not hmac.compare_digest(str(form.get("csrf", "")), web.csrf_token(request)):
        return render(request, "message.html", 403, title="Not signed out", principal=None,
                      message="This form was not sent from the dashboard.", link="/dashboard",
                      link_text="Back")  # fmt: skip
    await web.end(request)
    answer = RedirectResponse("/dashboard/login", status.HTTP_303_SEE_OTHER)
    answer.delete_cookie(web.COOKIE, path="/")
    return answer


def _merchant_of(principal: Principal) -> str | None:
    return principal.merchant_id if principal.role is Role.merchant else None


@router.get("", response_class=HTMLResponse)
async def home(request: Request, session: SessionDep) -> Response:
    principal = await web.principal_of(request)
    if principal is None:
        return _sign_in(request)
    merchant_id = _merchant_of(principal)
    stores = await repository.stores_of(session, merchant_id) if merchant_id else []
    return render(request, "stores.html", title="Your stores", principal=principal, stores=stores)


@router.get("/stores/{store_id}", response_class=HTMLResponse)
async def store_page(request: Request, store_id: str, session: SessionDep) -> Response:
    principal = await web.principal_of(request)
    if principal is None:
        return _sign_in(request)
    merchant_id = _merchant_of(principal)
    owner = await repository.store_owner(session, store_id) if len(store_id) == 30 else None
    if merchant_id is None or owner != merchant_id:  # another merchant's store looks exactly like no store
        return render(request, "message.html", 404, title="Store not found", principal=principal,
                      message="There is no such store among yours.", link="/dashboard",
                      link_text="Your stores")  # fmt: skip
    midnight = datetime.combine(datetime.now(UTC).date(), dtime(0), tzinfo=UTC)
    orders = await repository.recent_orders(session, merchant_id, store_id, midnight, 100)
    count, completed, revenue = await repository.totals_since(session, merchant_id, store_id, midnight)
    names = dict(await repository.stores_of(session, merchant_id))
    return render(
        request,
        "store.html",
        title=names.get(store_id, store_id),
        principal=principal,
        store_id=store_id,
        store_name=names.get(store_id, store_id),
        orders=orders,
        since=max((o["seq"] for o in orders), default=""),
        today={"orders": count, "completed": completed, "revenue": revenue},
    )
