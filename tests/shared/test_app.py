"""The shared app factory's request handling, in process: errors, validation, body limit, request ids."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, Field

from smartpos_shared.app import MAX_BODY_BYTES, create_app
from smartpos_shared.errors import Conflict
from smartpos_shared.settings import ServiceSettings

router = APIRouter()


class Thing(BaseModel):
    name: str = Field(min_length=1)
    amount: int = Field(gt=0)


@router.post("/things")
async def create_thing(thing: Thing) -> Thing:
    return thing


@router.post("/conflict")
async def conflict() -> None:
    raise Conflict("already done", code="already_done")


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ServiceSettings(), title="t", description="t", routers=[router], access_log=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_validation_errors_are_422_problem_json_listing_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "", "amount": "lots"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {tuple(e["loc"]) for e in response.json()["errors"]}
    assert fields == {("body", "name"), ("body", "amount")}


async def test_bad_json_is_a_4xx_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["type"].endswith("validation_failed")


async def test_domain_errors_render_with_their_status_and_code(client: httpx.AsyncClient) -> None:
    response = await client.post("/conflict")
    assert response.status_code == 409
    assert response.json()["type"].endswith("/already_done")
    assert response.json()["detail"] == "already done"


async def test_unexpected_errors_are_opaque_500s_logged_with_the_request_id(client: httpx.AsyncClient) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        response = await client.get("/boom", headers={"X-Request-ID": "req-boom-1"})
    assert response.status_code == 500
    assert "secret internals" not in response.text
    errors = [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert len(errors) == 1 and errors[0]["request_id"] == "req-boom-1" and errors[0]["error_type"] == "RuntimeError"


async def test_oversized_bodies_are_refused_with_413(client: httpx.AsyncClient) -> None:
    big = b'{"name": "' + b"x" * MAX_BODY_BYTES + b'", "amount": 1}'
    response = await client.post("/things", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


async def test_request_id_is_generated_or_echoed_but_never_unsafe(client: httpx.AsyncClient) -> None:
    generated = (await client.get("/healthz")).headers["x-request-id"]
    assert len(generated) == 32
    assert (await client.get("/healthz", headers={"X-Request-ID": "abc-1"})).headers["x-request-id"] == "abc-1"
    forged = (await client.get("/healthz", headers={"X-Request-ID": "a b\tc"})).headers["x-request-id"]
    assert forged != "a b\tc"
