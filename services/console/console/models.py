"""ORM models of the console service (its own database, `smartpos_console`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from smartpos_shared.db import ServiceBase, service_metadata


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
