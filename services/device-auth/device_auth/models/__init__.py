"""ORM models of the device-auth service. Every model is imported here so Alembic sees them all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from smartpos_shared.db import ServiceBase, service_metadata, utcnow
from smartpos_shared.events import OutboxMixin
from smartpos_shared.projector import DeadLetterMixin


class Base(ServiceBase):
    __abstract__ = True
    metadata = service_metadata()


class Device(Base):
    """A terminal in a store. It authenticates with `private_key_jwt`; `client_id == id`."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'revoked')", name="status"),
        Index("ix_devices_merchant_id_id", "merchant_id", "id"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String)
    store_id: Mapped[str] = mapped_column(String)
    name: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String, server_default="active")
    jwks: Mapped[dict[str, Any]] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))
    revoked_at: Mapped[datetime | None] = mapped_column()
    # The partner integration (console `int_…`) it runs; such a device gets tokens only where a rollout enables it.
    integration_id: Mapped[str | None] = mapped_column(String)


class IntegrationRollout(Base):
    """A console rollout as device-auth learns it from `rollout.*` events (newest version wins)."""

    __tablename__ = "integration_rollouts"
    __table_args__ = (
        CheckConstraint("status IN ('pilot', 'live', 'rolled_back')", name="status"),
        Index("ix_integration_rollouts_integration_id", "integration_id"),
    )

    rollout_id: Mapped[str] = mapped_column(String, primary_key=True)
    integration_id: Mapped[str] = mapped_column(String)
    merchant_id: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column()


class OAuthClient(Base):
    """A merchant API client, a partner's client (console: integrations and certification; no merchant) or the
    platform admin client (client_secret_basic / client_secret_post)."""

    __tablename__ = "oauth_clients"
    __table_args__ = (
        CheckConstraint("role IN ('merchant', 'admin', 'partner')", name="role"),
        CheckConstraint("status IN ('active', 'revoked')", name="status"),
        CheckConstraint("(role IN ('admin', 'partner')) = (merchant_id IS NULL)", name="merchant_unless_admin"),
        # At most one bootstrap admin client (what `smartpos admin bootstrap` returns).
        Index("uq_oauth_clients_bootstrap", "is_bootstrap", unique=True, postgresql_where=text("is_bootstrap")),
        Index("ix_oauth_clients_merchant_id_id", "merchant_id", "id"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str | None] = mapped_column(String)
    role: Mapped[str] = mapped_column(String)
    name: Mapped[str] = mapped_column(String)
    secret_hash: Mapped[str] = mapped_column(String)
    # Only the bootstrap admin keeps its secret, encrypted with the key-encryption key, so that the operator
    # command stays idempotent. Every other secret exists only as a hash.
    secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    is_bootstrap: Mapped[bool] = mapped_column(server_default=text("false"))
    status: Mapped[str] = mapped_column(String, server_default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))


class SigningKey(Base):
    """A key that signs access tokens. The newest active key signs; all published keys verify."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String, primary_key=True)
    algorithm: Mapped[str] = mapped_column(String)
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))
    # After rotation the old key still verifies until tokens it signed have expired, then leaves the JWKS.
    retired_at: Mapped[datetime | None] = mapped_column()


class KnownStore(Base):
    """Which merchant owns a store, learnt from the portal's `store.created` events: a device is registered only
    for a store of its merchant (the portal owns stores; device-auth never reads its tables)."""

    __tablename__ = "known_stores"

    store_id: Mapped[str] = mapped_column(String, primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String)
    learnt_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("now()"))


class DeadLetter(DeadLetterMixin, Base):
    """An event the store projector gave up on after its bounded redeliveries, kept for an operator."""


class User(Base):
    """A person who signs in through a browser (users/): merchant staff (with their merchant) or an operator."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('merchant', 'admin', 'partner')", name="role"),
        CheckConstraint("status IN ('active', 'disabled')", name="status"),
        CheckConstraint("(role = 'merchant') = (merchant_id IS NOT NULL)", name="merchant_staff"),
        CheckConstraint("(role = 'partner') = (partner_id IS NOT NULL)", name="partner_engineer"),
        CheckConstraint("email = lower(email)", name="email_lower"),
        CheckConstraint("failed_logins >= 0", name="failed_logins"),
        UniqueConstraint("email"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    email: Mapped[str] = mapped_column(String)
    password_hash: Mapped[str] = mapped_column(String)
    role: Mapped[str] = mapped_column(String)
    merchant_id: Mapped[str | None] = mapped_column(String)
    partner_id: Mapped[str | None] = mapped_column(String)  # partner engineers: the partner (its client id)
    status: Mapped[str] = mapped_column(String)
    failed_logins: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None] = mapped_column()
    last_sign_in_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()


class RefreshToken(Base):
    """A refresh token, by its SHA-256 only; rotated on each use, its family revoked if one is used twice."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family_id", "family_id"),)

    token_hash: Mapped[str] = mapped_column(String, primary_key=True)
    family_id: Mapped[str] = mapped_column(String)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    client_id: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class OutboxEvent(OutboxMixin, Base):
    __table_args__ = (OutboxMixin.unpublished_index(),)


__all__ = [
    "Base",
    "DeadLetter",
    "Device",
    "IntegrationRollout",
    "KnownStore",
    "OAuthClient",
    "OutboxEvent",
    "RefreshToken",
    "SigningKey",
    "User",
]
