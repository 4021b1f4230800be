"""The checkout's statuses (defined once, in the shared vocabulary of the API and the events)."""

from smartpos_shared.states import (
    PAYABLE_BILL,
    SETTLED_AT_ONCE,
    BillStatus,
    OrderStatus,
    PaymentMethod,
    PaymentStatus,
    RefundStatus,
    check_in,
)

__all__ = [
    "PAYABLE_BILL",
    "SETTLED_AT_ONCE",
    "BillStatus",
    "OrderStatus",
    "PaymentMethod",
    "PaymentStatus",
    "RefundStatus",
    "check_in",
]
