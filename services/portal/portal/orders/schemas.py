from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from smartpos_shared.schemas import RequestModel

from ..schemas import ProductId, StoreId


class OrderItemCreate(RequestModel):
    product_id: ProductId
    quantity: int = Field(strict=True, ge=1, le=10_000)


class OrderCreate(RequestModel):
    store_id: StoreId | None = Field(default=None, description="optional for a device token (its own store)")
    items: list[OrderItemCreate] = Field(min_length=1, max_length=100)


class OrderItemPublic(BaseModel):
    product_id: str
    name: str
    quantity: int
    unit_price: int
    line_total: int


class OrderPublic(BaseModel):
    id: str
    merchant_id: str
    store_id: str
    status: str
    items: list[OrderItemPublic]
    item_count: int
    total_amount: int
    currency: str
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    canceled_at: datetime | None


class OrderStatusUpdate(RequestModel):
    status: Literal["completed", "canceled"]
