"""Checklists as data, and how each case is judged — from the platform's own events of the run, never from what
the partner reports. `pos-core-v1` is the first; a new version is a new entry (runs keep theirs)."""

from __future__ import annotations

import itertools
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
    refund_events: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    by_type: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    created: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))  # resource -> its *.created

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
            elif event.type.startswith("refund."):
                facts.refund_events[event.subject].append(event)
                if event.type == "refund.succeeded":
                    facts.refunds.append(event)
            if event.type.endswith(".created"):
                facts.created[event.subject].append(event)
        return facts

    def unconfirmed_refunds(self) -> list[Event]:
        """Refunds the platform took that the gateway never confirmed (still pending, or failed)."""
        return [
            events[0] for events in self.refund_events.values() if not any(e.type == "refund.succeeded" for e in events)
        ]

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
    return _no_confirmed_refund(facts, "no succeeded refund of part of a payment yet")


def _no_confirmed_refund(facts: Facts, detail: str) -> Verdict:
    """Pending — and if the till refunded something the gateway never confirmed, that refund is the evidence."""
    unconfirmed = facts.unconfirmed_refunds()
    if not unconfirmed:
        return Verdict("pending", detail=detail)
    named = ", ".join(f"{e.subject} ({e.data.get('amount')}, {facts.refund_events[e.subject][-1].data.get('status')})"
                      for e in unconfirmed)  # fmt: skip
    return Verdict(
        "pending",
        tuple(e.event_id for e in unconfirmed),
        f"{detail}: refunds never confirmed by the gateway: {named}",
    )


def full_refund(facts: Facts) -> Verdict:
    for payment_id, payment in facts.payments.items():
        if payment.get("amount") and payment.get("refunded_amount") == payment.get("amount"):
            evidence = tuple(r.event_id for r in facts.refunds if r.data.get("payment_id") == payment_id)
            if evidence:
                return Verdict("passed", evidence, f"payment {payment_id} refunded in full")
    return _no_confirmed_refund(facts, "no payment refunded in full yet")


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


def _sale_key(data: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two offline orders the same sale: same store, same moment at the till, same lines."""
    lines = tuple(sorted((i.get("product_id"), i.get("quantity")) for i in data.get("items") or []))
    return data.get("store_id"), data.get("taken_at"), data.get("total_amount"), lines


def offline_forwarded(facts: Facts) -> Verdict:
    """Offline sales forwarded, then the same batch resent: the resend must create nothing. An order created
    twice — the same client id, or the same sale (store, time taken, lines) under a new client id — fails it."""
    offline = [e for e in facts.by_type["order.created"] if e.data.get("client_order_id") and e.data.get("taken_at")]
    if not offline:
        return Verdict("pending", detail="no order taken offline and forwarded yet")
    seen: dict[Any, Event] = {}
    for event in offline:
        for key in (("client", event.data["client_order_id"]), ("sale", *_sale_key(event.data))):
            first = seen.setdefault(key, event)
            if first.subject != event.subject:
                return Verdict(
                    "failed",
                    (first.event_id, event.event_id),
                    f"the same offline sale was created twice: {first.subject} and {event.subject}"
                    f" (client ids {first.data['client_order_id']}, {event.data['client_order_id']})",
                )
    created_offline = {e.subject: e for e in offline}
    for batch in facts.by_type["sync.forwarded"]:
        results = batch.data.get("results") or []
        if results and all(r.get("status") == "duplicate" and r.get("order_id") in created_offline for r in results):
            orders = [created_offline[r["order_id"]] for r in results]
            return Verdict(
                "passed",
                (batch.event_id, *(o.event_id for o in orders)),
                f"a batch of {len(results)} resent: every order was a duplicate of one created once",
            )
    return Verdict(
        "pending",
        tuple(e.event_id for e in offline),
        f"{len(offline)} offline orders forwarded, each once; no resent batch seen yet",
    )


def idempotent_retry(facts: Facts) -> Verdict:
    """A request retried with its Idempotency-Key was answered from the first response (`request.replayed`), and
    the resource it named was created once in the run."""
    replays = facts.by_type["request.replayed"]
    for replay in replays:
        resource = str(replay.data.get("resource_id") or "")
        created = facts.created.get(resource, [])
        if len(created) == 1:
            return Verdict(
                "passed",
                (replay.event_id, created[0].event_id),
                f"{replay.data.get('method')} {replay.data.get('path')} retried: answered from the first response,"
                f" {resource} created once",
            )
        if len(created) > 1:
            return Verdict("failed", (replay.event_id, *(e.event_id for e in created)), f"{resource} created twice")
    if replays:
        return Verdict("pending", tuple(r.event_id for r in replays), "retries seen, of nothing created in this run")
    return Verdict("pending", detail="no request retried with its Idempotency-Key yet")


def token_renewed(facts: Facts) -> Verdict:
    """A device signed in again while its previous token was still valid (tokens live 120 s)."""
    by_device: dict[str, list[Event]] = defaultdict(list)
    for event in facts.by_type["token.issued"]:
        by_device[event.subject].append(event)
    for device, events in by_device.items():
        events.sort(key=lambda e: int(e.data.get("issued_at", 0)))
        for previous, renewed in itertools.pairwise(events):
            left = int(previous.data.get("expires_at", 0)) - int(renewed.data.get("issued_at", 0))
            if left > 0:
                return Verdict(
                    "passed",
                    (previous.event_id, renewed.event_id),
                    f"device {device} renewed its token {left} s before it expired",
                )
    signed_in = sum(len(v) for v in by_device.values())
    if signed_in:
        return Verdict("pending", detail=f"{signed_in} sign-ins, none while the previous token was still valid")
    return Verdict("pending", detail="no token issued to the run's terminals yet")


def credits_reallocated(facts: Facts) -> Verdict:
    """The overnight run of the merchant's test clock applied a credit programme (its allocation entries)."""
    entries = facts.by_type["credit_entry.created"]
    allocated = [e for e in entries if e.data.get("kind") == "allocate"]
    if allocated:
        first = allocated[0].data
        same_day = [e for e in entries if e.data.get("business_date") == first.get("business_date")]
        return Verdict(
            "passed",
            tuple(e.event_id for e in same_day),
            f"programme {first.get('programme_id')} allocated {first.get('amount')} to {first.get('account_id')}"
            f" for {first.get('business_date')} (entries that day: {len(same_day)})",
        )
    return Verdict("pending", detail="no credit programme applied by the overnight run yet (advance the test clock)")


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
        Case("idempotent_retry", "A retried request moved nothing twice", idempotent_retry),
        Case("offline_forwarded", "Offline sale forwarded, resent without duplicates", offline_forwarded),
        Case("token_renewed", "Access token renewed before expiry", token_renewed),
        Case("shift_closed", "Cash drawer shift closed", _one_of("shift.closed", "shift closed")),
        Case("close_of_business", "Close of business sealed", _one_of("closeout.created", "Z report sealed")),
        Case("credits_reallocated", "Credits reallocated by the overnight run", credits_reallocated),
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
