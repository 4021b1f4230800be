from __future__ import annotations

from pydantic_settings import SettingsConfigDict
from smartpos_shared.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")
    service_name = "device-auth"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_auth"
    port: int = 8002
