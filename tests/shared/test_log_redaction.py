"""No token, secret, key hash or assertion reaches a log line, whoever writes it."""

from __future__ import annotations

import io
import logging

import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from smartpos_shared.db import create_engine
from smartpos_shared.logging import RedactingFilter, configure_logging, scrub
from tests.support.databases import TestDatabase

JWT = (
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0"
    ".eyJzdWIiOiJkZXZfMDEiLCJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJlLXBhcnQtb2YtdGhlLXRva2Vu"
)
ARGON2 = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g"


@pytest.mark.parametrize(
    "line",
    [
        f'127.0.0.1:5000 - "WebSocket /ws/orders?access_token={JWT}&since=4" [accepted]',
        f'127.0.0.1:5000 - "GET /x?token={JWT} HTTP/1.1" 200',
        "client_secret=s3cr3t-value-123&grant_type=client_credentials",
        f"client_assertion={JWT}",
        f"(asyncpg.exceptions.Foo) insert failed [parameters: ('cli_1', '{ARGON2}')]",
        f"Authorization: Bearer {JWT}",
        "Authorization: Basic Y2xpXzE6c2VjcmV0LXNlY3JldA==",
        "key -----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY----- end",
    ],
)
def test_scrub_removes_credentials_and_keeps_the_rest(line: str) -> None:
    cleaned = scrub(line)
    for secret in (JWT, ARGON2, "s3cr3t-value-123", "Y2xpXzE6c2VjcmV0LXNlY3JldA==", "MIGHAgEAMBMGByqGSM49"):
        assert secret not in cleaned
    assert cleaned != line


def test_scrub_leaves_ordinary_lines_alone() -> None:
    for line in ('127.0.0.1:5000 - "GET /orders?status=open&limit=5 HTTP/1.1" 200', "status_code=200 route=/x"):
        assert scrub(line) == line


def test_stdlib_records_with_arguments_are_scrubbed_before_any_handler_writes_them() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning('%s - "WebSocket %s" [accepted]', "127.0.0.1:1", f"/ws/orders?access_token={JWT}")
        try:
            raise ValueError(f"bad token {JWT}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert JWT not in stream.getvalue() and "access_token=[redacted]" in stream.getvalue()


def test_uvicorn_handlers_get_the_filter_when_a_service_configures_logging() -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    handler = logging.StreamHandler(io.StringIO())
    uvicorn_error.addHandler(handler)
    try:
        configure_logging("test", "WARNING")
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    finally:
        uvicorn_error.removeHandler(handler)
        structlog.reset_defaults()


async def test_database_errors_never_carry_bound_parameters(databases: dict[str, TestDatabase]) -> None:
    engine = create_engine(databases["portal"].url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as failed:
                await conn.execute(text("SELECT CAST(:secret AS integer)"), {"secret": ARGON2})
    finally:
        await engine.dispose()
    assert ARGON2 not in str(failed.value)
    assert "hidden due to hide_parameters" in str(failed.value)
