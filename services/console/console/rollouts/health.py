"""A pilot's health, from the event stream: while a rollout is in `pilot`, every card or qr payment at its merchant
since the pilot began (`payment.*` events, durable `console-pilot-health`, every environment) is kept in
`pilot_payments`; `GET /rollouts/{id}/health` compares what they show with thresholds, and promotion requires every
one met.

- `payments`: card and qr payments seen (at least `pilot_min_payments`: a pilot nobody used proves nothing);
- `payment_failure_rate`: failed / answered (declines included: a till that mis-sends amounts shows here);
- `error_rate`: payments the gateway has not answered `pilot_stuck_seconds` after they were taken (timeouts,
  lost webhooks), over all payments;
- `webhook_mismatches`: gateway webhooks that contradicted the platform (a capture after a failure or void, an
  amount that differs);
- `latency_p95_ms`: 95th percentile of taken → answered by the gateway.

The pilot is one organisation: every payment at its merchant counts, whichever till took it (events do not name
the device; the pilot merchant runs the integration being piloted).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.projector import projecting

from ..models import DeadLetter
from ..settings import ConsoleSettings

PAYMENT_EVENTS = "smartpos.*.payment.>"
FINAL = {"payment.succeeded": "succeeded", "payment.failed": "failed", "payment.canceled": "canceled"}
MISMATCHES = ("payment.captured_after_failure", "payment.captured_after_void", "payment.webhook_mismatch")

PILOTS = """
SELECT id FROM rollouts WHERE merchant_id = :merchant AND status = 'pilot' AND started_at <= :at"""
CREATED = """
INSERT INTO pilot_payments (rollout_id, payment_id, method, status, created_at)
VALUES (:rollout, :payment, :method, :status, :at)
ON CONFLICT (rollout_id, payment_id) DO UPDATE
SET method = EXCLUDED.method, created_at = EXCLUDED.created_at,
    status = coalesce(pilot_payments.status, EXCLUDED.status)"""
ANSWERED = """
INSERT INTO pilot_payments (rollout_id, payment_id, method, status, settled_at)
VALUES (:rollout, :payment, :method, :status, :at)
ON CONFLICT (rollout_id, payment_id) DO UPDATE
SET status = EXCLUDED.status, method = coalesce(pilot_payments.method, EXCLUDED.method),
    settled_at = coalesce(pilot_payments.settled_at, EXCLUDED.settled_at)"""
MISMATCH = """
INSERT INTO pilot_payments (rollout_id, payment_id, mismatch_events) VALUES (:rollout, :payment, ARRAY[:event])
ON CONFLICT (rollout_id, payment_id) DO UPDATE
SET mismatch_events = array_append(pilot_payments.mismatch_events, :event)
WHERE NOT (:event = ANY(pilot_payments.mismatch_events))"""
FIGURES = """
SELECT count(*) FILTER (WHERE created_at IS NOT NULL) AS payments,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status IN ('succeeded', 'failed')) AS answered,
       count(*) FILTER (WHERE status = 'canceled') AS canceled,
       count(*) FILTER (WHERE created_at IS NOT NULL AND settled_at IS NULL AND created_at < :stuck_before)
           AS unanswered,
       coalesce(sum(cardinality(mismatch_events)), 0) AS mismatches,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM settled_at - created_at) * 1000)
           FILTER (WHERE status IN ('succeeded', 'failed') AND created_at IS NOT NULL) AS latency_p95_ms
FROM pilot_payments WHERE rollout_id = :rollout AND (method IS NULL OR method <> 'cash')"""


async def apply_event(session: AsyncSession, event: dict[str, Any], stream_seq: int) -> None:
    kind = str(event.get("type", ""))
    data = event.get("data") or {}
    at = datetime.fromisoformat(str(event["time"]))
    pilots = (await session.execute(text(PILOTS), {"merchant": event.get("merchant_id"), "at": at})).scalars().all()
    if not pilots:
        return
    payment = str(data.get("payment_id") if kind == "payment.webhook_mismatch" else event.get("subject"))
    method = data.get("method")
    for rollout in pilots:
        row = {"rollout": rollout, "payment": payment, "method": method, "at": at}
        if kind in MISMATCHES:
            await session.execute(text(MISMATCH), {**row, "event": str(event["id"])})
        elif method == "cash":
            continue  # settled in the drawer: no gateway to watch
        elif kind == "payment.created":
            await session.execute(text(CREATED), {**row, "status": data.get("status")})
        elif kind in FINAL:
            await session.execute(text(ANSWERED), {**row, "status": FINAL[kind]})


async def health(
    session: AsyncSession, rollout: dict[str, Any], settings: ConsoleSettings, now: datetime
) -> dict[str, Any]:
    figures = (
        await session.execute(
            text(FIGURES),
            {"rollout": rollout["id"], "stuck_before": now - timedelta(seconds=settings.pilot_stuck_seconds)},
        )
    ).one()
    payments = int(figures.payments)
    failure_rate = figures.failed / figures.answered if figures.answered else 0.0
    error_rate = figures.unanswered / payments if payments else 0.0
    latency = round(float(figures.latency_p95_ms), 1) if figures.latency_p95_ms is not None else None
    metrics = {
        "payments": _metric(payments, settings.pilot_min_payments, payments >= settings.pilot_min_payments, "min"),
        "payment_failure_rate": _metric(
            round(failure_rate, 4), settings.pilot_max_failure_rate, failure_rate <= settings.pilot_max_failure_rate
        ),
        "error_rate": _metric(
            round(error_rate, 4), settings.pilot_max_error_rate, error_rate <= settings.pilot_max_error_rate
        ),
        "webhook_mismatches": _metric(
            int(figures.mismatches),
            settings.pilot_max_webhook_mismatches,
            figures.mismatches <= settings.pilot_max_webhook_mismatches,
        ),
        "latency_p95_ms": _metric(
            latency, settings.pilot_max_latency_p95_ms, latency is None or latency <= settings.pilot_max_latency_p95_ms
        ),
    }
    return {
        "rollout_id": rollout["id"],
        "merchant_id": rollout["merchant_id"],
        "status": rollout["status"],
        "window": {"from": rollout["started_at"], "to": min(now, rollout["pilot_ends_at"])},
        "pilot_over": now >= rollout["pilot_ends_at"],
        "metrics": metrics,
        "counts": {
            "payments": payments,
            "answered": int(figures.answered),
            "failed": int(figures.failed),
            "pending": payments - int(figures.answered) - int(figures.canceled),
        },
        "healthy": all(m["ok"] for m in metrics.values()),
    }


def _metric(value: Any, threshold: float, ok: bool, bound: str = "max") -> dict[str, Any]:
    return {"value": value, bound: threshold, "ok": bool(ok)}


@asynccontextmanager
async def pilot_health_projection(app: FastAPI) -> AsyncIterator[None]:
    settings: ConsoleSettings = app.state.settings
    async with projecting(
        app,
        subject=PAYMENT_EVENTS,
        durable=settings.pilot_projector_durable,
        apply=apply_event,
        dead_letter_model=DeadLetter,
        start_at_new=settings.pilot_projector_start == "new",
        inactive_seconds=settings.pilot_projector_inactive_seconds,
    ):
        yield
