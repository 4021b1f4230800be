"""`smartpos closeout verify`: the Z report hash chains, checked from the portal database or from a saved file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from portal.closeout.zreport import Verification, verify_chain, verify_store
from portal.settings import PortalSettings


def _line(store_id: str, result: Verification) -> str:
    if result.intact:
        return f"{store_id}: intact ({result.reports} reports)"
    return f"{store_id}: BROKEN at report {result.broken_at}: {result.problem}"


def verify_file(path: Path) -> tuple[list[str], bool]:
    data: Any = json.loads(path.read_text())
    reports: list[dict[str, Any]] = data["items"] if isinstance(data, dict) else data
    by_store: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        by_store.setdefault(report["store_id"], []).append(report)
    lines, intact = [], True
    for store_id, chain in sorted(by_store.items()):
        result = verify_chain(sorted(chain, key=lambda r: r["number"]))
        intact &= result.intact
        lines.append(_line(store_id, result))
    return lines, intact


async def verify_database(store_id: str | None) -> tuple[list[str], bool]:
    from sqlalchemy import text

    from smartpos_shared.db import create_engine, make_sessionmaker

    engine = create_engine(PortalSettings().database_url, pool_size=1, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as session:
            stores = (
                await session.execute(
                    text(
                        "SELECT DISTINCT merchant_id, store_id FROM z_reports"
                        " WHERE CAST(:store AS text) IS NULL OR store_id = :store ORDER BY store_id"
                    ),
                    {"store": store_id},
                )
            ).all()
            lines, intact = [], True
            for merchant_id, store in stores:
                result = await verify_store(session, merchant_id, store)
                intact &= result.intact
                lines.append(_line(store, result))
            if not stores:
                lines.append("no Z reports" + (f" for {store_id}" if store_id else ""))
            return lines, intact
    finally:
        await engine.dispose()
