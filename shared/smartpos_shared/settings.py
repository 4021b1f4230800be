"""Settings base: one pydantic-settings class per service, with an env prefix of its own.

Variables every service reads (`SMARTPOS_ENV`, `REDIS_URL`, `NATS_URL`, `SMARTPOS_AUTH_ISSUER`) have fixed names
(API.md); the service's own (`PORTAL_DATABASE_URL`, `PORTAL_PORT`, …) take the service prefix.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    staging = "staging"
    production = "production"


class UnsafeProductionSettings(RuntimeError):
    """Raised when a production process would start with a development default."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="SMARTPOS_")

    service_name: ClassVar[str] = "service"
    # Fields production must receive explicitly from the environment, never from a default.
    required_in_production: ClassVar[tuple[str, ...]] = (
        "database_url",
        "redis_url",
        "nats_url",
        "auth_issuer",
    )

    env: Environment = Field(default=Environment.development, validation_alias=AliasChoices("SMARTPOS_ENV", "env"))
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos"
    port: int = 8000
    host: str = "127.0.0.1"
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL", "redis_url"))
    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias=AliasChoices("NATS_URL", "nats_url"))
    auth_issuer: str = Field(
        default="http://127.0.0.1:8002",
        validation_alias=AliasChoices("SMARTPOS_AUTH_ISSUER", "auth_issuer"),
    )
    # Where resource servers fetch the issuer's keys; defaults to <issuer>/.well-known/jwks.json.
    auth_jwks_url: str = Field(default="", validation_alias=AliasChoices("SMARTPOS_AUTH_JWKS_URL", "auth_jwks_url"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("SMARTPOS_LOG_LEVEL", "log_level"))
    access_log: bool = Field(default=True, validation_alias=AliasChoices("SMARTPOS_ACCESS_LOG", "access_log"))
    db_pool_size: int = 10
    db_max_overflow: int = 10

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> ServiceSettings:
        if self.env is Environment.production:
            problems = self.production_problems()
            if problems:
                raise UnsafeProductionSettings(
                    f"{self.service_name}: refusing to start in production: " + "; ".join(problems)
                )
        return self

    def production_problems(self) -> list[str]:
        """What would be unsafe in production; subclasses add their own rules."""
        return [
            f"{name} must be set explicitly"
            for name in self.required_in_production
            if name not in self.model_fields_set
        ]
