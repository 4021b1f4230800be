"""ORM models of the smarttab service (live projections built from events). Every model is imported here so
Alembic sees them all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from smartpos_shared.db import ServiceBase, service_metadata, utcnow
from smartpos_shared.projector import DeadLetterMixin
from smartpos_shared.states import OrderStatus


class Base(ServiceBase):
    __abstract__ = True
    metadata = service_metadata()


class LiveOrder(Base):
    """The latest version of each order, as the portal's events described it. Applied only if newer."""

    __tablename__ = "live_orders"
    __table_args__ = (
        Index(
            "ix_live_orders_store_open",
            "merchant_id",
            "store_id",
            postgresql_where=text(f"status = '{OrderStatus.open}'"),
        ),
        Index("ix_live_orders_store_created_at", "merchant_id", "store_id", "created_at"),
    )

    order_id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String)
    store_id: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    order: Mapped[dict[str, Any]] = mapped_column(JSONB)
    stream_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeadLetter(DeadLetterMixin, Base):
    """An event a projector gave up on after its bounded redeliveries, kept for an operator."""


class LiveStore(Base):
    """Which merchant owns a store, from `store.created`/`store.updated`: a store's live view is answered only to
    its owner, and 404 (never "empty") for a store nobody here has heard of."""

    __tablename__ = "live_stores"

    store_id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String)
    name: Mapped[str] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


__all__ = ["Base", "DeadLetter", "LiveOrder", "LiveStore"]
