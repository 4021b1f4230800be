from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, StringConstraints

from smartpos_shared.schemas import RequestModel

from ..schemas import MerchantId, Name, Price

Sku = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class ProductCreate(RequestModel):
    name: Name
    unit_price: Price
    sku: Sku | None = None
    merchant_id: MerchantId | None = None


class ProductPublic(BaseModel):
    id: str
    merchant_id: str
    name: str
    sku: str | None
    unit_price: int
    currency: str
    created_at: datetime
    active: bool = True  # false: a promoted configuration dropped it from the catalog (not sold)
