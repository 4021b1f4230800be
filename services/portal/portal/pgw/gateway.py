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
    at: datetime | None = None  # business time of the payment (the mock gateway settles in the same time)


@dataclass(frozen=True)
class RefundRequest:
    pgw_reference: str  # the refund's own reference (the gateway's idempotency key for it)
    payment_reference: str  # the charge it refunds
    amount: int
    currency: str
    store_id: str | None = None
    at: datetime | None = None  # business time of the refund


# Mock gateway test values (docs/sandbox.md): the last two digits of a card/qr amount pick what the mock gateway
# does with the charge. Every other amount is confirmed once, `SMARTPOS_PGW_MOCK_DELAY` after it was created.
DECLINES = {51: "insufficient_funds", 52: "expired_card", 53: "do_not_honor"}  # payment.failed, with this code
LATE_WEBHOOK_SUFFIX = 61  # confirmed `SMARTPOS_PGW_MOCK_LATE_SECONDS` (30 s) late
TRIPLE_WEBHOOK_SUFFIX = 62  # the same confirmation (one event id) delivered three times
FAILED_THEN_SUCCEEDED_SUFFIX = 63  # payment.failed, then payment.succeeded: the gateway captured it after all
TIMEOUT_ON_CREATE_SUFFIX = 71  # the charge call times out (`SMARTPOS_PGW_MOCK_TIMEOUT_SECONDS`); no webhook ever
REFUND_LOST_SUFFIX = 71  # a refund of such an amount never reaches the gateway: no webhook, it stays pending
SETTLEMENT_MISMATCH_SUFFIX = 93  # confirmed in full, settled one minor unit short in the settlement report


class GatewayTimeout(Exception):
    """The gateway did not answer the charge in time: whether it took the money is unknown."""


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


def _business(at: datetime | None) -> datetime:
    """When the mock settles: at the business time of the payment or refund (a sandbox merchant's test clock may
    stand anywhere), else now — so a day's settlement report holds that day's payments."""
    return at if at is not None else datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Webhook:
    event_type: str
    reference: str
    amount: int
    failure_code: str | None = None

    def body(self) -> bytes:
        data: dict[str, object] = {"pgw_reference": self.reference, "amount": self.amount}
        if self.failure_code is not None:
            data["failure_code"] = self.failure_code
        return json.dumps({"id": f"evt_mock_{ULID()}", "type": self.event_type, "data": data}).encode()


class MockGateway:
    """Development and staging: a gateway that behaves as the test values above say, confirming by correctly
    signed webhooks, and keeping a settlement ledger of what it captured."""

    def __init__(
        self,
        webhook_url: str,
        secret: str,
        delay: float,
        ledger: SettlementLedger | None = None,
        *,
        late_delay: float = 30.0,
        timeout: float = 5.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.ledger = ledger
        self.webhook_url = webhook_url
        self.secret = secret
        self.delay = delay
        self.late_delay = late_delay
        self.timeout = timeout
        self.http = http or httpx.AsyncClient(timeout=5.0)
        self.tasks: set[asyncio.Task[None]] = set()
        self.canceled: set[str] = set()

    async def charge(self, charge: Charge) -> None:
        suffix = charge.amount % 100
        reference, amount = charge.pgw_reference, charge.amount
        if suffix == TIMEOUT_ON_CREATE_SUFFIX:
            await asyncio.sleep(self.timeout)
            raise GatewayTimeout(f"no answer to the charge {reference} within {self.timeout} s")
        succeeded = _Webhook("payment.succeeded", reference, amount)
        settled = amount - 1 if suffix == SETTLEMENT_MISMATCH_SUFFIX else amount
        if suffix in DECLINES:
            self._later(self._deliver(_Webhook("payment.failed", reference, amount, DECLINES[suffix]), self.delay))
        elif suffix == FAILED_THEN_SUCCEEDED_SUFFIX:
            failed = _Webhook("payment.failed", reference, amount, "do_not_honor")
            self._later(self._failed_then_captured(charge, failed, succeeded))
        else:
            late = self.late_delay if suffix == LATE_WEBHOOK_SUFFIX else self.delay
            self._later(
                self._capture(charge, settled, succeeded, late, copies=3 if suffix == TRIPLE_WEBHOOK_SUFFIX else 1)
            )

    async def refund(self, refund: RefundRequest) -> None:
        if refund.amount % 100 == REFUND_LOST_SUFFIX:
            log.info("pgw_mock_refund_lost", pgw_reference=refund.pgw_reference, amount=refund.amount)
            return
        entry = SettlementEntry("refund", refund.pgw_reference, refund.amount, _business(refund.at))
        self._later(
            self._deliver(
                _Webhook("refund.succeeded", refund.pgw_reference, refund.amount), self.delay, (refund.store_id, entry)
            )
        )

    async def settlement_report(self, store_id: str, start: datetime, end: datetime) -> list[SettlementEntry]:
        if self.ledger is None:
            raise NoSettlementReport("the mock gateway has no settlement ledger (no Redis)")
        return await self.ledger.entries(store_id, start, end)

    async def cancel(self, payment_reference: str) -> None:
        # The mock confirms a charge after a delay; a cancel that comes first stops that confirmation.
        self.canceled.add(payment_reference)

    def _later(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _capture(self, charge: Charge, settled: int, webhook: _Webhook, delay: float, copies: int = 1) -> None:
        entry = SettlementEntry("payment", charge.pgw_reference, settled, _business(charge.at))
        await self._deliver(webhook, delay, (charge.store_id, entry), copies=copies)

    async def _failed_then_captured(self, charge: Charge, failed: _Webhook, succeeded: _Webhook) -> None:
        await self._deliver(failed, self.delay)
        await self._capture(charge, charge.amount, succeeded, self.delay)

    async def _deliver(
        self,
        webhook: _Webhook,
        delay: float,
        settles: tuple[str | None, SettlementEntry] | None = None,
        copies: int = 1,
    ) -> None:
        await asyncio.sleep(delay)
        if webhook.event_type == "payment.succeeded" and webhook.reference in self.canceled:
            self.canceled.discard(webhook.reference)
            return
        store_id, entry = settles or (None, None)
        if self.ledger is not None and store_id is not None and entry is not None:
            try:
                await self.ledger.record(store_id, entry)
            except Exception as exc:  # the mock's own bookkeeping; the webhook still goes out
                log.warning("pgw_mock_ledger_failed", error=type(exc).__name__)
        body = webhook.body()  # one event id, however many times it is delivered
        for _ in range(copies):
            await self._post(body)

    async def _post(self, body: bytes) -> None:
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
        return MockGateway(
            settings.webhook_url(),
            settings.pgw_webhook_secret,
            settings.pgw_mock_delay_seconds,
            ledger,
            late_delay=settings.pgw_mock_late_seconds,
            timeout=settings.pgw_mock_timeout_seconds,
        )
    if settings.pgw_mode is PgwMode.http:
        return HttpGateway(settings.pgw_url, settings.pgw_api_key)
    return ManualGateway(ledger)
