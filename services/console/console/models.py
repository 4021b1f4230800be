"""ORM models of the console service (its own database, `smartpos_console`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from smartpos_shared.db import ServiceBase, service_metadata
from smartpos_shared.events import OutboxMixin
from smartpos_shared.projector import DeadLetterMixin


class Base(ServiceBase):
    __abstract__ = True
    metadata = service_metadata()


class Integration(Base):
    """A partner's POS software at one version (`int_`): what is certified, rolled out and run by devices."""

    __tablename__ = "integrations"
    __table_args__ = (
        UniqueConstraint("partner_id", "name", "version"),
        Index("ix_integrations_partner_id_id", "partner_id", "id"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    partner_id: Mapped[str] = mapped_column(String)  # the partner's API client (device-auth `cli_…`)
    name: Mapped[str] = mapped_column(String)
    version: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column()


class AuditEntry(Base):
    """The append-only, hash-chained audit log: every approval, rollout and change (console/audit/log.py). A
    trigger refuses UPDATE, DELETE and TRUNCATE; `hash` covers the entry and the previous entry's hash."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column()
    actor_role: Mapped[str] = mapped_column(String)
    actor_id: Mapped[str] = mapped_column(String)
    action: Mapped[str] = mapped_column(String)
    subject: Mapped[str] = mapped_column(String)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB)
    previous_hash: Mapped[str] = mapped_column(String)
    hash: Mapped[str] = mapped_column(String)


class Rollout(Base):
    """An integration going live (`rol_`): for one merchant first (`pilot`, until `pilot_ends_at`), then for all
    (`live`), or stopped (`rolled_back`). At most one active rollout per integration."""

    __tablename__ = "rollouts"
    __table_args__ = (
        CheckConstraint("status IN ('pilot', 'live', 'rolled_back')", name="status"),
        CheckConstraint("pilot_days BETWEEN 1 AND 90", name="pilot_days"),
        Index(
            "uq_rollouts_active_integration",
            "integration_id",
            unique=True,
            postgresql_where=text("status IN ('pilot', 'live')"),
        ),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"))
    merchant_id: Mapped[str] = mapped_column(String)  # the pilot organisation
    status: Mapped[str] = mapped_column(String)
    pilot_days: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    pilot_ends_at: Mapped[datetime] = mapped_column()
    promoted_at: Mapped[datetime | None] = mapped_column()
    rolled_back_at: Mapped[datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(Integer)


class PilotPayment(Base):
    """A card or qr payment at a pilot's merchant during the pilot, as the event stream showed it: what the pilot's
    health is computed from (console/rollouts/health.py). Cash never waits on the gateway and is not counted."""

    __tablename__ = "pilot_payments"

    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id"), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String, primary_key=True)
    method: Mapped[str | None] = mapped_column(String)
    status: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime | None] = mapped_column()  # the payment.created event's time
    settled_at: Mapped[datetime | None] = mapped_column()  # its first final answer (succeeded, failed, canceled)
    # Events of gateway webhooks that contradicted the platform (a capture after a failure or void, another
    # amount), by event id: a redelivered event counts once.
    mismatch_events: Mapped[list[str]] = mapped_column(ARRAY(String), server_default=text("'{}'"))


class OutboxEvent(OutboxMixin, Base):
    __table_args__ = (OutboxMixin.unpublished_index(),)


class CertificationRun(Base):
    """A run of a versioned checklist for an integration in the sandbox (`crt_`)."""

    __tablename__ = "certification_runs"
    __table_args__ = (CheckConstraint("status IN ('running', 'completed')", name="status"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id"))
    partner_id: Mapped[str] = mapped_column(String)
    checklist: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    report: Mapped[str | None] = mapped_column(String)  # the signed report (compact JWS) once completed
    result: Mapped[str | None] = mapped_column(String)  # passed | failed
    certified_at: Mapped[datetime | None] = mapped_column()  # a passed run signed by a partner and an admin


class CertificationApproval(Base):
    """A sign-off of a completed run; one per principal (the primary key), so nobody signs twice."""

    __tablename__ = "certification_approvals"
    __table_args__ = (CheckConstraint("role IN ('partner', 'admin')", name="role"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("certification_runs.id"), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String, primary_key=True)
    role: Mapped[str] = mapped_column(String)
    approved_at: Mapped[datetime] = mapped_column()


class ReportKey(Base):
    """An ES256 key that signs certification reports; retired keys stay published so old reports verify."""

    __tablename__ = "report_keys"

    kid: Mapped[str] = mapped_column(String, primary_key=True)
    private_key: Mapped[bytes] = mapped_column(LargeBinary)  # PEM, Fernet-encrypted
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column()
    retired_at: Mapped[datetime | None] = mapped_column()


class CertificationEvidence(Base):
    """An event of a run, as the platform published it (never what the partner reports)."""

    __tablename__ = "certification_evidence"
    __table_args__ = (Index("ix_certification_evidence_run_id", "run_id", "time"),)

    event_id: Mapped[str] = mapped_column(String, primary_key=True)
    run_id: Mapped[str] = mapped_column(String)
    type: Mapped[str] = mapped_column(String)
    subject: Mapped[str] = mapped_column(String)
    time: Mapped[datetime] = mapped_column()
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)


class CertificationResource(Base):
    """A resource (order, bill, payment, refund…) a run's tagged events named: later events about it (a gateway
    webhook's, which carry no run) belong to the run too."""

    __tablename__ = "certification_resources"

    resource_id: Mapped[str] = mapped_column(String, primary_key=True)
    run_id: Mapped[str] = mapped_column(String)


class DeadLetter(DeadLetterMixin, Base):
    """An event the evidence projector gave up on after its bounded redeliveries, kept for an operator."""
