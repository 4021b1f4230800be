"""Every service, run as users run it (uvicorn in its own process), answers the operations endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.processes import ServiceProcess, wait_for

SERVICES = ("portal", "smarttab", "device-auth", "console")


@pytest.fixture(scope="module")
def running(service_env: dict[str, str]) -> Iterator[dict[str, ServiceProcess]]:
    procs = {name: ServiceProcess(name, service_env) for name in SERVICES}
    try:
        for proc in procs.values():
            proc.start()
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.mark.parametrize("service", SERVICES)
def test_healthz_answers_while_the_process_runs(running: dict[str, ServiceProcess], service: str) -> None:
    response = httpx.get(f"{running[service].url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("service", SERVICES)
def test_readyz_is_200_when_database_redis_and_nats_answer(running: dict[str, ServiceProcess], service: str) -> None:
    response = wait_for(
        lambda: (r := httpx.get(f"{running[service].url}/readyz")).status_code == 200 and r,
        10,
        what=f"{service} ready",
    )
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok", "nats": "ok"}}


@pytest.mark.parametrize("service", SERVICES)
def test_metrics_count_requests_and_latency_per_route_template(
    running: dict[str, ServiceProcess], service: str
) -> None:
    url = running[service].url
    before = _sample(httpx.get(f"{url}/metrics").text, service, "/healthz")
    for _ in range(3):
        httpx.get(f"{url}/healthz")
    text = httpx.get(f"{url}/metrics").text
    assert _sample(text, service, "/healthz") == before + 3
    assert (
        f'http_request_duration_seconds_bucket{{le="0.005",method="GET",route="/healthz",service="{service}"}}' in text
    )
    # Unknown paths share one label instead of one series per path.
    httpx.get(f"{url}/no/such/path/123")
    assert 'route="unmatched"' in httpx.get(f"{url}/metrics").text
    assert 'route="/no/such/path/123"' not in httpx.get(f"{url}/metrics").text


def _sample(text: str, service: str, route: str) -> float:
    prefix = f'http_requests_total{{method="GET",route="{route}",service="{service}",status="200"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def test_errors_are_problem_json_and_carry_the_request_id(running: dict[str, ServiceProcess]) -> None:
    response = httpx.get(f"{running['portal'].url}/no-such-thing", headers={"X-Request-ID": "req-abc-123"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys() and body["status"] == 404
    assert response.headers["x-request-id"] == "req-abc-123"


def test_openapi_documents_the_operations_endpoints(running: dict[str, ServiceProcess]) -> None:
    schema = httpx.get(f"{running['portal'].url}/openapi.json").json()
    assert {"/healthz", "/readyz", "/metrics"} <= schema["paths"].keys()
    assert "Problem" in schema["components"]["schemas"]
