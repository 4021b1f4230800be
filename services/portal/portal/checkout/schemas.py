"""Request and response models of orders, bills and payments. The responses document the representations the
aggregate builds (model.py `body()`); the OpenAPI test and the schema fuzzer keep the two in step."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    model_validator,
)

from smartpos_shared.schemas import RequestModel

from ..schemas import ULID, Amount, BillId, OrderId, PaymentId, ProductId, StoreId
from .states import BillStatus, OrderStatus, PaymentMethod, PaymentStatus, RefundStatus

# A terminal-generated business id (offline store-and-forward): unique per merchant.
CreditAccountId = Annotated[str, StringConstraints(pattern=rf"^cra_{ULID}$")]


def _not_credit(method: PaymentMethod) -> PaymentMethod:
    if method is PaymentMethod.credit:
        raise ValueError("store credit is taken online only (an offline terminal cannot know the balance)")
    return method


OfflineMethod = Annotated[PaymentMethod, AfterValidator(_not_credit)]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class OrderItemCreate(RequestModel):
    product_id: ProductId
    quantity: int = Field(strict=True, ge=1, le=10_000)


class OrderCreate(RequestModel):
    store_id: StoreId | None = Field(default=None, description="optional for a device token (its own store)")
    items: list[OrderItemCreate] = Field(min_length=1, max_length=100)
    client_order_id: ClientId | None = Field(
        default=None,
        description="the terminal's own id, unique per merchant: the same id never creates a second order "
        "(same content: 200 with the existing order; other content: 409 client_id_conflict)",
    )


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
    status: OrderStatus
    items: list[OrderItemPublic]
    item_count: int
    total_amount: int
    refunded_amount: int = Field(description="succeeded refunds of the order's payments")
    currency: str
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    canceled_at: datetime | None
    client_order_id: str | None
    taken_at: datetime | None = Field(description="when a terminal took it offline (POST /sync)")


class OrderStatusUpdate(RequestModel):
    status: Literal[OrderStatus.completed, OrderStatus.canceled]


class BillCreate(RequestModel):
    order_id: OrderId


class BillPublic(BaseModel):
    id: str
    order_id: str
    merchant_id: str
    store_id: str
    status: BillStatus
    total_amount: int
    paid_amount: int
    refunded_amount: int = Field(description="succeeded refunds of the bill's payments")
    currency: str
    paid_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class PaymentCreate(RequestModel):
    bill_id: BillId
    amount: Amount
    method: PaymentMethod
    credit_account_id: CreditAccountId | None = Field(
        default=None, description="method `credit`: the account redeemed (in the payment's own transaction)"
    )
    client_payment_id: ClientId | None = Field(
        default=None,
        description="the terminal's own id, unique per merchant: the same id never creates a second payment "
        "(same content: 200 with the existing payment; other content: 409 client_id_conflict)",
    )

    @model_validator(mode="after")
    def _credit_needs_its_account(self) -> PaymentCreate:
        if (self.method is PaymentMethod.credit) != (self.credit_account_id is not None):
            raise ValueError("credit_account_id is required with method credit, and only with it")
        return self


class PaymentPublic(BaseModel):
    id: str
    bill_id: str
    order_id: str
    merchant_id: str
    store_id: str
    amount: int
    currency: str
    method: PaymentMethod
    status: PaymentStatus
    pgw_reference: str | None
    failure_reason: str | None
    refunded_amount: int = Field(description="succeeded refunds")
    refund_pending_amount: int = Field(description="refunds the gateway has not settled yet (reserved)")
    captured_after_void_at: datetime | None = Field(
        description="the gateway captured this payment after it was voided: it never paid the bill and was "
        "refunded automatically (listed for review)"
    )
    client_payment_id: str | None
    taken_offline: bool
    version: int
    created_at: datetime
    updated_at: datetime


class RefundCreate(RequestModel):
    payment_id: PaymentId
    amount: Amount
    reason: str | None = Field(default=None, min_length=1, max_length=500)


class RefundPublic(BaseModel):
    id: str
    payment_id: str
    bill_id: str
    order_id: str
    merchant_id: str
    store_id: str
    amount: int
    currency: str
    method: PaymentMethod
    status: RefundStatus
    reason: str | None
    pgw_reference: str | None
    failure_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class SyncPayment(RequestModel):
    client_payment_id: ClientId
    method: OfflineMethod
    amount: Amount
    offline_auth: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="the authorization the terminal got offline, if any",
    )


def _rfc3339_string(value: object) -> object:
    if not isinstance(value, str):  # pydantic would read a number as a Unix time; the schema says a string
        raise ValueError("must be an RFC 3339 date-time string")
    return value


# A batch's largest valid body stays under the 64 KiB request limit: a terminal with more sends several batches.
class SyncOrder(RequestModel):
    client_order_id: ClientId
    taken_at: Annotated[AwareDatetime, BeforeValidator(_rfc3339_string)] = Field(
        description="RFC 3339 with a UTC offset (a string, not a number)"
    )
    items: list[OrderItemCreate] = Field(min_length=1, max_length=50)
    payments: list[SyncPayment] = Field(default_factory=list, max_length=5)


class SyncRequest(RequestModel):
    orders: list[SyncOrder] = Field(min_length=1, max_length=10)


class SyncResult(BaseModel):
    client_order_id: str
    status: Literal["created", "duplicate", "rejected"]
    order_id: str | None = None
    reason: str | None = None


class SyncResponse(BaseModel):
    results: list[SyncResult]
