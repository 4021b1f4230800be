"""Structured JSON logs (structlog) with the request id bound to every line of a request."""

from __future__ import annotations

import logging
import sys

import structlog

_SECRET_KEYS = frozenset(
    {"client_secret", "client_assertion", "password", "authorization", "access_token", "secret", "token"}
)


def _redact(_: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """Last line of defence: never write a secret-looking field, whatever a caller passed."""
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "[redacted]"
    return event


def configure_logging(service: str, level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries using stdlib logging (uvicorn, sqlalchemy) go to stderr at WARNING and above.
    logging.basicConfig(
        stream=sys.stderr, level=max(numeric, logging.WARNING), format="%(name)s %(levelname)s %(message)s"
    )
