"""`/healthz` (the process runs), `/readyz` (its database, Redis and NATS answer) and `/metrics`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from .errors import problem
from .observability import metrics_endpoint

CHECK_TIMEOUT = 1.5

router = APIRouter(tags=["operations"])


async def _check(name: str, probe: Callable[[], Awaitable[object]]) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT)
    except Exception as exc:
        return name, f"down: {type(exc).__name__}"
    return name, "ok"


@router.get("/healthz", summary="Liveness: 200 while the process runs")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: 200 when the database, Redis and NATS answer, else 503 naming what is down",
    responses={503: {"description": "A dependency is down; `checks` names it"}},
)
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state

    async def database() -> None:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def redis() -> None:
        await state.redis.ping()

    async def nats() -> None:
        await state.nats.ping(timeout=CHECK_TIMEOUT)

    results = dict(await asyncio.gather(_check("database", database), _check("redis", redis), _check("nats", nats)))
    down = sorted(name for name, status in results.items() if status != "ok")
    if down:
        return problem(
            503,
            "not_ready",
            "Service unavailable",
            "not ready: " + ", ".join(down) + " down",
            down=down,
            checks=results,
        )
    return JSONResponse({"status": "ready", "checks": results})


router.add_api_route(
    "/metrics",
    metrics_endpoint,
    methods=["GET"],
    summary="Prometheus metrics (text format)",
    include_in_schema=True,
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text exposition format", "content": {"text/plain": {}}}},
)
