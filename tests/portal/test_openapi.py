"""/openapi.json documents every endpoint of API.md, its body and its errors."""

from __future__ import annotations

import httpx

API_MD = {
    ("post", "/merchants"), ("post", "/stores"), ("get", "/stores/{store_id}"), ("get", "/stores"),
    ("post", "/products"), ("get", "/products/{product_id}"), ("get", "/products"),
    ("post", "/orders"), ("get", "/orders/{order_id}"), ("get", "/orders"), ("patch", "/orders/{order_id}"),
    ("post", "/bills"), ("get", "/bills/{bill_id}"), ("post", "/payments"), ("get", "/payments/{payment_id}"),
    ("post", "/webhooks/pgw"), ("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"),
}  # fmt: skip


async def test_every_contract_endpoint_is_documented_with_its_errors(portal: httpx.AsyncClient) -> None:
    schema = (await portal.get("/openapi.json")).json()
    documented = {(method, path) for path, ops in schema["paths"].items() for method in ops}
    assert documented >= API_MD
    for method, path in API_MD - {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}:
        operation = schema["paths"][path][method]
        codes = set(operation["responses"])
        if path != "/webhooks/pgw":
            assert {"401", "422"} <= codes, (method, path, codes)
            assert operation.get("security"), (method, path)
        if method == "post":
            assert "requestBody" in operation, (method, path)
        if "{" in path or path in ("/bills", "/payments"):
            assert "404" in codes, (method, path, codes)
    for path in ("/orders", "/bills", "/payments"):
        params = {p["name"] for p in schema["paths"][path]["post"].get("parameters", [])}
        assert "Idempotency-Key" in params, path
    assert "Problem" in schema["components"]["schemas"]
    assert "PGW-Signature" in {p["name"] for p in schema["paths"]["/webhooks/pgw"]["post"]["parameters"]}
