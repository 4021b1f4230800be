"""Token benchmark: private_key_jwt issuance per second from device-auth, and what verifying an access token
costs a resource server per request.

    BENCH_SECONDS=30 BENCH_CONCURRENCY=32 scripts/uv run python bench/tokens.py

Runs device-auth as production does (one uvicorn process, uvloop, httptools, no access log) against the
development databases (`make migrate` first). The ceiling in the same run is `/healthz` on the same server.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench.common import CpuMeter, Server, percentiles, save, table
from device_auth.clients.bootstrap import bootstrap
from smartpos_shared.auth import TokenVerifier
from smartpos_shared.ids import new_id
from tests.support.auth_fixtures import announce_store, post_device
from tests.support.keys import DeviceKey, assertion_form

SECONDS = float(os.environ.get("BENCH_SECONDS", "30"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))


async def _loop(
    client: aiohttp.ClientSession, until: float, request: Any, latencies: list[float], statuses: dict[int, int]
) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        status = await request(client)
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1


async def _run(url: str, make_request: Any) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as client:
        with CpuMeter() as meter:
            until = time.monotonic() + SECONDS
            await asyncio.gather(
                *(_loop(client, until, make_request(i), latencies, statuses) for i in range(CONCURRENCY))
            )
    ok = statuses.get(200, 0)
    return {
        "requests_per_s": round(len(latencies) / meter.wall_seconds, 1),
        "ok_per_s": round(ok / meter.wall_seconds, 1),
        "errors": sum(n for code, n in statuses.items() if code != 200),
        "statuses": {str(k): v for k, v in statuses.items()},
        "loadgen_cpu_share": meter.share(),
        **percentiles(latencies),
    }


async def main() -> None:
    server = Server("device-auth")
    server.env["SMARTPOS_AUTH_ISSUER"] = server.url  # the issuer identifier is what assertions name as aud
    server.start()
    try:
        env_issuer = server.url
        os.environ["SMARTPOS_AUTH_ISSUER"] = env_issuer
        admin = await bootstrap()
        async with httpx.AsyncClient(base_url=server.url) as http:
            admin_token = (
                await http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(admin["client_id"], admin["client_secret"]),
                )
            ).json()["access_token"]
            merchant_id, store_id = new_id("mer"), new_id("sto")
            await announce_store(merchant_id, store_id)  # as the portal does when a store is created
            devices = []
            for i in range(CONCURRENCY):
                key = DeviceKey()
                body = {
                    "merchant_id": merchant_id,
                    "store_id": store_id,
                    "name": f"bench {i}",
                    "jwks": {"keys": [key.public_jwk]},
                }
                created = await post_device(http, admin_token, body, wait=30)
                devices.append((created.json()["id"], key))
            sample_token = (
                await http.post("/oauth/token", data=assertion_form(devices[0][1].assertion(devices[0][0], server.url)))
            ).json()["access_token"]
            jwks = (await http.get("/.well-known/jwks.json")).json()

        def token_request(i: int) -> Any:
            device_id, key = devices[i]

            async def request(client: aiohttp.ClientSession) -> int:
                assertion = key.assertion(device_id, server.url, claims={"jti": uuid.uuid4().hex})
                async with client.post("/oauth/token", data=assertion_form(assertion)) as response:
                    await response.read()
                    return response.status

            return request

        def health_request(_: int) -> Any:
            async def request(client: aiohttp.ClientSession) -> int:
                async with client.get("/healthz") as response:
                    await response.read()
                    return response.status

            return request

        tokens = await _run(server.url, token_request)
        ceiling = await _run(server.url, health_request)
    finally:
        server.stop()

    async def load_jwks() -> dict[str, Any]:
        keys: dict[str, Any] = jwks
        return keys

    verifier = TokenVerifier(env_issuer, load_jwks)
    await verifier.verify(sample_token)  # warm the key cache
    rounds = 5000
    started = time.perf_counter()
    for _ in range(rounds):
        await verifier.verify(sample_token)
    verify_us = (time.perf_counter() - started) / rounds * 1e6

    figures = {
        "seconds": SECONDS,
        "concurrency": CONCURRENCY,
        "token_issuance": tokens,
        "healthz_ceiling": ceiling,
        "issuance_vs_ceiling": round(tokens["ok_per_s"] / ceiling["requests_per_s"], 3)
        if ceiling["requests_per_s"]
        else None,
        "verify_access_token_us": round(verify_us, 1),
    }
    save("tokens", figures)
    table(
        f"tokens ({SECONDS:.0f} s, {CONCURRENCY} concurrent clients, 1 device-auth process)",
        [
            ("private_key_jwt tokens/s", tokens["ok_per_s"]),
            ("  latency p50 / p95 / p99 ms", f"{tokens['p50_ms']} / {tokens['p95_ms']} / {tokens['p99_ms']}"),
            ("  errors", tokens["errors"]),
            ("  load generator CPU share", tokens["loadgen_cpu_share"]),
            ("ceiling: GET /healthz req/s (same server)", ceiling["requests_per_s"]),
            ("issuance / ceiling", figures["issuance_vs_ceiling"]),
            (
                "access-token verification per request",
                f"{figures['verify_access_token_us']} µs (in process, cached JWKS)",
            ),
        ],
    )


if __name__ == "__main__":
    asyncio.run(main())
