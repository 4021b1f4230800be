from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.auth import Principal
from smartpos_shared.db import utcnow
from smartpos_shared.errors import Conflict, NotFound
from smartpos_shared.ids import new_id

from ..merchants import repository as merchants
from ..models import Product
from ..tenancy import merchant_for_write, tenant_for, tenant_for_list
from . import repository
from .schemas import ProductCreate, ProductPublic


def product_public(product: Product) -> ProductPublic:
    return ProductPublic(
        id=product.id,
        merchant_id=product.merchant_id,
        name=product.name,
        sku=product.sku,
        unit_price=product.unit_price,
        currency=product.currency,
        created_at=product.created_at,
        active=product.active,
    )


async def create_product(session: AsyncSession, principal: Principal, body: ProductCreate) -> ProductPublic:
    merchant_id = merchant_for_write(principal, body.merchant_id)
    merchant = await merchants.get_merchant(session, merchant_id)
    if merchant is None:
        raise NotFound("merchant not found")
    if body.sku is not None and await repository.sku_taken(session, merchant_id, body.sku):
        raise Conflict("a product with this sku exists", code="sku_taken")
    product = Product(
        id=new_id("prd"),
        merchant_id=merchant_id,
        name=body.name,
        sku=body.sku,
        unit_price=body.unit_price,
        currency=merchant.currency,
        created_at=utcnow(),
        active=True,
    )
    session.add(product)
    await session.flush()
    return product_public(product)


async def get_product(session: AsyncSession, principal: Principal, product_id: str) -> ProductPublic:
    tenant = await tenant_for(principal, lambda: repository.merchant_of_product(session, product_id))
    product = await repository.get_product(session, tenant.merchant_id, product_id)
    if product is None:
        raise NotFound("product not found")
    return product_public(product)


async def list_products(
    session: AsyncSession, principal: Principal, merchant_id: str | None, before_id: str | None, limit: int
) -> list[ProductPublic]:
    rows = await repository.list_products(
        session, tenant_for_list(principal, merchant_id).merchant_id, before_id, limit
    )
    return [product_public(p) for p in rows]
