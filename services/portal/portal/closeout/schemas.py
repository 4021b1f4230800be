from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from smartpos_shared.schemas import RequestModel

from ..schemas import MAX_AMOUNT, Amount, StoreId

Cash = Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT)]


class ShiftOpen(RequestModel):
    store_id: StoreId | None = Field(default=None, description="a device opens the shift of its own store")
    opening_float: Cash


class CashMovementCreate(RequestModel):
    kind: Literal["paid_in", "paid_out"]
    amount: Amount
    note: Annotated[str, StringConstraints(max_length=500)] | None = None


class ShiftClose(RequestModel):
    counted_cash: Cash


class ShiftPublic(BaseModel):
    id: str
    merchant_id: str
    store_id: str
    status: Literal["open", "closed"]
    currency: str
    opening_float: int
    opened_at: datetime
    closed_at: datetime | None
    cash_sales: int | None = Field(description="withheld from a device while the shift is open (blind close)")
    cash_refunds: int | None
    paid_in: int
    paid_out: int
    expected_cash: int | None = Field(description="withheld from a device while the shift is open (blind close)")
    counted_cash: int | None
    difference: int | None = Field(description="counted_cash - expected_cash, once closed")
    version: int


class CashMovementPublic(BaseModel):
    id: str
    shift_id: str
    kind: Literal["paid_in", "paid_out"]
    amount: int
    note: str | None
    created_at: datetime


class CloseoutCreate(RequestModel):
    business_date: date | None = Field(
        default=None, description="the day to close; it must be the store's next unsealed day (the default)"
    )


class ZReportPublic(BaseModel):
    id: str
    merchant_id: str
    store_id: str
    number: int
    business_date: str
    timezone: str
    window_start: str
    window_end: str
    currency: str
    orders: int
    gross_sales: int
    refunds: int
    net_sales: int
    by_method: dict[str, dict[str, int]]
    shifts: list[dict[str, Any]]
    carried_over: dict[str, Any]
    previous_hash: str
    hash: str
    created_at: str


class ChainVerification(BaseModel):
    intact: bool
    reports: int
    broken_at: int | None = Field(description="the number of the first report that does not verify")
    problem: str | None


class ZReportPage(BaseModel):
    items: list[ZReportPublic]
    next_cursor: str | None
    verification: ChainVerification | None = Field(description="with ?verify=true: the whole chain, checked")


class ReconciliationPublic(BaseModel):
    store_id: str
    business_date: str
    window_start: str
    window_end: str
    status: Literal["balanced", "differences"]
    matched: dict[str, int] = Field(description="count and amount settled by the gateway as the platform counted")
    missing_at_gateway: list[dict[str, Any]] = Field(description="counted by the platform, never settled")
    missing_in_platform: list[dict[str, Any]] = Field(description="settled by the gateway, counted on no day")
    amount_mismatch: list[dict[str, Any]] = Field(description="both sides, different amounts")
    stored: bool = Field(description="reconciled by the overnight run (else computed for this request)")
    sealed: bool = Field(description="the day's Z report is sealed")
