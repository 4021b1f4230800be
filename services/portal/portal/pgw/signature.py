"""`PGW-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` (several v1 allowed, so the
secret can be rotated)."""

from __future__ import annotations

import hashlib
import hmac
import re


class BadSignature(Exception):
    pass


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")  # unix seconds; anything longer is not a time (and overflows a float)
_V1 = re.compile(r"^[0-9a-f]{64}$")


def verify(header: str | None, body: bytes, secret: str, now: float, tolerance: int) -> None:
    """Raise BadSignature unless `header` carries a fresh timestamp and an HMAC of it and `body` under `secret`.

    Every part is checked for shape before use: a header is attacker-controlled text."""
    if not header:
        raise BadSignature("missing PGW-Signature header")
    timestamp: int | None = None
    candidates: list[bytes] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            if not _TIMESTAMP.match(value):
                raise BadSignature("malformed timestamp")
            timestamp = int(value)
        elif name == "v1" and _V1.match(value):
            candidates.append(value.encode("ascii"))
    if timestamp is None or not candidates:
        raise BadSignature("malformed PGW-Signature header")
    if abs(now - timestamp) > tolerance:
        raise BadSignature("timestamp outside the tolerance window")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest().encode()
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise BadSignature("signature does not match")
