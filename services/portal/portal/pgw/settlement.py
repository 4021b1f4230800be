"""The gateway's settlement report: what it actually settled (captured payments, paid-out refunds), per store.

A real gateway serves it (`HttpGateway`: `GET {SMARTPOS_PGW_URL}/settlements`). The mock gateway keeps its own
record of what it settled in Redis (`SettlementLedger`), written when it confirms a charge or a refund, and the
manual gateway reads the same ledger — which tests, standing in for the gateway, write.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

KEEP_SECONDS = 90 * 24 * 3600


@dataclass(frozen=True, slots=True)
class SettlementEntry:
    kind: str  # payment | refund
    pgw_reference: str
    amount: int
    settled_at: datetime

    def body(self) -> dict[str, Any]:
        return {**asdict(self), "settled_at": self.settled_at.astimezone(UTC).isoformat()}

    @classmethod
    def of(cls, data: dict[str, Any]) -> SettlementEntry:
        return cls(
            kind=str(data["kind"]),
            pgw_reference=str(data["pgw_reference"]),
            amount=int(data["amount"]),
            settled_at=datetime.fromisoformat(str(data["settled_at"])),
        )


class SettlementLedger:
    """Settled entries per store: a Redis sorted set per store, scored by the settlement time."""

    def __init__(self, redis: Redis[bytes]) -> None:
        self.redis = redis

    @staticmethod
    def key(store_id: str) -> str:
        return f"pgw:settlements:{store_id}"

    async def record(self, store_id: str, entry: SettlementEntry) -> None:
        key = self.key(store_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {json.dumps(entry.body(), sort_keys=True): entry.settled_at.timestamp()})
            pipe.expire(key, KEEP_SECONDS)
            await pipe.execute()

    async def entries(self, store_id: str, start: datetime, end: datetime) -> list[SettlementEntry]:
        """Entries settled in [start, end)."""
        raw = await self.redis.zrangebyscore(self.key(store_id), start.timestamp(), f"({end.timestamp()}")
        return [SettlementEntry.of(json.loads(item)) for item in raw]
