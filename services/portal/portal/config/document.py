"""A merchant's configuration as one versioned document (`smartpos-config/v1`): payment methods enabled, offline
limits, tip options, receipt text, tax rates and the catalog (products with a `sku`: the key that is the same in
staging and production, where ids differ). Its JSON Schema is this module's `ConfigDocument`
(`GET /config/schema`, docs/config.schema.json).

Where it lives: offline limits are the merchant's columns, the catalog is `products` (active ones with a sku), the
rest is `merchant_configs.settings` (no row: the defaults). `load` reads it in canonical form (catalog sorted by
sku, tax rates by code), `checksum` is SHA-256 over its canonical JSON, `diff` lists what differs path by path,
`write` makes the database hold a document (the caller holds the merchant's row lock).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.ids import new_id
from smartpos_shared.schemas import RequestModel
from smartpos_shared.states import PaymentMethod

from ..schemas import Amount, Name, Price

SCHEMA = "smartpos-config/v1"
DEFAULT_SETTINGS: dict[str, Any] = {
    "payment_methods": [m.value for m in PaymentMethod],
    "tip_options": [],
    "receipt_text": "",
    "tax_rates": [],
}
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
TaxCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9_-]{1,16}$")]


class OfflineLimits(RequestModel):
    max_payment_amount: Amount | None = Field(description="largest card/qr payment taken offline (null: no limit)")
    max_outstanding_amount: Amount | None = Field(description="per device, unconfirmed offline card/qr (null: none)")
    max_age_hours: int = Field(strict=True, ge=1, le=720, description="oldest offline sale accepted at sync")


class TaxRate(RequestModel):
    code: TaxCode
    name: Name
    rate_basis_points: int = Field(strict=True, ge=0, le=10_000, description="1000 = 10 %")


class CatalogItem(RequestModel):
    sku: Sku
    name: Name
    unit_price: Price


class ConfigDocument(RequestModel):
    """A merchant's configuration (`smartpos-config/v1`)."""

    schema_: Literal["smartpos-config/v1"] = Field(alias="schema")
    payment_methods: list[PaymentMethod] = Field(min_length=1, max_length=4)
    offline: OfflineLimits
    tip_options: list[Annotated[int, Field(strict=True, ge=1, le=100)]] = Field(
        max_length=5, description="tip suggestions in percent"
    )
    receipt_text: Annotated[str, StringConstraints(max_length=500)]
    tax_rates: list[TaxRate] = Field(max_length=20)
    catalog: list[CatalogItem] = Field(max_length=5_000)

    @model_validator(mode="after")
    def _unique(self) -> ConfigDocument:
        for name, keys in (
            ("payment_methods", [m.value for m in self.payment_methods]),
            ("tip_options", [str(t) for t in self.tip_options]),
            ("tax_rates", [t.code for t in self.tax_rates]),
            ("catalog", [i.sku for i in self.catalog]),
        ):
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            if repeated:
                raise ValueError(f"{name}: repeated {', '.join(repeated)}")
        return self

    def canonical(self) -> dict[str, Any]:
        document = self.model_dump(mode="json", by_alias=True)
        document["tax_rates"] = sorted(document["tax_rates"], key=lambda t: t["code"])
        document["catalog"] = sorted(document["catalog"], key=lambda i: i["sku"])
        return document


def schema() -> dict[str, Any]:
    return ConfigDocument.model_json_schema(by_alias=True, mode="validation")


def checksum(document: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _flatten(document: dict[str, Any]) -> dict[str, Any]:
    """Path -> value; list items with a key (tax rates by code, catalog by sku) are addressed by it."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if key == "offline":
            flat.update({f"offline.{k}": v for k, v in value.items()})
        elif key == "tax_rates":
            flat.update({f"tax_rates[{t['code']}]": {k: v for k, v in t.items() if k != "code"} for t in value})
        elif key == "catalog":
            for item in value:
                flat.update({f"catalog[{item['sku']}].{k}": v for k, v in item.items() if k != "sku"})
        else:
            flat[key] = value
    return flat


def diff(live: dict[str, Any], proposed: dict[str, Any]) -> list[dict[str, Any]]:
    """What `proposed` changes in `live`: `{"path", "from", "to"}` each (a missing side is null), by path."""
    before, after = _flatten(live), _flatten(proposed)
    return [
        {"path": path, "from": before.get(path), "to": after.get(path)}
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]


MERCHANT = """
SELECT m.offline_max_payment_amount, m.offline_max_outstanding_amount, m.offline_max_age_hours, c.settings, c.version
FROM merchants m LEFT JOIN merchant_configs c ON c.merchant_id = m.id
WHERE m.id = :merchant_id"""
LOCK = "SELECT 1 FROM merchants WHERE id = :merchant_id FOR UPDATE"
CATALOG = """
SELECT sku, name, unit_price FROM products WHERE merchant_id = :merchant_id AND active AND sku IS NOT NULL
ORDER BY sku"""


async def load(session: AsyncSession, merchant_id: str) -> tuple[dict[str, Any], int] | None:
    """The merchant's live configuration (canonical) and its version; None for no such merchant."""
    row = (await session.execute(text(MERCHANT), {"merchant_id": merchant_id})).one_or_none()
    if row is None:
        return None
    settings = {**DEFAULT_SETTINGS, **(row.settings or {})}
    catalog = (await session.execute(text(CATALOG), {"merchant_id": merchant_id})).all()
    document = {
        "schema": SCHEMA,
        "payment_methods": settings["payment_methods"],
        "offline": {
            "max_payment_amount": row.offline_max_payment_amount,
            "max_outstanding_amount": row.offline_max_outstanding_amount,
            "max_age_hours": row.offline_max_age_hours,
        },
        "tip_options": settings["tip_options"],
        "receipt_text": settings["receipt_text"],
        "tax_rates": sorted(settings["tax_rates"], key=lambda t: t["code"]),
        "catalog": [{"sku": r.sku, "name": r.name, "unit_price": r.unit_price} for r in catalog],
    }
    return document, row.version or 0


async def lock(session: AsyncSession, merchant_id: str) -> bool:
    """The merchant's row lock: what every writer of its configuration holds (product inserts take the key-share
    lock its foreign key needs, which waits for it too)."""
    return (await session.execute(text(LOCK), {"merchant_id": merchant_id})).first() is not None


async def write(session: AsyncSession, merchant_id: str, document: dict[str, Any], now: datetime) -> int:
    """Make the database hold `document` (canonical) for the merchant; the new configuration version."""
    offline = document["offline"]
    await session.execute(
        text(
            "UPDATE merchants SET offline_max_payment_amount = :p, offline_max_outstanding_amount = :o,"
            " offline_max_age_hours = :h WHERE id = :merchant_id"
        ),
        {"p": offline["max_payment_amount"], "o": offline["max_outstanding_amount"], "h": offline["max_age_hours"],
         "merchant_id": merchant_id},
    )  # fmt: skip
    settings = {k: document[k] for k in DEFAULT_SETTINGS}
    version: int = (
        await session.execute(
            text(
                "INSERT INTO merchant_configs (merchant_id, version, settings, updated_at)"
                " VALUES (:merchant_id, 1, CAST(:settings AS jsonb), :now)"
                " ON CONFLICT (merchant_id) DO UPDATE SET version = merchant_configs.version + 1,"
                " settings = EXCLUDED.settings, updated_at = EXCLUDED.updated_at RETURNING version"
            ),
            {"merchant_id": merchant_id, "settings": json.dumps(settings), "now": now},
        )
    ).scalar_one()
    # Every portal process refreshes the payment methods it enforces (config/methods.py), at commit.
    await session.execute(text("SELECT pg_notify('smartpos_config', :merchant_id)"), {"merchant_id": merchant_id})
    skus = [item["sku"] for item in document["catalog"]]
    await session.execute(
        text(
            "UPDATE products SET active = false WHERE merchant_id = :merchant_id AND active AND sku IS NOT NULL"
            " AND NOT (sku = ANY(CAST(:skus AS text[])))"
        ),
        {"merchant_id": merchant_id, "skus": skus},
    )
    if document["catalog"]:
        await session.execute(
            text(
                "INSERT INTO products (id, merchant_id, name, sku, unit_price, currency, created_at, active)"
                " SELECT i.id, m.id, i.name, i.sku, i.unit_price, m.currency, :now, true"
                " FROM merchants m, unnest(CAST(:ids AS text[]), CAST(:names AS text[]), CAST(:skus AS text[]),"
                " CAST(:prices AS bigint[])) AS i(id, name, sku, unit_price) WHERE m.id = :merchant_id"
                " ON CONFLICT (merchant_id, sku) WHERE sku IS NOT NULL DO UPDATE"
                " SET name = EXCLUDED.name, unit_price = EXCLUDED.unit_price, active = true"
            ),
            {
                "merchant_id": merchant_id,
                "now": now,
                "ids": [new_id("prd") for _ in skus],
                "names": [item["name"] for item in document["catalog"]],
                "skus": skus,
                "prices": [item["unit_price"] for item in document["catalog"]],
            },
        )
    return version
