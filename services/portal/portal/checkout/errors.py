"""Why a checkout transition was refused: typed, each with its HTTP status and stable code."""

from __future__ import annotations

from smartpos_shared.errors import Conflict, ServiceUnavailable, Unprocessable


class OrderNotOpen(Conflict):
    code = "order_not_open"


class BillExists(Conflict):
    code, title = "bill_exists", "The order already has a live bill"

    def __init__(self) -> None:
        super().__init__("the order already has a live bill")


class NothingToBill(Conflict):
    code = "nothing_to_bill"

    def __init__(self) -> None:
        super().__init__("the order totals 0: complete it instead of billing it")


class BillNotPayable(Conflict):
    code = "bill_not_payable"


class PaymentsPending(Conflict):
    code = "payments_pending"

    def __init__(self) -> None:
        super().__init__("the bill has pending payments; wait for the gateway")


class BillHasPayments(Conflict):
    code = "bill_has_payments"

    def __init__(self) -> None:
        super().__init__("the bill has payments; refund them before canceling")


class AmountExceedsRemaining(Unprocessable):
    code = "amount_exceeds_remaining"

    def __init__(self, remaining: int) -> None:
        super().__init__(
            f"amount exceeds what remains to be paid ({remaining}, counting pending payments)",
            extra={"remaining_amount": remaining},
        )


class PaymentMethodDisabled(Unprocessable):
    code = "payment_method_disabled"


class UnknownProducts(Unprocessable):
    code = "unknown_product"

    def __init__(self, unknown: list[str]) -> None:
        super().__init__(f"unknown products: {', '.join(unknown)}", extra={"unknown": unknown})


class ConcurrentChange(ServiceUnavailable):
    """A row changed under the aggregate's lock: impossible while every writer takes the lock, so it is treated
    as a transient failure (the transaction rolls back; the client retries) rather than a silent overwrite."""

    code = "concurrent_change"

    def __init__(self) -> None:
        super().__init__("the resource changed concurrently; retry", headers={"Retry-After": "1"})


class PaymentNotRefundable(Conflict):
    code = "payment_not_refundable"


class PaymentNotVoidable(Conflict):
    code = "payment_not_voidable"


class RefundExceedsPayment(Unprocessable):
    code = "refund_exceeds_payment"

    def __init__(self, refundable: int) -> None:
        super().__init__(
            f"amount exceeds what is left to refund on the payment ({refundable}, counting pending refunds)",
            extra={"refundable_amount": refundable},
        )


class ClientIdTaken(Exception):
    """Internal: a terminal-generated id (`client_order_id` / `client_payment_id`) is already used by this
    merchant. The use case compares the existing resource: the same content is answered 200, other content 409."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class ClientIdConflict(Conflict):
    code, title = "client_id_conflict", "The terminal's id is already used with different content"
