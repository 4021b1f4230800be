"""The portal's outbox relay as its own process type: `python -m portal.relay`.

Run it (one or more, they partition by merchant) with `PORTAL_RELAY_IN_PROCESS=false` on the API processes, so
events leave at the same pace however busy the API is.
"""

from __future__ import annotations

import asyncio

from smartpos_shared.events import run_relay_process

from .models import OutboxEvent
from .settings import PortalSettings

if __name__ == "__main__":
    asyncio.run(run_relay_process(PortalSettings(), OutboxEvent, "portal-relay"))
