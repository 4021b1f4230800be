"""Checklists as data, and how each case is judged — from the platform's own events of the run, never from what
the partner reports. `pos-core-v1` is the first; a new version is a new entry (runs keep theirs)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    event_id: str
    type: str
    subject: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    status: str  # passed | failed | pending
    evidence: tuple[str, ...] = ()
    detail: str = ""


@dataclass
class Facts:
    """What the events of a run show, resource by resource (latest snapshot wins: events come in order)."""

    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_events: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    paid_bills: dict[str, Event] = field(default_factory=dict)
    refunds: list[Event] = field(default_factory=list)
    by_type: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def of(cls, events: Sequence[Event]) -> Facts:
        facts = cls()
        for event in events:
            facts.by_type[event.type].append(event)
            if event.type.startswith("payment."):
                facts.payments[event.subject] = event.data
                facts.payment_events[event.subject].append(event)
            elif event.type == "bill.paid":
                facts.paid_bills[event.subject] = event
            elif event.type == "refund.succeeded":
                facts.refunds.append(event)
        return facts

    def succeeded_on(self, bill_id: str) -> list[dict[str, Any]]:
        return [p for p in self.payments.values() if p.get("bill_id") == bill_id and p.get("status") == "succeeded"]

    def evidence_of(self, bill_id: str) -> tuple[str, ...]:
        ids = [e.event_id for pid, events in self.payment_events.items() for e in events
               if self.payments[pid].get("bill_id") == bill_id]  # fmt: skip
        return (self.paid_bills[bill_id].event_id, *ids)


Judge = Callable[[Facts], Verdict]


def _sale_by(method: str) -> Judge:
    def judge(facts: Facts) -> Verdict:
        for bill_id in facts.paid_bills:
            paid = facts.succeeded_on(bill_id)
            if len(paid) == 1 and paid[0].get("method") == method:
                return Verdict("passed", facts.evidence_of(bill_id), f"bill {bill_id} paid by one {method} payment")
        return Verdict("pending", detail=f"no bill paid by a single {method} payment yet")

    return judge


def split_tender(facts: Facts) -> Verdict:
    for bill_id in facts.paid_bills:
        paid = facts.succeeded_on(bill_id)
        if len(paid) >= 2 and len({p.get("method") for p in paid}) >= 2:
            return Verdict("passed", facts.evidence_of(bill_id), f"bill {bill_id} paid by {len(paid)} payments")
    return Verdict("pending", detail="no bill paid by two succeeded payments of different methods yet")


def declined_then_good(facts: Facts) -> Verdict:
    failed = {p["bill_id"] for p in facts.payments.values() if p.get("status") == "failed" and p.get("bill_id")}
    for bill_id in facts.paid_bills:
        if bill_id in failed and facts.succeeded_on(bill_id):
            return Verdict("passed", facts.evidence_of(bill_id), f"bill {bill_id}: a declined card, then paid")
    return Verdict("pending", detail="no bill with a declined payment that was then paid")


def partial_refund(facts: Facts) -> Verdict:
    for refund in facts.refunds:
        payment = facts.payments.get(str(refund.data.get("payment_id")))
        if payment is not None and refund.data.get("amount", 0) < payment.get("amount", 0):
            return Verdict(
                "passed", (refund.event_id,), f"{refund.subject}: {refund.data['amount']} of {payment['amount']}"
            )
    return Verdict("pending", detail="no succeeded refund of part of a payment yet")


def full_refund(facts: Facts) -> Verdict:
    for payment_id, payment in facts.payments.items():
        if payment.get("amount") and payment.get("refunded_amount") == payment.get("amount"):
            evidence = tuple(r.event_id for r in facts.refunds if r.data.get("payment_id") == payment_id)
            if evidence:
                return Verdict("passed", evidence, f"payment {payment_id} refunded in full")
    return Verdict("pending", detail="no payment refunded in full yet")


def void_before_capture(facts: Facts) -> Verdict:
    for event in facts.by_type["payment.canceled"]:
        history = {e.type for e in facts.payment_events[event.subject]}
        if "payment.succeeded" not in history:
            return Verdict("passed", (event.event_id,), f"payment {event.subject} voided while pending")
    return Verdict("pending", detail="no pending payment voided yet")


def _one_of(event_type: str, what: str) -> Judge:
    def judge(facts: Facts) -> Verdict:
        events = facts.by_type[event_type]
        if events:
            return Verdict("passed", (events[0].event_id,), f"{what}: {events[0].subject}")
        return Verdict("pending", detail=f"no {event_type} yet")

    return judge


def offline_forwarded(facts: Facts) -> Verdict:
    offline = [e for e in facts.by_type["order.created"] if e.data.get("client_order_id") and e.data.get("taken_at")]
    if not offline:
        return Verdict("pending", detail="no order taken offline and forwarded yet")
    ids = [str(e.data["client_order_id"]) for e in offline]
    if len(set(ids)) != len(ids):
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        return Verdict("failed", tuple(e.event_id for e in offline), f"orders created twice: {duplicated}")
    return Verdict("passed", tuple(e.event_id for e in offline), f"{len(ids)} offline orders, each created once")


def not_judged_yet(needs: str) -> Judge:
    def judge(facts: Facts) -> Verdict:
        return Verdict("pending", detail=f"not judged yet: needs {needs}")

    return judge


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    judge: Judge


CHECKLISTS: dict[str, tuple[Case, ...]] = {
    "pos-core-v1": (
        Case("sale_by_card", "Sale paid by card", _sale_by("card")),
        Case("sale_by_cash", "Sale paid in cash", _sale_by("cash")),
        Case("split_tender", "One bill, two tenders", split_tender),
        Case("declined_then_good", "Declined card, then a good payment", declined_then_good),
        Case("partial_refund", "Part of a payment refunded", partial_refund),
        Case("full_refund", "A payment refunded in full", full_refund),
        Case("void_before_capture", "A pending payment voided before capture", void_before_capture),
        Case(
            "idempotent_retry",
            "A retried request moved nothing twice",
            not_judged_yet("the portal's idempotency records"),
        ),
        Case("offline_forwarded", "Offline sale forwarded, resent without duplicates", offline_forwarded),
        Case("token_renewed", "Access token renewed before expiry", not_judged_yet("device-auth's token events")),
        Case("shift_closed", "Cash drawer shift closed", _one_of("shift.closed", "shift closed")),
        Case("close_of_business", "Close of business sealed", _one_of("closeout.created", "Z report sealed")),
        Case("credits_reallocated", "Credits reallocated by the overnight run", not_judged_yet("credit entry events")),
    ),
    # For integrations that only take payments (a payment terminal beside another till): the money cases.
    "pos-payments-v1": (
        Case("sale_by_card", "Sale paid by card", _sale_by("card")),
        Case("sale_by_cash", "Sale paid in cash", _sale_by("cash")),
        Case("split_tender", "One bill, two tenders", split_tender),
        Case("void_before_capture", "A pending payment voided before capture", void_before_capture),
    ),
}


def judge(checklist: str, events: Sequence[Event], *, final: bool) -> list[dict[str, Any]]:
    """Every case of the checklist with its verdict; once the run is complete, what is still pending failed."""
    facts = Facts.of(events)
    cases = []
    for case in CHECKLISTS[checklist]:
        verdict = case.judge(facts)
        status = "failed" if final and verdict.status == "pending" else verdict.status
        cases.append(
            {"id": case.id, "title": case.title, "status": status, "evidence": list(verdict.evidence),
             "detail": verdict.detail}
        )  # fmt: skip
    return cases
