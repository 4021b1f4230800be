from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.auth import Principal
from smartpos_shared.db import utcnow
from smartpos_shared.errors import NotFound
from smartpos_shared.ids import new_id

from ..events import emit
from ..models import Merchant, Store
from ..tenancy import Scope, merchant_for_write
from . import repository
from .schemas import MerchantCreate, MerchantPublic, StoreCreate, StorePublic


def merchant_public(merchant: Merchant) -> MerchantPublic:
    return MerchantPublic(
        id=merchant.id, name=merchant.name, currency=merchant.currency, created_at=merchant.created_at
    )


def store_public(store: Store) -> StorePublic:
    return StorePublic(id=store.id, merchant_id=store.merchant_id, name=store.name, created_at=store.created_at)


async def create_merchant(session: AsyncSession, body: MerchantCreate) -> MerchantPublic:
    merchant = Merchant(id=new_id("mer"), name=body.name, currency=body.currency, created_at=utcnow())
    session.add(merchant)
    await session.flush()
    return merchant_public(merchant)


async def get_merchant(session: AsyncSession, principal: Principal, merchant_id: str) -> MerchantPublic:
    scope = Scope.of(principal)
    merchant = await repository.get_merchant(session, merchant_id)
    if merchant is None or (scope.merchant_id is not None and merchant.id != scope.merchant_id):
        raise NotFound("merchant not found")
    return merchant_public(merchant)


async def create_store(session: AsyncSession, principal: Principal, body: StoreCreate) -> StorePublic:
    merchant_id = merchant_for_write(principal, body.merchant_id)
    if await repository.get_merchant(session, merchant_id) is None:
        raise NotFound("merchant not found")
    store = Store(id=new_id("sto"), merchant_id=merchant_id, name=body.name, created_at=utcnow())
    session.add(store)
    await session.flush()
    public = store_public(store)
    # Other services learn which merchant owns a store from this event (device-auth registers devices only for
    # a merchant's own stores; smarttab answers live views only to their owner).
    emit(
        session,
        "store.created",
        merchant_id=store.merchant_id,
        store_id=store.id,
        subject=store.id,
        version=1,
        data=public.model_dump(mode="json"),
    )
    return public


async def get_store(session: AsyncSession, principal: Principal, store_id: str) -> StorePublic:
    store = await repository.get_store(session, Scope.of(principal), store_id)
    if store is None:
        raise NotFound("store not found")
    return store_public(store)


async def list_stores(
    session: AsyncSession, principal: Principal, before_id: str | None, limit: int
) -> list[StorePublic]:
    return [store_public(s) for s in await repository.list_stores(session, Scope.of(principal), before_id, limit)]
