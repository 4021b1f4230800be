from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import Order, OrderLine
from ..tenancy import Scope


def _scoped(query, scope: Scope):  # type: ignore[no-untyped-def]
    if scope.merchant_id is not None:
        query = query.where(Order.merchant_id == scope.merchant_id)
    if scope.store_id is not None:
        query = query.where(Order.store_id == scope.store_id)
    return query


async def get_order(session: AsyncSession, scope: Scope, order_id: str) -> Order | None:
    query = _scoped(select(Order).where(Order.id == order_id), scope)
    return (await session.execute(query)).scalar_one_or_none()


async def lock_order(session: AsyncSession, scope: Scope, order_id: str) -> Order | None:
    """The order row is the lock for its whole aggregate (order, bill, payments): always taken first."""
    query = (
        _scoped(select(Order).where(Order.id == order_id), scope)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def lines_of(session: AsyncSession, order_ids: Sequence[str]) -> dict[str, list[OrderLine]]:
    result = await session.execute(
        select(OrderLine).where(OrderLine.order_id.in_(order_ids)).order_by(OrderLine.order_id, OrderLine.line_no)
    )
    lines: dict[str, list[OrderLine]] = defaultdict(list)
    for line in result.scalars():
        lines[line.order_id].append(line)
    return lines


async def list_orders(
    session: AsyncSession,
    scope: Scope,
    store_id: str | None,
    status: str | None,
    before_id: str | None,
    limit: int,
) -> list[Order]:
    query = _scoped(select(Order), scope).order_by(Order.id.desc()).limit(limit + 1)
    if store_id is not None:
        query = query.where(Order.store_id == store_id)
    if status is not None:
        query = query.where(Order.status == status)
    if before_id is not None:
        query = query.where(Order.id < before_id)
    return list((await session.execute(query)).scalars())
