from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from smartpos_shared.settings import Environment, ServiceSettings

# Documented development key-encryption key (README): never accepted in production.
DEV_KEY_ENCRYPTION_KEY = "c21hcnRwb3MtZGV2LW9ubHkta2V5LWVuY3J5cHRpb24="


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore")
    service_name = "device-auth"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_auth"
    port: int = 8002
    # Fernet key that encrypts signing keys (and the bootstrap admin secret) at rest.
    key_encryption_key: str = Field(
        default=DEV_KEY_ENCRYPTION_KEY,
        validation_alias=AliasChoices("AUTH_KEY_ENCRYPTION_KEY", "key_encryption_key"),
    )
    device_token_lifetime: int = 120
    client_token_lifetime: int = 600
    # Failed token requests allowed per client per window before 429.
    failure_limit: int = 10
    failure_window_seconds: int = 60
    # People's browser sign-in (users/): registered web clients (public: no secret) and their exact redirect URIs,
    # as JSON {"client_id": ["https://…/callback", …]}; token lifetimes; lockout after repeated failures.
    web_clients: dict[str, list[str]] = Field(default_factory=dict)
    user_token_lifetime: int = 300
    refresh_token_lifetime: int = 8 * 3600
    login_failure_limit: int = 5
    login_lockout_seconds: int = 900
    # A retired signing key stays in the JWKS this long (longer than any token it signed can live).
    retired_key_grace_seconds: int = 900

    # The store projector's durable JetStream consumer (shared by every device-auth process); a new deployment
    # with an empty database reads the stream from the start ("all") to learn every store. The rollout projector
    # (console `rollout.*` events) uses `<durable>-rollouts` with the same start and idle settings.
    store_projector_durable: str = "device-auth-stores"
    store_projector_start: Literal["all", "new"] = "all"
    store_projector_inactive_seconds: float | None = None

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.env is Environment.production and self.key_encryption_key == DEV_KEY_ENCRYPTION_KEY:
            problems.append("AUTH_KEY_ENCRYPTION_KEY must be set (a Fernet key, not the development one)")
        return problems
