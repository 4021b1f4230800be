"""The statuses the REST API and the events carry (API.md): one definition for the portal's models (their CHECK
constraints), schemas and aggregate, and for the services that read its events (smarttab). Which transitions
are allowed is the portal's business (portal/checkout/model.py); these are only the words."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    open = "open"
    completed = "completed"
    canceled = "canceled"


class BillStatus(StrEnum):
    unpaid = "unpaid"
    partially_paid = "partially_paid"
    paid = "paid"
    void = "void"


class PaymentStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


class RefundStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class PaymentMethod(StrEnum):
    card = "card"
    qr = "qr"
    cash = "cash"
    credit = "credit"  # store credit: redeemed from a credit account (`cra_`) in the payment's own transaction


# Tenders the platform settles itself, at once: no gateway involved.
SETTLED_AT_ONCE = frozenset({PaymentMethod.cash, PaymentMethod.credit})


PAYABLE_BILL = frozenset({BillStatus.unpaid, BillStatus.partially_paid})


def check_in(column: str, values: type[StrEnum]) -> str:
    """The SQL of a CHECK constraint that keeps `column` within an enum's values."""
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"
