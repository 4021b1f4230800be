"""The console's time for what it records (rollout windows, audit entries): `app.state.business_clock` when a test
moves it, else the app's clock. Access tokens are always checked against `app.state.clock` (real time)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request


def now_of(request: Request) -> datetime:
    clock = getattr(request.app.state, "business_clock", None) or request.app.state.clock
    return datetime.fromtimestamp(float(clock()), UTC)
