from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time

from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.auth import Principal
from smartpos_shared.db import Transaction, utcnow
from smartpos_shared.errors import NotFound
from smartpos_shared.ids import new_id

from ..events import emit
from ..models import Merchant, Store
from ..tenancy import merchant_for_write, own_tenant, tenant_for, tenant_for_list
from . import repository
from .schemas import MerchantCreate, MerchantPublic, OfflineLimitsUpdate, StoreCreate, StorePublic, StoreUpdate


def merchant_public(merchant: Merchant) -> MerchantPublic:
    return MerchantPublic(
        id=merchant.id,
        name=merchant.name,
        currency=merchant.currency,
        created_at=merchant.created_at,
        offline_max_payment_amount=merchant.offline_max_payment_amount,
        offline_max_outstanding_amount=merchant.offline_max_outstanding_amount,
        offline_max_age_hours=merchant.offline_max_age_hours,
    )


def store_public(store: Store) -> StorePublic:
    return StorePublic(
        id=store.id,
        merchant_id=store.merchant_id,
        name=store.name,
        created_at=store.created_at,
        timezone=store.timezone,
        day_closes_at=store.day_closes_at.strftime("%H:%M"),
    )


def _local_time(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


async def create_merchant(session: AsyncSession, body: MerchantCreate) -> MerchantPublic:
    merchant = Merchant(
        id=new_id("mer"), name=body.name, currency=body.currency, created_at=utcnow(), offline_max_age_hours=24
    )
    session.add(merchant)
    await session.flush()
    return merchant_public(merchant)


async def get_merchant(session: AsyncSession, principal: Principal, merchant_id: str) -> MerchantPublic:
    own = own_tenant(principal)
    if own is not None and own.merchant_id != merchant_id:
        raise NotFound("merchant not found")
    merchant = await repository.get_merchant(session, merchant_id)
    if merchant is None:
        raise NotFound("merchant not found")
    return merchant_public(merchant)


async def update_offline_limits(
    session: AsyncSession, principal: Principal, merchant_id: str, body: OfflineLimitsUpdate
) -> MerchantPublic:
    """The merchant's offline limits (admin, or the merchant itself); only the fields sent change."""
    own = own_tenant(principal)
    if own is not None and (own.merchant_id != merchant_id or own.store_id is not None):
        raise NotFound("merchant not found")  # a device never changes its merchant's limits
    merchant = await repository.get_merchant(session, merchant_id, for_update=True)
    if merchant is None:
        raise NotFound("merchant not found")
    changes = body.model_dump(exclude_unset=True)
    if changes.get("offline_max_age_hours", 24) is None:
        changes["offline_max_age_hours"] = 24  # the documented default
    for name, value in changes.items():
        setattr(merchant, name, value)
    await session.flush()
    return merchant_public(merchant)


async def create_store(
    transaction: Transaction, principal: Principal, body: StoreCreate, now: Callable[[str], datetime] | None = None
) -> StorePublic:
    """`now`: the merchant's business time (a store opens on its first business day: in the sandbox, the one its
    merchant's test clock shows)."""
    session = transaction.session
    merchant_id = merchant_for_write(principal, body.merchant_id)
    if await repository.get_merchant(session, merchant_id) is None:
        raise NotFound("merchant not found")
    store = Store(
        id=new_id("sto"),
        merchant_id=merchant_id,
        name=body.name,
        created_at=now(merchant_id) if now is not None else utcnow(),
        timezone=body.timezone,
        day_closes_at=_local_time(body.day_closes_at),
    )
    session.add(store)
    await session.flush()
    public = store_public(store)
    # Other services learn which merchant owns a store from this event (device-auth registers devices only for
    # a merchant's own stores; smarttab answers live views only to their owner).
    emit(
        transaction,
        "store.created",
        merchant_id=store.merchant_id,
        store_id=store.id,
        subject=store.id,
        version=1,
        data=public.model_dump(mode="json"),
    )
    return public


async def get_store(session: AsyncSession, principal: Principal, store_id: str) -> StorePublic:
    tenant = await tenant_for(principal, lambda: repository.merchant_of_store(session, store_id))
    store = await repository.get_store(session, tenant, store_id)
    if store is None:
        raise NotFound("store not found")
    return store_public(store)


async def update_store(transaction: Transaction, principal: Principal, store_id: str, body: StoreUpdate) -> StorePublic:
    """Name, timezone, closing time (admin, or the merchant; a device never changes its store)."""
    session = transaction.session
    tenant = await tenant_for(principal, lambda: repository.merchant_of_store(session, store_id))
    if tenant.store_id is not None:
        raise NotFound("store not found")
    store = await repository.get_store(session, tenant, store_id, for_update=True)
    if store is None:
        raise NotFound("store not found")
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "day_closes_at" in changes:
        changes["day_closes_at"] = _local_time(changes["day_closes_at"])
    if changes:
        await repository.update_store(session, tenant, store_id, changes)
        session.expunge(store)  # written above, scoped by merchant; never flushed again by the ORM
        for name, value in changes.items():
            setattr(store, name, value)
    return store_public(store)


async def list_stores(
    session: AsyncSession, principal: Principal, merchant_id: str | None, before_id: str | None, limit: int
) -> list[StorePublic]:
    tenant = tenant_for_list(principal, merchant_id)
    return [store_public(s) for s in await repository.list_stores(session, tenant, before_id, limit)]
