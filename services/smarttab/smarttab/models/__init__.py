"""ORM models of the smarttab service (live projections built from events). Every model is imported here so
Alembic sees them all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from smartpos_shared.db import ServiceBase, service_metadata, utcnow


class Base(ServiceBase):
    __abstract__ = True
    metadata = service_metadata()


class LiveOrder(Base):
    """The latest version of each order, as the portal's events described it. Applied only if newer."""

    __tablename__ = "live_orders"
    __table_args__ = (
        Index("ix_live_orders_store_open", "merchant_id", "store_id", postgresql_where=text("status = 'open'")),
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


class DeadLetter(Base):
    """An event the projector gave up on after its bounded redeliveries, kept for an operator."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String)
    subject: Mapped[str] = mapped_column(String)
    stream_seq: Mapped[int] = mapped_column(BigInteger)
    deliveries: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String)
    payload: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))


__all__ = ["Base", "DeadLetter", "LiveOrder"]
