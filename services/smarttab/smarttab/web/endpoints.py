"""The merchant dashboard: pages served by smarttab, for people signed in through device-auth (web/session.py).

`/dashboard` lists the merchant's stores; `/dashboard/stores/{id}` shows today's totals and orders, updated live
from the WebSocket feed (static/live.js) without a reload. Another merchant's store is the same 404 page as a store
that does not exist. Pages carry a strict CSP (scripts and styles from this origin only, no framing), and the one
form (sign out) a synchronizer token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from smartpos_shared import web
from smartpos_shared.auth import Principal, Role
from smartpos_shared.db import SessionDep

from ..projections import repository

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
ULID = r"[0-9A-HJKMNP-TV-Z]{26}"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    body = TEMPLATES.get_template(template).render(csrf=web.csrf_token(request), **context)
    return HTMLResponse(body, status_code, headers=web.page_headers(request.app.state.settings.public_url))


def _sign_in(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/dashboard/login?next={request.url.path}", status.HTTP_303_SEE_OTHER)


def pages(settings: Any) -> web.WebPages:
    return web.WebPages("/dashboard", settings.public_url, settings.web_client_id, "smartpos_session",
                        settings.web_session_seconds)  # fmt: skip


session_router = web.session_router("/dashboard", render)


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
    books = await _books(request, store_id)
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
        **books,
    )


async def _books(request: Request, store_id: str) -> dict[str, Any]:
    """The store's books from the portal, read with the person's own token (its tenancy rules apply): recent
    shifts, Z reports with the chain's verification, and the latest sealed day's reconciliation."""
    tokens = await web.session_of(request)
    assert tokens is not None
    http: httpx.AsyncClient = request.app.state.web_http
    portal = request.app.state.settings.portal_url.rstrip("/")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}

    async def read(path: str, **params: Any) -> Any:
        try:
            answer = await http.get(f"{portal}{path}", params=params, headers=headers)
        except httpx.HTTPError:
            return None
        return answer.json() if answer.status_code == 200 else None

    shifts = await read("/shifts", store_id=store_id, limit=5)
    reports = await read(f"/stores/{store_id}/closeouts", verify="true", limit=7)
    latest = (reports or {}).get("items") or []
    reconciliation = await read(f"/stores/{store_id}/reconciliations/{latest[0]['business_date']}") if latest else None
    return {
        "books_available": shifts is not None and reports is not None,
        "shifts": (shifts or {}).get("items", []),
        "reports": latest,
        "chain": (reports or {}).get("verification"),
        "reconciliation": reconciliation,
    }
