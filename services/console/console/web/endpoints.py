"""The console's pages, for operators signed in through device-auth (smartpos_shared/web.py: the console keeps
their tokens, the browser an HttpOnly cookie): the reviewers' queue of configuration change requests (read from
and approved at the portal with the operator's own token, so the portal's rules apply: never the author, once
each) and the audit log with its chain verified. Admins only; anyone else sees a 403 page.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from smartpos_shared import web
from smartpos_shared.auth import Principal, Role
from smartpos_shared.db import SessionDep

from ..audit import log

router = APIRouter(prefix="/console", include_in_schema=False)
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
CHANGE_ID = r"^chg_[0-9A-HJKMNP-TV-Z]{26}$"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    body = TEMPLATES.get_template(template).render(csrf=web.csrf_token(request), **context)
    return HTMLResponse(body, status_code, headers=web.page_headers(request.app.state.settings.public_url))


def pages(settings: Any) -> web.WebPages:
    return web.WebPages("/console", settings.public_url, settings.web_client_id, "smartpos_console_session",
                        settings.web_session_seconds)  # fmt: skip


session_router = web.session_router("/console", render)


async def _operator(request: Request, roles: frozenset[Role] = frozenset({Role.admin})) -> Principal | Response:
    principal = await web.principal_of(request)
    if principal is None:
        return RedirectResponse(f"/console/login?next={request.url.path}", status.HTTP_303_SEE_OTHER)
    if principal.role not in roles:
        return render(request, "message.html", 403, title="Operators only", principal=principal,
                      message="These pages are for platform operators.", link=None, link_text="")  # fmt: skip
    return principal


async def _own_api(request: Request, method: str, path: str) -> httpx.Response:
    """The console's own API, in process, as the signed-in person (its checks and audit entries apply)."""
    session = await web.session_of(request)
    assert session is not None
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.internal") as client:
        return await client.request(method, path, headers={"Authorization": f"Bearer {session['access_token']}"})


PARTNERS_AND_OPERATORS = frozenset({Role.admin, Role.partner})


@router.get("/certification/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, notice: str | None = None) -> Response:
    principal = await _operator(request, PARTNERS_AND_OPERATORS)
    if isinstance(principal, Response):
        return principal
    answer = await _own_api(request, "GET", f"/certification/runs/{run_id}")
    if answer.status_code != 200:
        return render(request, "message.html", 404, title="No such certification run", principal=principal,
                      message=run_id, link="/console", link_text="Console")  # fmt: skip
    run = answer.json()
    signed = {a["principal_id"] for a in run["approvals"]}
    can_sign = run["status"] == "completed" and run["result"] == "passed" and principal.subject not in signed
    passed = sum(1 for c in run["cases"] if c["status"] == "passed")
    return render(request, "run.html", title=f"Certification run {run_id}", principal=principal, run=run,
                  passed=passed, can_sign=can_sign, notice=notice)  # fmt: skip


@router.post("/certification/runs/{run_id}/sign-off")
async def sign_off(request: Request, run_id: str) -> Response:
    principal = await _operator(request, PARTNERS_AND_OPERATORS)
    if isinstance(principal, Response):
        return principal
    form = await web.form_of(request)
    if not hmac.compare_digest(form.get("csrf", ""), web.csrf_token(request)):
        return render(request, "message.html", 403, title="Not signed off", principal=principal,
                      message="This form was not sent from the console.", link=f"/console/certification/runs/{run_id}",
                      link_text="Back")  # fmt: skip
    answer = await _own_api(request, "POST", f"/certification/runs/{run_id}/approvals")
    notice = "Signed off." if answer.status_code == 200 else f"Not signed off: {answer.json().get('detail')}"
    return await run_page(request, run_id, notice)


async def _portal(request: Request, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The portal's API with the signed-in operator's own token (its rules, its audit)."""
    session = await web.session_of(request)
    assert session is not None
    http: httpx.AsyncClient = request.app.state.web_http
    url = f"{request.app.state.settings.portal_url.rstrip('/')}{path}"
    return await http.request(method, url, headers={"Authorization": f"Bearer {session['access_token']}"}, **kwargs)


@router.get("", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    principal = await _operator(request)
    if isinstance(principal, Response):
        return principal
    pending = await _portal(request, "GET", "/change-requests", params={"status": "pending_approval", "limit": 200})
    count = len(pending.json().get("items", [])) if pending.status_code == 200 else "unknown (portal unavailable)"
    return render(request, "home.html", title="Console", principal=principal, pending=count)


@router.get("/change-requests", response_class=HTMLResponse)
async def change_requests(request: Request) -> Response:
    principal = await _operator(request)
    if isinstance(principal, Response):
        return principal
    answer = await _portal(request, "GET", "/change-requests", params={"limit": 100})
    items = answer.json().get("items", []) if answer.status_code == 200 else []
    return render(request, "change_requests.html", title="Change requests", principal=principal, changes=items)


@router.get("/change-requests/{change_id}", response_class=HTMLResponse)
async def change_request(request: Request, change_id: str, notice: str | None = None) -> Response:
    principal = await _operator(request)
    if isinstance(principal, Response):
        return principal
    answer = await _portal(request, "GET", f"/change-requests/{change_id}")
    if answer.status_code != 200:
        return render(request, "message.html", 404, title="No such change request", principal=principal,
                      message=change_id, link="/console/change-requests", link_text="Change requests")  # fmt: skip
    return render(request, "change_request.html", title=f"Change request {change_id}", principal=principal,
                  change=answer.json(), notice=notice)  # fmt: skip


@router.post("/change-requests/{change_id}/approve")
async def approve(request: Request, change_id: str) -> Response:
    principal = await _operator(request)
    if isinstance(principal, Response):
        return principal
    form = await web.form_of(request)
    if not hmac.compare_digest(form.get("csrf", ""), web.csrf_token(request)):
        return render(request, "message.html", 403, title="Not approved", principal=principal,
                      message="This form was not sent from the console.", link=f"/console/change-requests/{change_id}",
                      link_text="Back")  # fmt: skip
    answer = await _portal(request, "POST", f"/change-requests/{change_id}/approvals")
    if answer.status_code == 200:
        notice = f"Approved: the change is {answer.json()['status']}."
    else:
        notice = f"Not approved: {answer.json().get('detail', answer.status_code)}"
    return await change_request(request, change_id, notice)


@router.get("/audit", response_class=HTMLResponse)
async def audit(request: Request, session: SessionDep) -> Response:
    principal = await _operator(request)
    if isinstance(principal, Response):
        return principal
    entries = await log.latest(session, 200)
    verification = await log.verify(session)
    return render(request, "audit.html", title="Audit log", principal=principal, entries=entries,
                  verification=verification.body())  # fmt: skip


@router.get("/rollouts/{rollout_id}", response_class=HTMLResponse)
async def rollout_page(request: Request, rollout_id: str) -> Response:
    principal = await _operator(request, PARTNERS_AND_OPERATORS)
    if isinstance(principal, Response):
        return principal
    rollout = await _own_api(request, "GET", f"/rollouts/{rollout_id}")
    health = await _own_api(request, "GET", f"/rollouts/{rollout_id}/health")
    if rollout.status_code != 200 or health.status_code != 200:
        return render(request, "message.html", 404, title="No such rollout", principal=principal,
                      message=rollout_id, link="/console", link_text="Console")  # fmt: skip
    return render(request, "rollout.html", title=f"Rollout {rollout_id}", principal=principal,
                  rollout=rollout.json(), health=health.json())  # fmt: skip
