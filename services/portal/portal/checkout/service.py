"""The checkout's use cases: each resolves the tenant, takes the aggregate under its lock, applies one
transition, and saves rows, events and records in one statement. Endpoints, the gateway webhook (and later
offline sync and the overnight run) are thin callers of these."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from smartpos_shared.auth import Principal, Role
from smartpos_shared.cache import CachedResource
from smartpos_shared.db import AfterCommit
from smartpos_shared.errors import Forbidden, NotFound, Unprocessable
from smartpos_shared.ids import new_id

from ..context import RequestContext
from ..credit import ledger as credit_ledger
from ..idempotency import Claim, Reply
from ..pgw.gateway import Charge, PaymentGateway, RefundRequest, new_reference
from ..tenancy import Tenant, own_tenant, tenant_for, tenant_for_list
from . import errors, repository
from .model import Bill, Checkout, Line, Order, Payment, Refund, Resource, dumps
from .repository import CheckoutRepository, WebhookRecord
from .schemas import BillCreate, OrderCreate, PaymentCreate, RefundCreate
from .states import SETTLED_AT_ONCE, OrderStatus, PaymentMethod, PaymentStatus, RefundStatus

ORDER, BILL = "order", "bill"  # cache kinds: `order:{id}`, `bill:{id}`
T = TypeVar("T")


def _principal(ctx: RequestContext) -> Principal:
    assert ctx.principal is not None, "an authenticated endpoint"
    return ctx.principal


def _resolver(ctx: RequestContext, query: str, resource_id: str) -> Any:
    return lambda: repository.resolve_merchant(ctx.db, query, resource_id)


def _latest(checkout: Checkout, resource: Resource) -> bytes:
    """The representation of `resource` as the transitions left it (the data of its last event)."""
    for event in reversed(checkout.events):
        if event.subject == resource.id:
            return event.data
    return dumps(resource.body())


def _cache_after_commit(ctx: RequestContext, checkout: Checkout) -> None:
    """New orders and bills are cached at once; changed ones are dropped (and can never be written back stale)."""
    cache = ctx.cache

    def put(kind: str, resource: Order | Bill) -> AfterCommit:
        entry = CachedResource(resource.version, resource.merchant_id, resource.store_id, _latest(checkout, resource))

        async def action() -> None:
            await cache.put(kind, resource.id, entry)

        return action

    def drop(kind: str, resource: Order | Bill) -> AfterCommit:
        resource_id, version = resource.id, resource.version

        async def action() -> None:
            await cache.invalidate(kind, resource_id, version)

        return action

    for resource in checkout.inserted:
        if isinstance(resource, Order | Bill):
            ctx.after_commit(put(ORDER if isinstance(resource, Order) else BILL, resource))
    for resource, _ in checkout.updated.values():
        if isinstance(resource, Order | Bill):
            ctx.after_commit(drop(ORDER if isinstance(resource, Order) else BILL, resource))


Loader = Callable[[], Awaitable[Checkout | None]]


async def _change(
    ctx: RequestContext,
    load: Loader,
    lock: Loader,
    transition: Callable[[Checkout, datetime], T],
    save: Callable[[Checkout, datetime, T], Awaitable[bool]],
    missing: str,
) -> tuple[Checkout, T]:
    """Read the aggregate, apply the transition, save it guarded by what was read: no transaction, two
    statements. If a concurrent save got there first, do it again under the order's row lock, where the save
    cannot lose. Domain errors raised by the transition reach the caller unchanged (nothing was written)."""
    checkout = await load()
    if checkout is None:
        raise NotFound(missing)
    now = ctx.now(checkout.order.merchant_id)
    result = transition(checkout, now)
    if await save(checkout, now, result):
        return checkout, result
    async with ctx.db.transaction():
        checkout = await lock()
        if checkout is None:
            raise NotFound(missing)
        now = ctx.now(checkout.order.merchant_id)
        result = transition(checkout, now)
        if not await save(checkout, now, result):
            raise errors.ConcurrentChange()
    return checkout, result


# ---------------------------------------------------------------------- orders


def _store_for_new_order(principal: Principal, requested: str | None) -> str:
    if principal.role is Role.device:
        assert principal.store_id is not None
        if requested is not None and requested != principal.store_id:
            raise Forbidden("a device creates orders for its own store only", code="store_not_allowed")
        return principal.store_id
    if requested is None:
        raise Unprocessable("store_id is required", code="store_id_required")
    return requested


async def create_order(ctx: RequestContext, body: OrderCreate, claim: Claim | None) -> Reply:
    """Ring up an order priced from the catalog: one read (store, currency, products) and one write. With a
    `client_order_id` already used by this merchant, the existing order is the answer (200), or 409 if its
    content differs."""
    principal = _principal(ctx)
    store_id = _store_for_new_order(principal, body.store_id)
    tenant = await tenant_for(principal, _resolver(ctx, repository.RESOLVE_STORE, store_id))
    repo = CheckoutRepository(ctx.db, tenant)
    items = [(item.product_id, item.quantity) for item in body.items]

    async def existing_order() -> Reply:
        assert body.client_order_id is not None
        existing = await repo.load_by_client_order_id(body.client_order_id)
        if existing is None or not _same_order(existing, store_id, items):
            raise errors.ClientIdConflict(f"client_order_id {body.client_order_id!r} names another order")
        return Reply(200, dumps(existing.order.body()), recorded=False)

    if body.client_order_id is not None and await repo.client_order_id_taken(body.client_order_id):
        return await existing_order()  # a retry: answered before pricing (the catalog may have changed since)
    checkout = await _priced_order(
        repo, tenant, store_id, items, ctx.now(tenant.merchant_id), client_order_id=body.client_order_id
    )
    data = _latest(checkout, checkout.order)
    now = checkout.order.created_at
    try:
        await repo.save(
            checkout, now, completion=claim.completion(201, data) if claim else None, notify=ctx.notify_at_commit
        )
    except errors.ClientIdTaken:
        return await existing_order()  # the same id raced in
    _cache_after_commit(ctx, checkout)
    await ctx.committed()  # one statement: durable without BEGIN/COMMIT
    return Reply(201, data)


async def _priced_order(
    repo: CheckoutRepository,
    tenant: Tenant,
    store_id: str,
    items: list[tuple[str, int]],
    now: datetime,
    **offline: Any,
) -> Checkout:
    catalog = await repo.store_catalog(store_id, sorted({product_id for product_id, _ in items}))
    if catalog is None:
        raise NotFound("store not found")
    unknown = sorted({product_id for product_id, _ in items} - catalog.products.keys())
    if unknown:
        raise errors.UnknownProducts(unknown)
    lines = []
    for line_no, (product_id, quantity) in enumerate(items, start=1):
        name, unit_price = catalog.products[product_id]
        lines.append(Line(line_no, product_id, name, quantity, unit_price))
    return Checkout.ring_up(new_id("ord"), tenant.merchant_id, store_id, catalog.currency, lines, now, **offline)


def _same_order(existing: Checkout, store_id: str, items: list[tuple[str, int]]) -> bool:
    lines = [(line.product_id, line.quantity) for line in existing.order.lines]
    return existing.order.store_id == store_id and lines == items


async def get_order(ctx: RequestContext, order_id: str) -> bytes:
    """Served from the cache after the same tenant check as a database read."""
    principal = _principal(ctx)
    own = own_tenant(principal)
    hit = await ctx.cache.get(ORDER, order_id)
    if hit is not None:
        if own is not None and (
            hit.merchant_id != own.merchant_id or (own.store_id is not None and hit.store_id != own.store_id)
        ):
            raise NotFound("order not found")  # the answer the database would give
        return hit.body
    tenant = await tenant_for(principal, _resolver(ctx, repository.RESOLVE_ORDER, order_id))
    order = await CheckoutRepository(ctx.db, tenant).get_order(order_id)
    if order is None:
        raise NotFound("order not found")
    data = dumps(order.body())
    await ctx.cache.put(ORDER, order.id, CachedResource(order.version, order.merchant_id, order.store_id, data))
    return data


async def list_orders(
    ctx: RequestContext,
    merchant_id: str | None,
    store_id: str | None,
    status: OrderStatus | None,
    before_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    tenant = tenant_for_list(_principal(ctx), merchant_id)
    orders = await CheckoutRepository(ctx.db, tenant).list_orders(store_id, status, before_id, limit)
    return [order.body() for order in orders]


async def update_order_status(ctx: RequestContext, order_id: str, status: OrderStatus) -> bytes:
    """Complete (settled outside the platform) or cancel an open order."""
    tenant = await tenant_for(_principal(ctx), _resolver(ctx, repository.RESOLVE_ORDER, order_id))
    repo = CheckoutRepository(ctx.db, tenant)

    def transition(checkout: Checkout, now: datetime) -> None:
        if status is OrderStatus.canceled:
            checkout.cancel(now)
        else:
            checkout.complete_by_hand(now)

    async def save(checkout: Checkout, now: datetime, _: None) -> bool:
        return await repo.save(checkout, now, notify=ctx.notify_at_commit)

    checkout, _ = await _change(
        ctx,
        lambda: repo.load_by_order(order_id),
        lambda: repo.lock_by_order(order_id),
        transition,
        save,
        "order not found",
    )
    _cache_after_commit(ctx, checkout)
    await ctx.committed()
    return _latest(checkout, checkout.order)


# ---------------------------------------------------------------------- bills


async def create_bill(ctx: RequestContext, body: BillCreate, claim: Claim | None) -> Reply:
    tenant = await tenant_for(_principal(ctx), _resolver(ctx, repository.RESOLVE_ORDER, body.order_id))
    repo = CheckoutRepository(ctx.db, tenant)

    def transition(checkout: Checkout, now: datetime) -> bytes:
        return _latest(checkout, checkout.bill_order(new_id("bil"), now))

    async def save(checkout: Checkout, now: datetime, data: bytes) -> bool:
        completion = claim.completion(201, data) if claim else None
        return await repo.save(checkout, now, completion=completion, notify=ctx.notify_at_commit)

    checkout, data = await _change(
        ctx,
        lambda: repo.load_by_order(body.order_id),
        lambda: repo.lock_by_order(body.order_id),
        transition,
        save,
        "order not found",
    )
    _cache_after_commit(ctx, checkout)
    await ctx.committed()
    return Reply(201, data)


async def get_bill(ctx: RequestContext, bill_id: str) -> bytes:
    principal = _principal(ctx)
    own = own_tenant(principal)
    hit = await ctx.cache.get(BILL, bill_id)
    if hit is not None:
        if own is not None and (
            hit.merchant_id != own.merchant_id or (own.store_id is not None and hit.store_id != own.store_id)
        ):
            raise NotFound("bill not found")
        return hit.body
    tenant = await tenant_for(principal, _resolver(ctx, repository.RESOLVE_BILL, bill_id))
    bill = await CheckoutRepository(ctx.db, tenant).get_bill(bill_id)
    if bill is None:
        raise NotFound("bill not found")
    data = dumps(bill.body())
    await ctx.cache.put(BILL, bill.id, CachedResource(bill.version, bill.merchant_id, bill.store_id, data))
    return data


# ---------------------------------------------------------------------- payments


def _method_enabled(ctx: RequestContext, merchant_id: str, method: PaymentMethod) -> None:
    """The merchant's configuration enables the method (config/methods.py: a lookup, no statement)."""
    methods = ctx.services.payment_methods
    if methods is not None and not methods.allows(merchant_id, method.value):
        raise errors.PaymentMethodDisabled(f"{method.value} payments are not enabled for this merchant")


async def create_payment(ctx: RequestContext, body: PaymentCreate, claim: Claim | None) -> Reply:
    """Cash succeeds at once; card and qr are sent to the gateway after the commit and stay pending. With a
    `client_payment_id` already used by this merchant, the existing payment is the answer (200), or 409 if its
    content differs."""
    tenant = await tenant_for(_principal(ctx), _resolver(ctx, repository.RESOLVE_BILL, body.bill_id))
    _method_enabled(ctx, tenant.merchant_id, body.method)
    repo = CheckoutRepository(ctx.db, tenant)

    def transition(checkout: Checkout, now: datetime) -> Payment:
        reference = None if body.method in SETTLED_AT_ONCE else new_reference()
        return checkout.take_payment(
            new_id("pay"), body.amount, body.method, reference, now, client_payment_id=body.client_payment_id
        )

    async def save(checkout: Checkout, now: datetime, payment: Payment) -> bool:
        completion = claim.completion(201, _latest(checkout, payment)) if claim else None
        return await repo.save(checkout, now, completion=completion, notify=ctx.notify_at_commit)

    async def existing() -> Payment | None:
        return await repo.get_payment_by_client_id(body.client_payment_id) if body.client_payment_id else None

    if (found := await existing()) is not None:  # a retry of a payment already taken: nothing to check or take
        return _same_payment_or_conflict(found, body)
    if body.method is PaymentMethod.credit:
        return await _credit_payment(ctx, repo, body, claim, transition, existing)
    try:
        checkout, payment = await _change(
            ctx,
            lambda: repo.load_by_bill(body.bill_id),
            lambda: repo.lock_by_bill(body.bill_id),
            transition,
            save,
            "bill not found",
        )
    except errors.ClientIdTaken:
        if (found := await existing()) is None:  # taken in a store this caller cannot see
            raise errors.ClientIdConflict(f"client_payment_id {body.client_payment_id!r} is taken") from None
        return _same_payment_or_conflict(found, body)
    _cache_after_commit(ctx, checkout)
    if payment.pgw_reference is not None:
        charge = Charge(
            payment.pgw_reference,
            payment.amount,
            payment.currency,
            payment.method,
            store_id=payment.store_id,
            at=payment.created_at,
        )
        gateway = ctx.gateway
        ctx.after_commit(lambda: gateway.charge(charge))  # the gateway never hears of a payment we lost
    await ctx.committed()
    return Reply(201, _latest(checkout, payment))


async def _credit_payment(
    ctx: RequestContext,
    repo: CheckoutRepository,
    body: PaymentCreate,
    claim: Claim | None,
    transition: Callable[[Checkout, datetime], Payment],
    existing: Callable[[], Awaitable[Payment | None]],
) -> Reply:
    """Store credit: one transaction — the order's row lock, the payment (succeeded at once), the redemption from
    the account (its own row lock; refused with nothing written if the balance does not cover it), the saved
    aggregate. The account is always locked after the order, as a refund to credit does."""
    assert body.credit_account_id is not None
    try:
        async with ctx.db.transaction():
            checkout = await repo.lock_by_bill(body.bill_id)
            if checkout is None:
                raise NotFound("bill not found")
            now = ctx.now(repo.tenant.merchant_id)
            payment = transition(checkout, now)
            await credit_ledger.apply(
                ctx.db,
                repo.tenant.merchant_id,
                body.credit_account_id,
                credit_ledger.Entry("redeem", -payment.amount, payment_id=payment.id),
                now,
                currency=payment.currency,
            )
            completion = claim.completion(201, _latest(checkout, payment)) if claim else None
            if not await repo.save(checkout, now, completion=completion, notify=ctx.notify_at_commit):
                raise errors.ConcurrentChange()
    except errors.ClientIdTaken:
        if (found := await existing()) is None:
            raise errors.ClientIdConflict(f"client_payment_id {body.client_payment_id!r} is taken") from None
        return _same_payment_or_conflict(found, body)
    _cache_after_commit(ctx, checkout)
    await ctx.committed()
    return Reply(201, _latest(checkout, payment))


def _same_payment_or_conflict(found: Payment, body: PaymentCreate) -> Reply:
    if (found.bill_id, found.amount, found.method) != (body.bill_id, body.amount, body.method):
        raise errors.ClientIdConflict(f"client_payment_id {body.client_payment_id!r} names another payment")
    return Reply(200, dumps(found.body()), recorded=False)


async def get_payment(ctx: RequestContext, payment_id: str) -> bytes:
    tenant = await tenant_for(_principal(ctx), _resolver(ctx, repository.RESOLVE_PAYMENT, payment_id))
    payment = await CheckoutRepository(ctx.db, tenant).get_payment(payment_id)
    if payment is None:
        raise NotFound("payment not found")
    return dumps(payment.body())


async def list_payments(
    ctx: RequestContext,
    merchant_id: str | None,
    bill_id: str | None,
    status: PaymentStatus | None,
    before_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    tenant = tenant_for_list(_principal(ctx), merchant_id)
    payments = await CheckoutRepository(ctx.db, tenant).list_payments(bill_id, status, before_id, limit)
    return [payment.body() for payment in payments]


def _send_refunds(ctx: RequestContext, refunds: list[Refund], checkout: Checkout) -> None:
    """After the commit, the gateway hears of each new refund it has to make (never of one we lost)."""
    gateway = ctx.gateway
    for refund in refunds:
        if refund.pgw_reference is None or refund.status is not RefundStatus.pending:
            continue
        payment = checkout.payment(refund.payment_id)
        assert payment.pgw_reference is not None
        ctx.after_commit(
            _refund_at_gateway(
                gateway,
                RefundRequest(
                    refund.pgw_reference,
                    payment.pgw_reference,
                    refund.amount,
                    refund.currency,
                    store_id=refund.store_id,
                    at=refund.created_at,
                ),
            )
        )


def _refund_at_gateway(gateway: PaymentGateway, request: RefundRequest) -> AfterCommit:
    async def action() -> None:
        await gateway.refund(request)

    return action


async def void_payment(ctx: RequestContext, payment_id: str) -> bytes:
    """A pending card or qr payment canceled before the gateway confirmed it; the gateway is told after commit."""
    tenant = await tenant_for(_principal(ctx), _resolver(ctx, repository.RESOLVE_PAYMENT, payment_id))
    repo = CheckoutRepository(ctx.db, tenant)

    def transition(checkout: Checkout, now: datetime) -> Payment:
        payment = checkout.payment(payment_id)
        checkout.void(payment, now)
        return payment

    async def save(checkout: Checkout, now: datetime, _: Payment) -> bool:
        return await repo.save(checkout, now, notify=ctx.notify_at_commit)

    checkout, payment = await _change(
        ctx,
        lambda: repo.load_by_payment(payment_id),
        lambda: repo.lock_by_payment(payment_id),
        transition,
        save,
        "payment not found",
    )
    _cache_after_commit(ctx, checkout)
    if payment.pgw_reference is not None:
        gateway, reference = ctx.gateway, payment.pgw_reference
        ctx.after_commit(lambda: gateway.cancel(reference))
    await ctx.committed()
    return _latest(checkout, payment)


async def expire_payment(ctx: RequestContext, tenant: Tenant, payment_id: str) -> bool:
    """The overnight run's expiry of a payment pending too long (the gateway never answered): it fails with reason
    `expired`, what it reserved is payable again, and the gateway is told to cancel it. False if it was no longer
    pending (a webhook or another scheduler got there first)."""
    repo = CheckoutRepository(ctx.db, tenant)

    def transition(checkout: Checkout, now: datetime) -> bool:
        payment = checkout.payment(payment_id)
        if payment.status is not PaymentStatus.pending:
            return False
        checkout.fail(payment, "expired", now)
        return True

    async def save(checkout: Checkout, now: datetime, expired: bool) -> bool:
        return await repo.save(checkout, now, notify=ctx.notify_at_commit) if expired else True

    checkout, expired = await _change(
        ctx,
        lambda: repo.load_by_payment(payment_id),
        lambda: repo.lock_by_payment(payment_id),
        transition,
        save,
        "payment not found",
    )
    if expired:
        _cache_after_commit(ctx, checkout)
        reference = checkout.payment(payment_id).pgw_reference
        if reference is not None:
            gateway = ctx.gateway
            ctx.after_commit(lambda: gateway.cancel(reference))
        await ctx.committed()
    return expired


# ---------------------------------------------------------------------- refunds


async def create_refund(ctx: RequestContext, body: RefundCreate, claim: Claim | None) -> Reply:
    """Part or all of what is left of a succeeded payment, back to the same tender. The cap holds under any race:
    the aggregate's saves are serialized (optimistic guard, then the order's row lock) and the database checks
    `refunded_amount + refund_pending_amount <= amount` on the payment row."""
    tenant = await tenant_for(_principal(ctx), _resolver(ctx, repository.RESOLVE_PAYMENT, body.payment_id))
    repo = CheckoutRepository(ctx.db, tenant)

    def transition(checkout: Checkout, now: datetime) -> Refund:
        payment = checkout.payment(body.payment_id)
        reference = None if payment.method in SETTLED_AT_ONCE else new_reference()
        return checkout.refund(payment, new_id("ref"), body.amount, body.reason, reference, now)

    async def save(checkout: Checkout, now: datetime, refund: Refund) -> bool:
        completion = claim.completion(201, _latest(checkout, refund)) if claim else None
        return await repo.save(checkout, now, completion=completion, notify=ctx.notify_at_commit)

    loaded = await repo.load_by_payment(body.payment_id)
    if loaded is not None and loaded.payment(body.payment_id).method is PaymentMethod.credit:
        checkout, refund = await _refund_to_credit(ctx, repo, body.payment_id, transition, save)
    else:

        async def first_read() -> Checkout | None:
            return loaded

        checkout, refund = await _change(
            ctx, first_read, lambda: repo.lock_by_payment(body.payment_id), transition, save, "payment not found"
        )
    _cache_after_commit(ctx, checkout)
    _send_refunds(ctx, [refund], checkout)
    await ctx.committed()
    return Reply(201, _latest(checkout, refund))


async def _refund_to_credit(
    ctx: RequestContext,
    repo: CheckoutRepository,
    payment_id: str,
    transition: Callable[[Checkout, datetime], Refund],
    save: Callable[[Checkout, datetime, Refund], Awaitable[bool]],
) -> tuple[Checkout, Refund]:
    """A credit payment's refund goes back to the account it was redeemed from, in the refund's transaction
    (order lock, then the account's)."""
    async with ctx.db.transaction():
        checkout = await repo.lock_by_payment(payment_id)
        if checkout is None:
            raise NotFound("payment not found")
        now = ctx.now(repo.tenant.merchant_id)
        refund = transition(checkout, now)
        account_id = await credit_ledger.account_of_redemption(ctx.db, repo.tenant.merchant_id, payment_id)
        assert account_id is not None, "a credit payment is always redeemed from an account"
        await credit_ledger.apply(
            ctx.db,
            repo.tenant.merchant_id,
            account_id,
            credit_ledger.Entry("refund", refund.amount, payment_id=payment_id, refund_id=refund.id),
            now,
        )
        if not await save(checkout, now, refund):
            raise errors.ConcurrentChange()
    return checkout, refund


async def get_refund(ctx: RequestContext, refund_id: str) -> bytes:
    tenant = await tenant_for(_principal(ctx), _resolver(ctx, repository.RESOLVE_REFUND, refund_id))
    refund = await CheckoutRepository(ctx.db, tenant).get_refund(refund_id)
    if refund is None:
        raise NotFound("refund not found")
    return dumps(refund.body())


async def list_refunds(
    ctx: RequestContext, merchant_id: str | None, payment_id: str | None, before_id: str | None, limit: int
) -> list[dict[str, Any]]:
    tenant = tenant_for_list(_principal(ctx), merchant_id)
    refunds = await CheckoutRepository(ctx.db, tenant).list_refunds(payment_id, before_id, limit)
    return [refund.body() for refund in refunds]


# ---------------------------------------------------------------------- the gateway


class WebhookOutcome(StrEnum):
    applied = "applied"
    duplicate = "duplicate"
    ignored = "ignored"
    amount_mismatch = "amount_mismatch"


@dataclass(frozen=True, slots=True)
class GatewayResult:
    outcome: WebhookOutcome
    label: str  # what the webhook's answer and the processed_webhooks row say
    detail: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    id: str
    type: str  # payment.succeeded | payment.failed | refund.succeeded | refund.failed
    pgw_reference: str
    amount: int
    failure_code: str | None = None  # why the gateway declined, when it says


async def apply_gateway_event(ctx: RequestContext, event: GatewayEvent) -> GatewayResult:
    """The gateway says a payment or a refund succeeded or failed. The tenant comes from the payment or refund it
    names; from there the work is scoped like any other. Each event id is applied once; an amount that differs
    from the payment's or refund's is recorded and settles nothing; events for something no longer pending change
    nothing, except a capture of a payment we voided or the gateway had declined: recorded for review and refunded
    at once."""
    if event.type.startswith("refund."):
        found = await repository.resolve_refund_reference(ctx.db, event.pgw_reference, event.id)
        if found is None:
            raise NotFound("no refund has this pgw_reference", code="unknown_pgw_reference")
        refund_id = found["id"]
        return await _apply(
            ctx, event, found, lambda c: c.refund_by_id(refund_id).payment_id, _refund_transition(event, refund_id)
        )
    found = await repository.resolve_reference(ctx.db, event.pgw_reference, event.id)
    if found is None:
        raise NotFound("no payment has this pgw_reference", code="unknown_pgw_reference")
    payment_id = found["id"]
    return await _apply(ctx, event, found, lambda _: payment_id, _payment_transition(event, payment_id))


GatewayTransition = Callable[[Checkout, datetime], GatewayResult]


def _payment_transition(event: GatewayEvent, payment_id: str) -> GatewayTransition:
    def transition(checkout: Checkout, now: datetime) -> GatewayResult:
        payment = checkout.payment(payment_id)
        captured = event.type == "payment.succeeded" and event.amount == payment.amount
        given_up = payment.status in (PaymentStatus.canceled, PaymentStatus.failed)
        if captured and given_up and payment.captured_after_void_at is None:
            label = checkout.captured_late(payment, new_id("ref"), new_reference(), now)
            return GatewayResult(WebhookOutcome.applied, label)
        if payment.status is not PaymentStatus.pending:
            return GatewayResult(WebhookOutcome.ignored, f"ignored_payment_{payment.status}")
        if event.type == "payment.succeeded" and event.amount != payment.amount:
            detail = {"expected_amount": payment.amount, "received_amount": event.amount}
            return GatewayResult(WebhookOutcome.amount_mismatch, WebhookOutcome.amount_mismatch, detail)
        if event.type == "payment.succeeded":
            checkout.succeed(payment, now)
        else:
            checkout.fail(payment, event.failure_code or "declined_by_gateway", now)
        return GatewayResult(WebhookOutcome.applied, event.type)

    return transition


def _refund_transition(event: GatewayEvent, refund_id: str) -> GatewayTransition:
    """Succeeded: the payment, bill and order count it. Failed: the amount is refundable again."""

    def transition(checkout: Checkout, now: datetime) -> GatewayResult:
        refund = checkout.refund_by_id(refund_id)
        if refund.status is not RefundStatus.pending:
            return GatewayResult(WebhookOutcome.ignored, f"ignored_refund_{refund.status}")
        if event.type == "refund.succeeded" and event.amount != refund.amount:
            detail = {"expected_amount": refund.amount, "received_amount": event.amount}
            return GatewayResult(WebhookOutcome.amount_mismatch, WebhookOutcome.amount_mismatch, detail)
        succeeded = event.type == "refund.succeeded"
        reason = None if succeeded else event.failure_code or "declined_by_gateway"
        checkout.settle_refund(refund, succeeded=succeeded, reason=reason, now=now)
        return GatewayResult(WebhookOutcome.applied, event.type)

    return transition


async def _apply(
    ctx: RequestContext,
    event: GatewayEvent,
    found: Any,
    payment_of: Callable[[Checkout], str],
    transition: GatewayTransition,
) -> GatewayResult:
    """Apply one gateway event to the aggregate of the bill `found` names (the tenant resolved from it), once:
    the processed webhook is written by the same statement as the change, or on its own when nothing changes."""
    if found["seen"]:
        return GatewayResult(WebhookOutcome.duplicate, "duplicate")
    repo = CheckoutRepository(ctx.db, Tenant(found["merchant_id"]))
    bill_id = found["bill_id"]

    def record(checkout: Checkout, result: GatewayResult) -> WebhookRecord:
        detail = dumps(result.detail) if result.detail else None
        return WebhookRecord(event.id, event.type, event.pgw_reference, payment_of(checkout), result.label, detail)

    recorded: list[bool] = []

    async def save(checkout: Checkout, now: datetime, result: GatewayResult) -> bool:
        if result.outcome is WebhookOutcome.applied:
            return await repo.save(checkout, now, webhook=record(checkout, result), notify=ctx.notify_at_commit)
        # Nothing changes: the event is only recorded (once; a concurrent copy may have been first).
        mismatch = None
        if result.outcome is WebhookOutcome.amount_mismatch:
            payment = checkout.payment(payment_of(checkout))
            mismatch = (
                payment.store_id,
                {"payment_id": payment.id, "gateway_event_id": event.id, "gateway_event_type": event.type,
                 "pgw_reference": event.pgw_reference, **(result.detail or {})},
            )  # fmt: skip
        recorded.append(await repo.record_webhook_only(record(checkout, result), now, mismatch))
        return True

    checkout, result = await _change(
        ctx,
        lambda: repo.load_by_bill(bill_id),
        lambda: repo.lock_by_bill(bill_id),
        transition,
        save,
        "not found",
    )
    if recorded and not recorded[-1]:
        return GatewayResult(WebhookOutcome.duplicate, "duplicate")
    _cache_after_commit(ctx, checkout)
    _send_refunds(ctx, [r for r in checkout.inserted if isinstance(r, Refund)], checkout)
    await ctx.committed()
    return result


__all__ = [
    "GatewayEvent",
    "GatewayResult",
    "WebhookOutcome",
    "apply_gateway_event",
    "create_bill",
    "create_order",
    "create_payment",
    "create_refund",
    "expire_payment",
    "get_bill",
    "get_order",
    "get_payment",
    "get_refund",
    "list_orders",
    "list_payments",
    "list_refunds",
    "update_order_status",
    "void_payment",
]
