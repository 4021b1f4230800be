from __future__ import annotations

from datetime import time
from enum import StrEnum

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from smartpos_shared.settings import Environment, ServiceSettings

# Documented development value (README, API.md): never accepted in production.
DEV_WEBHOOK_SECRET = "whsec_dev_smartpos_local_only"


class PgwMode(StrEnum):
    mock = "mock"
    manual = "manual"
    http = "http"


class PortalSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PORTAL_", extra="ignore")
    service_name = "portal"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_portal"
    port: int = 8000
    pgw_mode: PgwMode = Field(default=PgwMode.mock, validation_alias=AliasChoices("SMARTPOS_PGW_MODE", "pgw_mode"))
    pgw_webhook_secret: str = Field(
        default=DEV_WEBHOOK_SECRET,
        validation_alias=AliasChoices("SMARTPOS_PGW_WEBHOOK_SECRET", "pgw_webhook_secret"),
    )

    # mock: where the mock gateway posts its webhooks (this service); http: the real gateway.
    pgw_webhook_url: str = Field(
        default="", validation_alias=AliasChoices("SMARTPOS_PGW_WEBHOOK_URL", "pgw_webhook_url")
    )
    pgw_mock_delay_seconds: float = Field(
        default=0.05, validation_alias=AliasChoices("SMARTPOS_PGW_MOCK_DELAY", "pgw_mock_delay_seconds")
    )
    # Mock gateway test values (docs/sandbox.md): how late the "late webhook" comes, how long a "timeout" hangs.
    pgw_mock_late_seconds: float = Field(
        default=30.0, validation_alias=AliasChoices("SMARTPOS_PGW_MOCK_LATE_SECONDS", "pgw_mock_late_seconds")
    )
    pgw_mock_timeout_seconds: float = Field(
        default=5.0, validation_alias=AliasChoices("SMARTPOS_PGW_MOCK_TIMEOUT_SECONDS", "pgw_mock_timeout_seconds")
    )
    pgw_url: str = Field(default="", validation_alias=AliasChoices("SMARTPOS_PGW_URL", "pgw_url"))
    pgw_api_key: str = Field(default="", validation_alias=AliasChoices("SMARTPOS_PGW_API_KEY", "pgw_api_key"))
    webhook_tolerance_seconds: int = 300
    # A business day is closed (by hand or by the overnight run) only this long after it ended: a payment whose
    # transaction began before the turn of the day has committed by then.
    closeout_grace_seconds: int = 120
    # Run the outbox relay inside each API process (simple; `make run`), or not (`python -m portal.relay`).
    relay_in_process: bool = True
    # Configuration change requests (portal/config/): approvals needed (never the author's), and the stores' local
    # time a change `scheduled_at: "off_peak"` is applied at.
    change_approvals: int = Field(default=2, ge=1, le=10)
    config_off_peak_at: time = time(3, 0)

    def webhook_url(self) -> str:
        return self.pgw_webhook_url or f"http://127.0.0.1:{self.port}/webhooks/pgw"

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.env is Environment.production:
            if self.pgw_mode is PgwMode.mock:
                problems.append("SMARTPOS_PGW_MODE=mock is not allowed")
            if self.pgw_webhook_secret == DEV_WEBHOOK_SECRET or len(self.pgw_webhook_secret) < 32:
                problems.append("SMARTPOS_PGW_WEBHOOK_SECRET must be set to a secret of at least 32 characters")
            if self.pgw_mode is PgwMode.http and not (self.pgw_url and self.pgw_api_key):
                problems.append("SMARTPOS_PGW_URL and SMARTPOS_PGW_API_KEY are required with SMARTPOS_PGW_MODE=http")
        return problems
