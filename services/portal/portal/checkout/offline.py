"""Offline store-and-forward: `POST /sync`. A terminal that lost its connection rang up sales with its own ids
(`client_order_id`, `client_payment_id`) and forwards them when it is back. Each entry is its own transaction
(order, bill and payments together, or nothing); a rejected entry never blocks the others; the same entry
forwarded again is a `duplicate` (never a second order or payment: the ids are unique per merchant in the
database); the merchant's offline limits are enforced here. Card and qr payments taken offline go to the gateway
after their entry commits and may still be declined: the order then stays open with what is due.

Each entry takes a transaction-scoped advisory lock on its device, so the per-device outstanding limit is checked
and used by one entry at a time (two syncs of one terminal never both slip under it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from smartpos_shared.auth import Role
from smartpos_shared.errors import DomainError, Forbidden
from smartpos_shared.ids import new_id

from ..context import RequestContext
from ..pgw.gateway import Charge, new_reference
from ..sandbox.certification import observe
from ..tenancy import Tenant
from . import errors
from .model import OfflineTender, Payment
from .repository import CheckoutRepository
from .schemas import SyncOrder, SyncRequest
from .service import _cache_after_commit, _priced_order, _same_order
from .states import PaymentMethod

FUTURE_TOLERANCE = timedelta(minutes=5)  # terminal clocks drift


@dataclass(frozen=True, slots=True)
class OfflineLimits:
    max_payment_amount: int | None
    max_outstanding_amount: int | None  # per device: offline card/qr payments the gateway has not confirmed yet
    max_age_hours: int


class Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def sync(ctx: RequestContext, body: SyncRequest) -> dict[str, Any]:
    principal = ctx.principal
    assert principal is not None
    if principal.role is not Role.device:
        raise Forbidden("only a terminal forwards what it took offline", code="device_only")
    assert principal.merchant_id is not None and principal.store_id is not None
    tenant = Tenant(principal.merchant_id, principal.store_id)
    repo = CheckoutRepository(ctx.db, tenant)
    limits = OfflineLimits(*await repo.offline_limits())
    results = []
    for entry in body.orders:
        try:
            order_id, status = await _forward(ctx, repo, tenant, principal.subject, limits, entry)
            results.append({"client_order_id": entry.client_order_id, "status": status, "order_id": order_id})
        except Rejected as exc:
            results.append({"client_order_id": entry.client_order_id, "status": "rejected", "reason": exc.reason})
        except DomainError as exc:  # e.g. unknown products, payments above the total
            results.append({"client_order_id": entry.client_order_id, "status": "rejected", "reason": exc.code})
    # In a certification run the batch is evidence (case `offline_forwarded`): a resend must create nothing new.
    await observe(
        ctx.db,
        source="portal",
        event_type="sync.forwarded",
        merchant_id=tenant.merchant_id,
        store_id=tenant.store_id,
        subject=principal.subject,
        data={"device_id": principal.subject, "results": results},
        now=ctx.now(tenant.merchant_id),
    )
    return {"results": results}


def _content(entry: SyncOrder) -> list[tuple[str, int]]:
    return [(item.product_id, item.quantity) for item in entry.items]


async def _same_payments(repo: CheckoutRepository, order_id: str, entry: SyncOrder) -> bool:
    """Each tender of the entry exists on that order with the same method and amount. What happened to the order
    since (a declined card paid in cash, a bill voided when the order was completed by hand) does not matter."""
    if not entry.payments:
        return True
    found = {
        p.client_payment_id: p for p in await repo.payments_by_client_ids([t.client_payment_id for t in entry.payments])
    }
    for tender in entry.payments:
        payment = found.get(tender.client_payment_id)
        if payment is None or (payment.order_id, payment.method, payment.amount) != (
            order_id,
            tender.method,
            tender.amount,
        ):
            return False
    return True


async def _duplicate(repo: CheckoutRepository, store_id: str, entry: SyncOrder) -> tuple[str, str] | None:
    existing = await repo.load_by_client_order_id(entry.client_order_id)
    if existing is None:
        return None
    if not (_same_order(existing, store_id, _content(entry)) and await _same_payments(repo, existing.order.id, entry)):
        raise Rejected(errors.ClientIdConflict.code)
    return existing.order.id, "duplicate"


def _check_limits(entry: SyncOrder, limits: OfflineLimits, now: datetime) -> None:
    if entry.taken_at > now + FUTURE_TOLERANCE:
        raise Rejected("taken_at_in_future")
    if now - entry.taken_at > timedelta(hours=limits.max_age_hours):
        raise Rejected("offline_too_old")
    # The limits bound what the platform risks on authorizations nobody could check: card and qr. Cash in the
    # drawer is the shop's own.
    on_card = [p.amount for p in entry.payments if p.method is not PaymentMethod.cash]
    if limits.max_payment_amount is not None and any(amount > limits.max_payment_amount for amount in on_card):
        raise Rejected("over_offline_max_payment_amount")


async def _forward(
    ctx: RequestContext,
    repo: CheckoutRepository,
    tenant: Tenant,
    device_id: str,
    limits: OfflineLimits,
    entry: SyncOrder,
) -> tuple[str, str]:
    assert tenant.store_id is not None
    if (duplicate := await _duplicate(repo, tenant.store_id, entry)) is not None:
        return duplicate
    now = ctx.now(tenant.merchant_id)
    _check_limits(entry, limits, now)
    methods = ctx.services.payment_methods
    if methods is not None and any(not methods.allows(tenant.merchant_id, p.method.value) for p in entry.payments):
        raise Rejected(errors.PaymentMethodDisabled.code)
    checkout = await _priced_order(
        repo,
        tenant,
        tenant.store_id,
        _content(entry),
        now,
        client_order_id=entry.client_order_id,
        taken_at=entry.taken_at,
        device_id=device_id,
    )
    if entry.payments:
        checkout.bill_order(new_id("bil"), now)
        for tender in entry.payments:
            reference = None if tender.method is PaymentMethod.cash else new_reference()
            checkout.take_payment(
                new_id("pay"),
                tender.amount,
                tender.method,
                reference,
                now,
                client_payment_id=tender.client_payment_id,
                offline=OfflineTender(device_id, tender.offline_auth),
            )
    on_card = sum(p.amount for p in checkout.payments if p.method is not PaymentMethod.cash)
    try:
        async with ctx.db.transaction():
            await repo.lock_device(device_id)
            if limits.max_outstanding_amount is not None and on_card:
                outstanding = await repo.offline_outstanding(device_id)
                if outstanding + on_card > limits.max_outstanding_amount:
                    raise Rejected("over_offline_max_outstanding_amount")
            await repo.save(checkout, now, notify=ctx.notify_at_commit)
    except errors.ClientIdTaken:
        # Forwarded twice at once and the other copy committed first (whichever of its ids the database checked
        # first), or a payment id used by another order.
        if (duplicate := await _duplicate(repo, tenant.store_id, entry)) is not None:
            return duplicate
        raise Rejected(errors.ClientIdConflict.code) from None
    _cache_after_commit(ctx, checkout)
    for payment in checkout.payments:
        _charge_after_commit(ctx, payment)
    await ctx.committed()
    return checkout.order.id, "created"


def _charge_after_commit(ctx: RequestContext, payment: Payment) -> None:
    if payment.pgw_reference is None:
        return
    charge = Charge(
        payment.pgw_reference,
        payment.amount,
        payment.currency,
        payment.method,
        payment.offline_auth,
        store_id=payment.store_id,
        at=payment.updated_at,
    )
    gateway = ctx.gateway

    async def action() -> None:
        await gateway.charge(charge)

    ctx.after_commit(action)
