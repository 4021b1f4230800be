"""The FastAPI factory every service uses: infrastructure clients, middleware, errors, health and metrics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db import count_statements, create_engine, make_sessionmaker
from .errors import PROBLEM_COMPONENT, PayloadTooLarge, install_error_handlers, problem
from .health import router as health_router
from .logging import configure_logging
from .nats import NatsConnection
from .observability import Metrics, ObservabilityMiddleware
from .settings import ServiceSettings

log = structlog.get_logger("smartpos.app")

Extension = Callable[[FastAPI], AbstractAsyncContextManager[None]]

MAX_BODY_BYTES = 64 * 1024


class BodySizeLimitMiddleware:
    """Refuse request bodies over `limit` bytes with 413, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise PayloadTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except PayloadTooLarge:  # raised outside the app's own exception handling
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await payload_too_large(self.limit)(scope, receive, send)


def payload_too_large(limit: int = MAX_BODY_BYTES) -> JSONResponse:
    return problem(413, "payload_too_large", "Payload too large", f"request bodies are limited to {limit} bytes")


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    extensions: Sequence[Extension] = (),
    access_log: bool = True,
) -> FastAPI:
    """Build a service app. `extensions` are async context managers entered after the shared clients exist
    (in order) and left before they close: consumers, relays, background tasks."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        app.state.engine = create_engine(
            settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
        )
        count_statements(app.state.engine, app.state.metrics.db_statement)
        app.state.sessionmaker = make_sessionmaker(app.state.engine)
        app.state.redis = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=False
        )
        app.state.nats = NatsConnection(settings.nats_url, name=settings.service_name)
        await app.state.nats.start()
        log.info("service_starting", env=settings.env.value, port=settings.port)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for extension in extensions:
                    await stack.enter_async_context(extension(app))
                yield
        finally:
            await app.state.nats.close()
            await app.state.redis.aclose()
            await app.state.engine.dispose()
            log.info("service_stopped")

    # FastAPI's native OpenTelemetry hooks stay off: metrics are Prometheus (/metrics), and asking each request
    # whether a provider is configured is a cost on every request.
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.clock = time.time  # tests swap it to move past token expiry without sleeping
    app.state.metrics = Metrics(settings.service_name)
    install_error_handlers(app)
    # The service's own routes first and the operations endpoints last: a request walks the route list until one
    # matches, and the hot paths should not pay for /healthz, /readyz and /metrics first.

    async def too_large(request: Request, exc: Exception) -> JSONResponse:
        return payload_too_large()

    app.add_exception_handler(PayloadTooLarge, too_large)
    for router in routers:
        app.include_router(router)
    app.include_router(health_router)
    app.add_middleware(BodySizeLimitMiddleware)
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics, access_log=access_log)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_COMPONENT
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
