from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import Product


async def get_product(session: AsyncSession, merchant_id: str, product_id: str) -> Product | None:
    query = select(Product).where(Product.id == product_id, Product.merchant_id == merchant_id)
    return (await session.execute(query)).scalar_one_or_none()


async def merchant_of_product(session: AsyncSession, product_id: str) -> str | None:
    """Tenant resolution (admins): who owns the product."""
    query = select(Product.merchant_id).where(Product.id == product_id).prefix_with("/* tenant-resolution */")
    merchant_id: str | None = (await session.execute(query)).scalar_one_or_none()
    return merchant_id


async def sku_taken(session: AsyncSession, merchant_id: str, sku: str) -> bool:
    query = select(Product.id).where(Product.merchant_id == merchant_id, Product.sku == sku).limit(1)
    return (await session.execute(query)).first() is not None


async def list_products(session: AsyncSession, merchant_id: str, before_id: str | None, limit: int) -> list[Product]:
    query = select(Product).where(Product.merchant_id == merchant_id).order_by(Product.id.desc()).limit(limit + 1)
    if before_id is not None:
        query = query.where(Product.id < before_id)
    return list((await session.execute(query)).scalars())
