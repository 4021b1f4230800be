from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from smartpos_shared.settings import Environment, ServiceSettings

# Documented development value (README): never accepted in production.
DEV_KEY_ENCRYPTION_KEY = "Y29uc29sZS1kZXYtb25seS1rZXktZW5jcnlwdGlvbi0="


class ConsoleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore")
    service_name = "console"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_console"
    port: int = 8003
    # Fernet key that encrypts the certification report signing keys at rest.
    key_encryption_key: str = Field(
        default=DEV_KEY_ENCRYPTION_KEY,
        validation_alias=AliasChoices("CONSOLE_KEY_ENCRYPTION_KEY", "key_encryption_key"),
    )
    # Production: the sandbox console's report keys (a JWKS document, inline JSON or a file path). A rollout is
    # accepted only with a certification report that verifies with them.
    trusted_report_jwks: str = ""
    # The evidence projector's durable JetStream consumer (sandbox only; shared by every console process): the
    # platform's events, kept for the certification runs they belong to.
    evidence_projector_durable: str = "console-evidence"
    evidence_projector_start: Literal["all", "new"] = "all"
    evidence_projector_inactive_seconds: float | None = None
    # The console's pages (console/web/): the address browsers use (its `/console/callback` is registered at
    # device-auth for `web_client_id`), how long a signed-in session lasts, and the portal they review changes at.
    public_url: str = "http://127.0.0.1:8003"
    web_client_id: str = "smartpos-console"
    web_session_seconds: int = Field(default=8 * 3600, gt=0)
    portal_url: str = "http://127.0.0.1:8000"
    # The audit trail of other services' reviewed changes (console/audit/projection.py).
    audit_projector_durable: str = "console-audit"
    audit_projector_start: Literal["all", "new"] = "all"
    audit_projector_inactive_seconds: float | None = None
    # Pilot health (console/rollouts/health.py): the payment events of pilot merchants, and the thresholds a pilot
    # must meet to be promoted.
    pilot_projector_durable: str = "console-pilot-health"
    pilot_projector_start: Literal["all", "new"] = "all"
    pilot_projector_inactive_seconds: float | None = None
    pilot_min_payments: int = Field(default=20, ge=0)
    pilot_max_failure_rate: float = Field(default=0.2, ge=0, le=1)
    pilot_max_error_rate: float = Field(default=0.01, ge=0, le=1)
    pilot_max_webhook_mismatches: int = Field(default=0, ge=0)
    pilot_max_latency_p95_ms: float = Field(default=3000, gt=0)
    pilot_stuck_seconds: int = Field(default=300, gt=0)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.env is Environment.production and self.key_encryption_key == DEV_KEY_ENCRYPTION_KEY:
            problems.append("CONSOLE_KEY_ENCRYPTION_KEY must be set (not the development key)")
        if self.env is Environment.production and not self.trusted_report_jwks:
            problems.append("CONSOLE_TRUSTED_REPORT_JWKS must be set (the sandbox console's report keys)")
        return problems

    def trusted_jwks(self) -> dict[str, Any]:
        """The trusted report keys as a JWKS document (from inline JSON or a file)."""
        raw = self.trusted_report_jwks.strip()
        if not raw:
            return {"keys": []}
        document: dict[str, Any] = json.loads(raw if raw.startswith("{") else Path(raw).read_text())
        return document
