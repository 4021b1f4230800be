"""/readyz names the dependency that is down, and recovers when it is back. Each test starts private
servers on free ports and stops them by PID; the machine's shared servers are never touched."""

from __future__ import annotations

import httpx

from tests.support.processes import PrivateNats, PrivateRedis, ServiceProcess, free_port, wait_for


def _readyz(url: str) -> httpx.Response:
    return httpx.get(f"{url}/readyz", timeout=5)


def test_readyz_503_names_redis_while_it_is_down_and_200_when_it_is_back(service_env: dict[str, str]) -> None:
    redis = PrivateRedis().start()
    service = ServiceProcess("portal", {**service_env, "REDIS_URL": redis.url}).start()
    try:
        wait_for(lambda: _readyz(service.url).status_code == 200, 10, what="ready with redis up")

        redis.stop()
        down = wait_for(lambda: (r := _readyz(service.url)).status_code == 503 and r, 10, what="503 with redis down")
        body = down.json()
        assert down.headers["content-type"] == "application/problem+json"
        assert body["down"] == ["redis"]
        assert "redis" in body["detail"]
        assert body["checks"]["database"] == "ok" and body["checks"]["nats"] == "ok"
        assert httpx.get(f"{service.url}/healthz").status_code == 200  # alive, just not ready

        redis.start()
        wait_for(lambda: _readyz(service.url).status_code == 200, 10, what="ready again with redis back")
    finally:
        service.stop()
        redis.stop()


def test_a_service_starts_without_nats_and_becomes_ready_when_nats_comes_up(
    service_env: dict[str, str],
) -> None:
    nats = PrivateNats()  # chosen port, not started yet
    service = ServiceProcess("smarttab", {**service_env, "NATS_URL": nats.url}).start()
    try:
        response = wait_for(lambda: (r := _readyz(service.url)).status_code == 503 and r, 10, what="503 without nats")
        assert response.json()["down"] == ["nats"]

        nats.start()
        wait_for(lambda: _readyz(service.url).status_code == 200, 15, what="ready once nats is up")

        nats.stop()
        response = wait_for(
            lambda: (r := _readyz(service.url)).status_code == 503 and r, 15, what="503 after nats stops"
        )
        assert response.json()["down"] == ["nats"]
    finally:
        service.stop()
        nats.stop()


def test_readyz_names_the_database_when_postgres_does_not_answer(service_env: dict[str, str]) -> None:
    closed = free_port()
    env = {
        **service_env,
        "AUTH_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/smartpos_auth",
    }
    service = ServiceProcess("device-auth", env).start()
    try:
        response = wait_for(lambda: (r := _readyz(service.url)).status_code == 503 and r, 10, what="503 without db")
        assert response.json()["down"] == ["database"]
    finally:
        service.stop()


def test_requests_needing_the_database_get_503_not_500_while_it_is_down(service_env: dict[str, str]) -> None:
    closed = free_port()
    env = {**service_env, "AUTH_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/smartpos_auth"}
    service = ServiceProcess("device-auth", env).start()
    try:
        response = httpx.post(
            f"{service.url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "cli_01M7ZA17RNWPP5DXHVJ28PZ197",
                "client_secret": "x",
            },
            timeout=15,
        )
        assert response.status_code == 503, response.text
    finally:
        service.stop()
