from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel

from smartpos_shared.schemas import RequestModel

from ..currencies import MINOR_UNITS
from ..schemas import MerchantId, Name


def _known_currency(code: str) -> str:
    if code not in MINOR_UNITS:
        raise ValueError("currency must be an ISO 4217 code we support (e.g. JPY, USD, EUR)")
    return code


Currency = Annotated[str, AfterValidator(_known_currency)]


class MerchantCreate(RequestModel):
    name: Name
    currency: Currency


class MerchantPublic(BaseModel):
    id: str
    name: str
    currency: str
    created_at: datetime


class StoreCreate(RequestModel):
    name: Name
    merchant_id: MerchantId | None = None


class StorePublic(BaseModel):
    id: str
    merchant_id: str
    name: str
    created_at: datetime
