"""`POST /webhooks/pgw`: the gateway tells us a payment or a refund succeeded or failed.

Signed (HMAC over timestamp and raw body, 300 s tolerance); deduplicated by the gateway's event id in the same
transaction as the change; an amount that does not match the payment never marks it paid (recorded, answered
422); out-of-order and repeated events change nothing.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, StringConstraints, ValidationError

from smartpos_shared.errors import DomainError, problem, problem_schema
from smartpos_shared.schemas import RequestModel, standalone_schema

from ..checkout.service import GatewayEvent, WebhookOutcome, apply_gateway_event
from ..context import SystemContextDep
from .signature import BadSignature, verify

log = structlog.get_logger("smartpos.pgw.webhook")
router = APIRouter(tags=["payment gateway"])


class WebhookData(RequestModel):
    model_config = ConfigDict(extra="allow")
    pgw_reference: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    amount: int = Field(strict=True, gt=0)
    # Why the gateway declined (payment.failed / refund.failed): becomes the payment's or refund's failure_reason.
    failure_code: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")] | None = None


class WebhookEvent(RequestModel):
    model_config = ConfigDict(extra="allow")
    id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    type: Literal["payment.succeeded", "payment.failed", "refund.succeeded", "refund.failed"]
    data: WebhookData


class BadWebhook(DomainError):
    status, code, title = 400, "bad_webhook", "Bad webhook"


@router.post(
    "/webhooks/pgw",
    summary="Payment gateway webhook (signed; no bearer token)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": standalone_schema(WebhookEvent)}},
        },
        "parameters": [
            {
                "name": "PGW-Signature",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": 't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">',
            }
        ],
    },
    responses={
        200: {"description": "Processed, or seen before (no change)"},
        400: problem_schema("Bad or missing signature, stale timestamp, or malformed event"),
        404: problem_schema("No payment (payment.*) or refund (refund.*) has this pgw_reference"),
        422: problem_schema("The amount does not match the payment or refund: recorded, nothing is settled by it"),
    },
)
async def receive_webhook(request: Request, ctx: SystemContextDep) -> JSONResponse:
    settings = ctx.services.settings
    raw = await request.body()
    try:
        verify(
            request.headers.get("pgw-signature"),
            raw,
            settings.pgw_webhook_secret,
            now=ctx.services.real_clock(),
            tolerance=settings.webhook_tolerance_seconds,
        )
    except BadSignature as exc:
        log.warning("pgw_webhook_refused", reason=str(exc))
        raise BadWebhook(str(exc), code="bad_signature") from None
    try:
        event = WebhookEvent.model_validate(json.loads(raw))
    except (ValueError, ValidationError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise BadWebhook("the body is not a valid gateway event", code="malformed_event") from None
    result = await apply_gateway_event(
        ctx, GatewayEvent(event.id, event.type, event.data.pgw_reference, event.data.amount, event.data.failure_code)
    )
    if result.outcome is WebhookOutcome.amount_mismatch:
        # Recorded (committed): the answer is an error, the record stays for review.
        log.error("pgw_amount_mismatch", event_id=event.id, **(result.detail or {}))
        detail: dict[str, Any] = dict(result.detail or {})
        return problem(
            422,
            "amount_mismatch",
            "Amount does not match the payment",
            "the event's amount differs from the payment's; the payment was not marked paid",
            **detail,
        )
    return JSONResponse({"received": True, "outcome": result.label})
