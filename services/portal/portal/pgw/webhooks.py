"""`POST /webhooks/pgw`: the gateway tells us a payment succeeded or failed.

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
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.cache import VersionedCache
from smartpos_shared.db import SessionDep
from smartpos_shared.errors import DomainError, NotFound, problem, problem_schema
from smartpos_shared.schemas import RequestModel

from ..bills import repository as bills
from ..events import cache_of
from ..models import ProcessedWebhook
from ..orders import repository as orders
from ..payments import repository as payments
from ..payments import service as payment_service
from ..settings import PortalSettings
from .signature import BadSignature, verify

log = structlog.get_logger("smartpos.pgw.webhook")
router = APIRouter(tags=["payment gateway"])


class WebhookData(RequestModel):
    model_config = ConfigDict(extra="allow")
    pgw_reference: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    amount: int = Field(strict=True, gt=0)


class WebhookEvent(RequestModel):
    model_config = ConfigDict(extra="allow")
    id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    type: Literal["payment.succeeded", "payment.failed"]
    data: WebhookData


class BadWebhook(DomainError):
    status, code, title = 400, "bad_webhook", "Bad webhook"


class AmountMismatch(DomainError):
    status, code, title = 422, "amount_mismatch", "Amount does not match the payment"


async def _record(
    session: AsyncSession,
    event: WebhookEvent,
    payment_id: str | None,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Mark the event processed; False when a concurrent copy already did (it holds the unique key)."""
    result = await session.execute(
        insert(ProcessedWebhook)
        .values(
            event_id=event.id,
            event_type=event.type,
            pgw_reference=event.data.pgw_reference,
            payment_id=payment_id,
            outcome=outcome,
            detail=detail,
        )
        .on_conflict_do_nothing()
        .returning(ProcessedWebhook.event_id)
    )
    return result.first() is not None


async def handle(
    session: AsyncSession, cache: VersionedCache, event: WebhookEvent
) -> tuple[str, dict[str, Any] | None]:
    seen = await session.get(ProcessedWebhook, event.id)
    if seen is not None:
        return ("duplicate", None)  # documented: an event id seen before is 200 and changes nothing
    found = await payments.find_by_reference(session, event.data.pgw_reference)
    if found is None:
        raise NotFound("no payment has this pgw_reference", code="unknown_pgw_reference")
    order = await orders.lock_order(session, payment_service.ALL, found.order_id)
    assert order is not None
    bill = await bills.lock_bill(session, found.bill_id)
    payment = await payments.lock_payment(session, found.id)
    if payment.status != "pending":
        outcome = f"ignored_payment_{payment.status}"
        return (outcome if await _record(session, event, payment.id, outcome) else "duplicate", None)
    if event.type == "payment.succeeded" and event.data.amount != payment.amount:
        detail = {"expected_amount": payment.amount, "received_amount": event.data.amount}
        if not await _record(session, event, payment.id, "amount_mismatch", detail):
            return ("duplicate", None)
        log.error("pgw_amount_mismatch", payment_id=payment.id, event_id=event.id, **detail)
        return ("amount_mismatch", detail)
    if not await _record(session, event, payment.id, event.type):
        return ("duplicate", None)
    if event.type == "payment.succeeded":
        await payment_service.succeed(session, cache, order, bill, payment)
    else:
        await payment_service.fail(session, payment, "declined_by_gateway")
    return (event.type, None)


@router.post(
    "/webhooks/pgw",
    summary="Payment gateway webhook (signed; no bearer token)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookEvent.model_json_schema()}},
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
        404: problem_schema("No payment has this pgw_reference"),
        422: problem_schema("The amount does not match the payment: recorded, the payment is not marked paid"),
    },
)
async def receive_webhook(request: Request, session: SessionDep) -> JSONResponse:
    settings: PortalSettings = request.app.state.settings
    raw = await request.body()
    try:
        verify(
            request.headers.get("pgw-signature"),
            raw,
            settings.pgw_webhook_secret,
            now=float(request.app.state.clock()),
            tolerance=settings.webhook_tolerance_seconds,
        )
    except BadSignature as exc:
        log.warning("pgw_webhook_refused", reason=str(exc))
        raise BadWebhook(str(exc), code="bad_signature") from None
    try:
        event = WebhookEvent.model_validate(json.loads(raw))
    except (ValueError, ValidationError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise BadWebhook("the body is not a valid gateway event", code="malformed_event") from None
    outcome, detail = await handle(session, cache_of(request), event)
    if outcome == "amount_mismatch":
        # Recorded in this transaction (which commits): the answer is an error, the record stays.
        return problem(
            422,
            "amount_mismatch",
            "Amount does not match the payment",
            "the event's amount differs from the payment's; the payment was not marked paid",
            **(detail or {}),
        )
    return JSONResponse({"received": True, "outcome": outcome})
