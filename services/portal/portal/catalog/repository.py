from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import Product


async def get_product(session: AsyncSession, merchant_id: str | None, product_id: str) -> Product | None:
    query = select(Product).where(Product.id == product_id)
    if merchant_id is not None:
        query = query.where(Product.merchant_id == merchant_id)
    return (await session.execute(query)).scalar_one_or_none()


async def products_by_id(session: AsyncSession, merchant_id: str, product_ids: Iterable[str]) -> dict[str, Product]:
    result = await session.execute(
        select(Product).where(Product.merchant_id == merchant_id, Product.id.in_(set(product_ids)))
    )
    return {product.id: product for product in result.scalars()}


async def sku_taken(session: AsyncSession, merchant_id: str, sku: str) -> bool:
    query = select(Product.id).where(Product.merchant_id == merchant_id, Product.sku == sku).limit(1)
    return (await session.execute(query)).first() is not None


async def list_products(
    session: AsyncSession, merchant_id: str | None, before_id: str | None, limit: int
) -> list[Product]:
    query = select(Product).order_by(Product.id.desc()).limit(limit + 1)
    if merchant_id is not None:
        query = query.where(Product.merchant_id == merchant_id)
    if before_id is not None:
        query = query.where(Product.id < before_id)
    return list((await session.execute(query)).scalars())
