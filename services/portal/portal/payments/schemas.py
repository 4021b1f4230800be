from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from smartpos_shared.schemas import RequestModel

from ..schemas import Amount, BillId


class PaymentCreate(RequestModel):
    bill_id: BillId
    amount: Amount
    method: Literal["card", "qr", "cash"]


class PaymentPublic(BaseModel):
    id: str
    bill_id: str
    order_id: str
    merchant_id: str
    store_id: str
    amount: int
    currency: str
    method: str
    status: str
    pgw_reference: str | None
    failure_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime
