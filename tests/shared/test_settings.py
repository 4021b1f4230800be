from __future__ import annotations

import pytest

from portal.settings import DEV_WEBHOOK_SECRET, PortalSettings
from smartpos_shared.settings import UnsafeProductionSettings
from smarttab.settings import SmarttabSettings

PRODUCTION_ENV = {
    "SMARTPOS_ENV": "production",
    "PORTAL_DATABASE_URL": "postgresql+asyncpg://portal@db.internal:5432/portal",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "NATS_URL": "nats://nats.internal:4222",
    "SMARTPOS_AUTH_ISSUER": "https://auth.example.com",
    "SMARTPOS_PGW_MODE": "http",
    "SMARTPOS_PGW_WEBHOOK_SECRET": "x" * 40,
    "SMARTPOS_PGW_URL": "https://pgw.example.com",
    "SMARTPOS_PGW_API_KEY": "pk_live_example",
}


def test_development_defaults_follow_the_configuration_table(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*PRODUCTION_ENV, "PORTAL_PORT", "SMARTTAB_PORT"):  # a developer may have moved `make run`
        monkeypatch.delenv(var, raising=False)
    settings = PortalSettings()
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_portal"
    assert settings.port == 8000
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.pgw_mode == "mock"
    assert SmarttabSettings().port == 8001


def test_service_prefix_and_shared_names_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMARTTAB_PORT", "9101")
    monkeypatch.setenv("SMARTTAB_DATABASE_URL", "postgresql+asyncpg://u@h:1/x")
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:4223")
    settings = SmarttabSettings()
    assert (settings.port, settings.database_url, settings.nats_url) == (
        9101,
        "postgresql+asyncpg://u@h:1/x",
        "nats://127.0.0.1:4223",
    )


def test_production_accepts_explicit_safe_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(key, value)
    assert PortalSettings().env == "production"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"SMARTPOS_PGW_MODE": "mock"}, "PGW_MODE=mock"),
        ({"SMARTPOS_PGW_WEBHOOK_SECRET": DEV_WEBHOOK_SECRET}, "WEBHOOK_SECRET"),
        ({"SMARTPOS_PGW_WEBHOOK_SECRET": "short"}, "WEBHOOK_SECRET"),
        ({"PORTAL_DATABASE_URL": None}, "database_url"),
        ({"REDIS_URL": None}, "redis_url"),
        ({"SMARTPOS_AUTH_ISSUER": None}, "auth_issuer"),
        ({"SMARTPOS_PGW_URL": None}, "PGW_URL"),
    ],
)
def test_production_refuses_unsafe_defaults(
    monkeypatch: pytest.MonkeyPatch, change: dict[str, str | None], complaint: str
) -> None:
    for key, value in {**PRODUCTION_ENV, **change}.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    with pytest.raises(UnsafeProductionSettings, match=complaint):
        PortalSettings()


def test_console_production_refuses_the_development_report_key_encryption_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from console.settings import ConsoleSettings

    for key, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CONSOLE_DATABASE_URL", "postgresql+asyncpg://console@db.internal:5432/console")
    with pytest.raises(UnsafeProductionSettings, match="CONSOLE_KEY_ENCRYPTION_KEY"):
        ConsoleSettings()
    monkeypatch.setenv("CONSOLE_KEY_ENCRYPTION_KEY", "bm90LXRoZS1kZXYta2V5LWZvci1jb25zb2xlLXJlcCE=")
    with pytest.raises(UnsafeProductionSettings, match="CONSOLE_TRUSTED_REPORT_JWKS"):
        ConsoleSettings()
    monkeypatch.setenv("CONSOLE_TRUSTED_REPORT_JWKS", '{"keys": []}')
    assert ConsoleSettings().env == "production"
