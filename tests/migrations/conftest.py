from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine

from tests.support.databases import TestDatabase, recreate, test_database


def scratch(service: str, name: str) -> TestDatabase:
    db = test_database(service, suffix=f"_{name}")
    asyncio.run(recreate(db))
    return db


def sync_engine(db: TestDatabase) -> Engine:
    return create_engine(db.url.replace("+asyncpg", "+psycopg"), future=True)


@pytest.fixture
def scratch_db(request: pytest.FixtureRequest) -> Iterator[TestDatabase]:
    """An empty database of the service named by the test's `service` parameter."""
    service = request.node.callspec.params["service"]
    yield scratch(service, request.node.name.split("[")[0][-30:].lower())
