"""What the suite keeps from the caller's shell: connection URLs and its own knobs, never a service setting."""

from __future__ import annotations

import os

import pytest

from tests.support.environment import isolate_from_caller


def test_the_suites_own_knobs_survive_and_service_settings_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make fuzz` sets SMARTPOS_FUZZ_PROFILE=thorough: it ran the short profile while the isolation dropped it."""
    kept = {
        "SMARTPOS_FUZZ_PROFILE": "thorough",
        "SMARTPOS_FUZZ_SEED": "7",
        "SMARTPOS_TEST_DB_PREFIX": "x",
        "NATS_URL": "nats://127.0.0.1:4999",
    }
    dropped = {"PORTAL_PORT": "9", "SMARTPOS_ENV": "production", "SMARTPOS_PGW_MODE": "http", "BENCH_SECONDS": "1"}
    for name, value in {**kept, **dropped}.items():
        monkeypatch.setenv(name, value)
    removed = isolate_from_caller()
    assert set(dropped) <= set(removed) and not set(kept) & set(removed)
    assert {name: os.environ.get(name) for name in kept} == kept
    assert not any(name in os.environ for name in dropped)
