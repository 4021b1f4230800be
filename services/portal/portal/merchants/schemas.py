from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from smartpos_shared.schemas import RequestModel

from ..closeout.business_day import valid_timezone
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


def _known_timezone(name: str) -> str:
    if not valid_timezone(name):
        raise ValueError("timezone must be an IANA time zone name (e.g. Asia/Tokyo, America/New_York, UTC)")
    return name


Timezone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_known_timezone)]
LocalTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class StoreCreate(RequestModel):
    name: Name
    merchant_id: MerchantId | None = None
    timezone: Timezone = Field(default="UTC", description="IANA time zone of the store")
    day_closes_at: LocalTime = Field(
        default="04:00", description="local time (HH:MM) at which the store's business day ends"
    )


class StoreUpdate(RequestModel):
    """Only the fields sent change. A new timezone or closing time applies from the next business day that is
    not sealed yet (a sealed day never changes)."""

    name: Name | None = None
    timezone: Timezone | None = None
    day_closes_at: LocalTime | None = None


class StorePublic(BaseModel):
    id: str
    merchant_id: str
    name: str
    created_at: datetime
    timezone: str = Field(description="IANA time zone of the store")
    day_closes_at: str = Field(description="local time (HH:MM) at which the store's business day ends")
