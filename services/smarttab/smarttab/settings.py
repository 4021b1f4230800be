from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from smartpos_shared.settings import ServiceSettings


class SmarttabSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTTAB_", extra="ignore")
    service_name = "smarttab"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_smarttab"
    port: int = 8001
