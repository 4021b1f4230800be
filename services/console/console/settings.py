from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from smartpos_shared.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore")
    service_name = "console"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_console"
    port: int = 8003
