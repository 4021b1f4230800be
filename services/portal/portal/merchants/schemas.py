from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from smartpos_shared.schemas import RequestModel

from ..currencies import MINOR_UNITS
from ..schemas import Amount, MerchantId, Name


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
    offline_max_payment_amount: int | None = Field(
        description="largest card or qr payment a terminal may take offline (cash is not limited)"
    )
    offline_max_outstanding_amount: int | None = Field(
        description="per terminal: offline card/qr payments not yet confirmed by the gateway"
    )
    offline_max_age_hours: int = Field(description="how old an offline sale may be when it is forwarded")


class OfflineLimitsUpdate(RequestModel):
    """Only the fields sent change; `null` removes a limit."""

    offline_max_payment_amount: Amount | None = None
    offline_max_outstanding_amount: Amount | None = None
    offline_max_age_hours: int | None = Field(default=None, strict=True, ge=1, le=720)


class StoreCreate(RequestModel):
    name: Name
    merchant_id: MerchantId | None = None


class StorePublic(BaseModel):
    id: str
    merchant_id: str
    name: str
    created_at: datetime
