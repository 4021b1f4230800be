"""One ASGI middleware for request ids, Prometheus metrics and the access log.

Metrics are labelled by the route template (`/orders/{order_id}`), never the raw path, so label cardinality
stays bounded.
"""

from __future__ import annotations

import time
import uuid
from contextvars import ContextVar

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
_log = structlog.get_logger("smartpos.access")
# The current request's id, for every log line of the request (logging.py adds it). One ContextVar set per
# request: structlog's bind_contextvars creates and merges a variable per key, a measurable cost per request.
request_id_var: ContextVar[str | None] = ContextVar("smartpos_request_id", default=None)


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route, method and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route and method",
            ["service", "method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )

        # Every statement a service sends PostgreSQL (BEGIN/COMMIT excluded), by whichever path sends it: the
        # benchmark divides it by checkout flows, operators watch it for N+1 regressions.
        self.db_statements = Counter(
            "db_statements_total", "SQL statements sent to PostgreSQL", ["service"], registry=self.registry
        )
        self.db_statement = self.db_statements.labels(service)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _valid_request_id(raw: bytes) -> str | None:
    # Accept a caller's id only if it is short and printable, so it cannot forge log lines.
    if 0 < len(raw) <= 128 and all(0x21 <= b <= 0x7E for b in raw):
        return raw.decode("ascii")
    return None


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                request_id = _valid_request_id(value)
                break
        request_id = request_id or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status_code = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # Logged here, where the request id is known; the outermost handler then answers an opaque 500.
            _log.exception(
                "unhandled_error", request_id=request_id, path=scope.get("path"), error_type=type(exc).__name__
            )
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(self.metrics.service, method, template, str(status_code)).inc()
            self.metrics.latency.labels(self.metrics.service, method, template).observe(elapsed)
            if self.access_log:
                _log.info(
                    "request",
                    method=method,
                    route=template,
                    status=status_code,
                    duration_ms=round(elapsed * 1000, 2),
                )
            request_id_var.reset(token)


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    return metrics.render()
