from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from smartpos_shared.schemas import RequestModel

from ..schemas import OrderId


class BillCreate(RequestModel):
    order_id: OrderId


class BillPublic(BaseModel):
    id: str
    order_id: str
    merchant_id: str
    store_id: str
    status: str
    total_amount: int
    paid_amount: int
    currency: str
    paid_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
