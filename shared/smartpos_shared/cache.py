"""Versioned cache-aside in Redis (`order:{id}`, `bill:{id}`).

An entry holds the resource JSON with its version and its tenant (so a cached read gets the same tenant check as
a database read). After a committed change the entry is deleted and the new version is remembered under
`<key>:v`; a reader that loaded an older version from PostgreSQL before that commit can then never write it
back (the compare and the write are one Lua script). Redis being down makes reads slower, never failing:
errors are swallowed and, for a second after one, Redis is not even tried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("smartpos.cache")

ENTRY_TTL = 300
VERSION_TTL = 600
BACKOFF_SECONDS = 1.0

_PUT = """
local newer = redis.call('GET', KEYS[2])
if newer and tonumber(newer) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

_INVALIDATE = """
local known = redis.call('GET', KEYS[2])
if (not known) or tonumber(known) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
end
redis.call('DEL', KEYS[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class CachedResource:
    """A resource's representation (JSON bytes, as the API answers it) with its version and its tenant."""

    version: int
    merchant_id: str
    store_id: str | None
    body: bytes


_DATA = b',"data":'


def encode_entry(resource: CachedResource) -> bytes:
    """`{"version":…,"merchant_id":…,"store_id":…,"data":<body>}`: JSON, with the body copied in as it is."""
    head = orjson.dumps(
        {"version": resource.version, "merchant_id": resource.merchant_id, "store_id": resource.store_id}
    )
    return head[:-1] + _DATA + resource.body + b"}"


def decode_entry(raw: bytes) -> CachedResource | None:
    try:
        entry = orjson.loads(raw)
        start = raw.index(_DATA) + len(_DATA)  # the body is the last member: served without re-serializing
        return CachedResource(int(entry["version"]), entry["merchant_id"], entry.get("store_id"), raw[start:-1])
    except (ValueError, KeyError, TypeError):
        return None


class VersionedCache:
    def __init__(self, redis: Redis[bytes], ttl: int = ENTRY_TTL) -> None:
        self.redis = redis
        self.ttl = ttl
        self._put = redis.register_script(_PUT)
        self._invalidate = redis.register_script(_INVALIDATE)
        self._skip_until = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._skip_until

    def _failed(self, operation: str, exc: Exception) -> None:
        self._skip_until = time.monotonic() + BACKOFF_SECONDS
        log.warning("cache_unavailable", operation=operation, error=type(exc).__name__)

    async def get(self, kind: str, resource_id: str) -> CachedResource | None:
        if not self._available():
            return None
        try:
            raw = await self.redis.get(f"{kind}:{resource_id}")
        except RedisError as exc:
            self._failed("get", exc)
            return None
        return decode_entry(raw) if raw is not None else None

    async def put(self, kind: str, resource_id: str, resource: CachedResource) -> bool:
        if not self._available():
            return False
        value = encode_entry(resource)
        key = f"{kind}:{resource_id}"
        try:
            return bool(await self._put(keys=[key, f"{key}:v"], args=[resource.version, value, self.ttl]))
        except RedisError as exc:
            self._failed("put", exc)
            return False

    async def invalidate(self, kind: str, resource_id: str, version: int) -> None:
        key = f"{kind}:{resource_id}"
        try:
            await self._invalidate(keys=[key, f"{key}:v"], args=[version, VERSION_TTL])
        except RedisError as exc:
            self._failed("invalidate", exc)
