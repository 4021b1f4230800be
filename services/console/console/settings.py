from __future__ import annotations

from typing import Literal

from pydantic_settings import SettingsConfigDict

from smartpos_shared.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore")
    service_name = "console"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_console"
    port: int = 8003
    # The evidence projector's durable JetStream consumer (sandbox only; shared by every console process): the
    # platform's events, kept for the certification runs they belong to.
    evidence_projector_durable: str = "console-evidence"
    evidence_projector_start: Literal["all", "new"] = "all"
    evidence_projector_inactive_seconds: float | None = None
