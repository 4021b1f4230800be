"""The payment methods each merchant's configuration enables, as every portal process knows them: loaded at start,
refreshed when a configuration is written (`config.write` NOTIFYs `smartpos_config` with the merchant id, delivered
at commit). A payment path check is a dictionary lookup, no statement. Merchants without a configuration row
enable every method."""

from __future__ import annotations

import json
from typing import Any

CHANNEL = "smartpos_config"
ALL = "SELECT merchant_id, settings -> 'payment_methods' AS methods FROM merchant_configs"
OF_MERCHANT = "SELECT settings -> 'payment_methods' FROM merchant_configs WHERE merchant_id = $1"


def _methods(raw: Any) -> frozenset[str] | None:
    if raw is None:
        return None
    value = json.loads(raw) if isinstance(raw, str) else raw
    return frozenset(str(m) for m in value) if isinstance(value, list) else None


class PaymentMethods:
    def __init__(self) -> None:
        self.enabled: dict[str, frozenset[str]] = {}

    def allows(self, merchant_id: str, method: str) -> bool:
        enabled = self.enabled.get(merchant_id)
        return enabled is None or method in enabled

    async def load(self, conn: Any) -> None:
        loaded = {}
        for row in await conn.fetch(ALL):
            methods = _methods(row["methods"])
            if methods is not None:
                loaded[row["merchant_id"]] = methods
        self.enabled = loaded

    async def refresh(self, conn: Any, merchant_id: str) -> None:
        methods = _methods(await conn.fetchval(OF_MERCHANT, merchant_id))
        if methods is None:
            self.enabled.pop(merchant_id, None)
        else:
            self.enabled[merchant_id] = methods
