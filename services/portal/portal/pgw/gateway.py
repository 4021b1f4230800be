"""The payment gateway adapter (`SMARTPOS_PGW_MODE`): `mock` accepts the charge and sends a signed webhook back
shortly after; `manual` accepts it and waits for a webhook from outside (tests); `http` calls a real gateway.

`charge` runs after the payment's transaction committed, so the gateway never hears of a payment we lost.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import httpx
import structlog
from redis.asyncio import Redis
from ulid import ULID

from ..settings import PgwMode, PortalSettings
from .settlement import SettlementEntry, SettlementLedger
from .signature import sign

log = structlog.get_logger("smartpos.pgw")


def new_reference() -> str:
    return f"pgwref_{ULID()}"


@dataclass(frozen=True)
class Charge:
    pgw_reference: str
    amount: int
    currency: str
    method: str
    offline_auth: str | None = None  # the authorization a terminal got while offline (POST /sync), if any
    store_id: str | None = None  # metadata: the gateway's settlement report is asked for per store


@dataclass(frozen=True)
class RefundRequest:
    pgw_reference: str  # the refund's own reference (the gateway's idempotency key for it)
    payment_reference: str  # the charge it refunds
    amount: int
    currency: str
    store_id: str | None = None


# Mock gateway test value (docs/sandbox.md): a card/qr payment whose amount ends in these two digits is confirmed
# in full by its webhook but settled one minor unit short in the settlement report.
SETTLEMENT_MISMATCH_SUFFIX = 93


class PaymentGateway(Protocol):
    async def charge(self, charge: Charge) -> None: ...

    async def refund(self, refund: RefundRequest) -> None: ...

    async def cancel(self, payment_reference: str) -> None: ...

    async def settlement_report(self, store_id: str, start: datetime, end: datetime) -> list[SettlementEntry]:
        """What the gateway settled for the store in [start, end)."""
        ...

    async def close(self) -> None: ...


class NoSettlementReport(Exception):
    """This gateway adapter has no settlement report to reconcile against."""


class ManualGateway:
    """Tests: charges wait for a webhook from outside; the settlement report is the shared ledger, which the
    test (standing in for the gateway) writes."""

    def __init__(self, ledger: SettlementLedger | None = None) -> None:
        self.ledger = ledger

    async def settlement_report(self, store_id: str, start: datetime, end: datetime) -> list[SettlementEntry]:
        if self.ledger is None:
            raise NoSettlementReport("the manual gateway has no settlement ledger (no Redis)")
        return await self.ledger.entries(store_id, start, end)

    async def charge(self, charge: Charge) -> None:
        log.info("pgw_manual_charge", pgw_reference=charge.pgw_reference, amount=charge.amount)

    async def refund(self, refund: RefundRequest) -> None:
        log.info("pgw_manual_refund", pgw_reference=refund.pgw_reference, amount=refund.amount)

    async def cancel(self, payment_reference: str) -> None:
        log.info("pgw_manual_cancel", pgw_reference=payment_reference)

    async def close(self) -> None:
        return None


class MockGateway:
    """Development and staging: every charge succeeds, confirmed by a correctly signed webhook."""

    def __init__(self, webhook_url: str, secret: str, delay: float, ledger: SettlementLedger | None = None) -> None:
        self.ledger = ledger
        self.webhook_url = webhook_url
        self.secret = secret
        self.delay = delay
        self.http = httpx.AsyncClient(timeout=5.0)
        self.tasks: set[asyncio.Task[None]] = set()
        self.canceled: set[str] = set()

    async def charge(self, charge: Charge) -> None:
        settled = charge.amount - 1 if charge.amount % 100 == SETTLEMENT_MISMATCH_SUFFIX else charge.amount
        self._later(self._send("payment.succeeded", charge.pgw_reference, charge.amount, charge.store_id, settled))

    async def refund(self, refund: RefundRequest) -> None:
        self._later(self._send("refund.succeeded", refund.pgw_reference, refund.amount, refund.store_id, refund.amount))

    async def settlement_report(self, store_id: str, start: datetime, end: datetime) -> list[SettlementEntry]:
        if self.ledger is None:
            raise NoSettlementReport("the mock gateway has no settlement ledger (no Redis)")
        return await self.ledger.entries(store_id, start, end)

    async def cancel(self, payment_reference: str) -> None:
        # The mock confirms every charge after `delay`; a cancel that comes first stops that confirmation.
        self.canceled.add(payment_reference)

    def _later(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(
        self, event_type: str, reference: str, amount: int, store_id: str | None = None, settled: int | None = None
    ) -> None:
        await asyncio.sleep(self.delay)
        if event_type == "payment.succeeded" and reference in self.canceled:
            self.canceled.discard(reference)
            return
        if self.ledger is not None and store_id is not None:
            kind = "payment" if event_type.startswith("payment.") else "refund"
            entry = SettlementEntry(kind, reference, amount if settled is None else settled, datetime.now(UTC))
            try:
                await self.ledger.record(store_id, entry)
            except Exception as exc:  # the mock's own bookkeeping; the webhook still goes out
                log.warning("pgw_mock_ledger_failed", error=type(exc).__name__)
        body = json.dumps(
            {"id": f"evt_mock_{ULID()}", "type": event_type, "data": {"pgw_reference": reference, "amount": amount}}
        ).encode()
        for attempt in range(5):
            try:
                response = await self.http.post(
                    self.webhook_url,
                    content=body,
                    headers={
                        "content-type": "application/json",
                        "PGW-Signature": sign(self.secret, int(time.time()), body),
                    },
                )
                if response.status_code < 500:
                    return
            except httpx.HTTPError as exc:
                log.warning("pgw_mock_webhook_failed", error=type(exc).__name__, attempt=attempt)
            await asyncio.sleep(0.2 * 2**attempt)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await self.http.aclose()


class HttpGateway:
    """A real gateway: `POST {SMARTPOS_PGW_URL}/charges`, our reference as its idempotency key."""

    def __init__(self, base_url: str, api_key: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=10.0, headers={"Authorization": f"Bearer {api_key}"}, transport=transport
        )

    async def charge(self, charge: Charge) -> None:
        try:
            response = await self.http.post(
                "/charges",
                json={
                    "reference": charge.pgw_reference,
                    "amount": charge.amount,
                    "currency": charge.currency,
                    "method": charge.method,
                    **({"offline_auth": charge.offline_auth} if charge.offline_auth else {}),
                },
                headers={"Idempotency-Key": charge.pgw_reference},
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # The payment stays pending: the gateway's webhook (or an operator) decides it.
            log.error("pgw_charge_failed", pgw_reference=charge.pgw_reference, error=type(exc).__name__)

    async def refund(self, refund: RefundRequest) -> None:
        try:
            response = await self.http.post(
                "/refunds",
                json={
                    "reference": refund.pgw_reference,
                    "charge_reference": refund.payment_reference,
                    "amount": refund.amount,
                    "currency": refund.currency,
                },
                headers={"Idempotency-Key": refund.pgw_reference},
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # The refund stays pending (and its amount reserved) until the gateway's webhook settles it.
            log.error("pgw_refund_failed", pgw_reference=refund.pgw_reference, error=type(exc).__name__)

    async def settlement_report(self, store_id: str, start: datetime, end: datetime) -> list[SettlementEntry]:
        """`GET /settlements?store_id=&from=&to=` → `{"entries": [{"kind", "pgw_reference", "amount",
        "settled_at"}]}`. Errors propagate: a reconciliation without the gateway's side is not one."""
        response = await self.http.get(
            "/settlements", params={"store_id": store_id, "from": start.isoformat(), "to": end.isoformat()}
        )
        response.raise_for_status()
        return [SettlementEntry.of(entry) for entry in response.json()["entries"]]

    async def cancel(self, payment_reference: str) -> None:
        try:
            response = await self.http.post(
                f"/charges/{payment_reference}/cancel", headers={"Idempotency-Key": f"cancel-{payment_reference}"}
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # Voided on our side whatever the gateway says: a capture that still arrives is refunded at once.
            log.error("pgw_cancel_failed", pgw_reference=payment_reference, error=type(exc).__name__)

    async def close(self) -> None:
        await self.http.aclose()


def gateway_for(settings: PortalSettings, redis: Redis[bytes] | None = None) -> PaymentGateway:
    ledger = SettlementLedger(redis) if redis is not None else None
    if settings.pgw_mode is PgwMode.mock:
        return MockGateway(settings.webhook_url(), settings.pgw_webhook_secret, settings.pgw_mock_delay_seconds, ledger)
    if settings.pgw_mode is PgwMode.http:
        return HttpGateway(settings.pgw_url, settings.pgw_api_key)
    return ManualGateway(ledger)
