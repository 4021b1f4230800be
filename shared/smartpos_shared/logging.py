"""Structured JSON logs (structlog) with the request id bound to every line of a request.

No token, secret, key hash or assertion may reach a log, whoever writes the line: our own structlog calls, or a
library's stdlib logging (uvicorn prints the WebSocket handshake's path with its query string, where browsers put
`?access_token=`). `scrub` is applied to every structlog value and, by a filter on every stdlib handler, to every
stdlib record. The database engine additionally hides bound parameters from its error messages (db.py).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

import structlog

from .observability import request_id_var

_SECRET_KEYS = frozenset(
    {
        "client_secret",
        "client_assertion",
        "password",
        "authorization",
        "access_token",
        "refresh_token",
        "secret",
        "token",
        "secret_hash",
        "api_key",
    }
)

# name=value pairs (query strings, form bodies, "key=value" messages) whose value is a credential.
_SECRET_PARAM = re.compile(
    r"(?i)\b(access_token|refresh_token|id_token|token|client_secret|client_assertion|assertion|password|secret"
    r"|api_key|code|code_verifier)=([^&\s\"',;)]+)"
)
# Compact JWS/JWT (base64url header starting with '{"'), argon2 hashes, bearer credentials, PEM private keys.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_ARGON2 = re.compile(r"\$argon2(?:id|i|d)\$[^\s'\",)\]]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)
_HINTS = ("=", "eyJ", "$argon2", "earer", "asic", "PRIVATE KEY")


def scrub(text: str) -> str:
    """Remove credentials from free text (log messages, exception text)."""
    if not any(hint in text for hint in _HINTS):
        return text
    text = _SECRET_PARAM.sub(r"\1=[redacted]", text)
    text = _JWT.sub("[jwt redacted]", text)
    text = _ARGON2.sub("[hash redacted]", text)
    text = _BEARER.sub(r"\1 [redacted]", text)
    return _PEM.sub("[private key redacted]", text)


def _redact(_: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """Last line of defence: never write a secret-looking field or value, whatever a caller passed."""
    for key, value in list(event.items()):
        if key.lower() in _SECRET_KEYS:
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = scrub(value)
    return event


class RedactingFilter(logging.Filter):
    """Scrubs a stdlib record's rendered message (and exception text) before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_FILTER = RedactingFilter()
# Loggers that carry their own handlers (uvicorn configures these before the app starts).
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")


def install_redaction() -> None:
    """Put the redacting filter on every stdlib handler that exists now (root and library loggers)."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in _LIBRARY_LOGGERS)]
    loggers += [logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


def _add_request_id(_: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    request_id = request_id_var.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def configure_logging(service: str, level: str = "INFO", *, stream: TextIO | None = None) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries using stdlib logging (uvicorn, sqlalchemy) go to stderr at WARNING and above.
    logging.basicConfig(
        stream=sys.stderr, level=max(numeric, logging.WARNING), format="%(name)s %(levelname)s %(message)s"
    )
    install_redaction()
