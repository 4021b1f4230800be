"""A client assertion parsed once, and the device keys that may verify it, cached per device version.

Parsing: the compact JWS is split and decoded one time (strict base64url, strict JSON: `NaN` and `Infinity` are
not JSON and are refused here); the checks that follow read the same dicts. Keys: turning a JWK into a usable
public key validates the curve point and costs more than the signature check itself, so parsed keys are kept
per (device, device version, kid, alg). Registering new keys or revoking bumps the device's version, so a cached
key never outlives the registration it came from.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

from .algorithms import EC_CURVES, RSA_ALGORITHMS

CACHE_SIZE = 10_000


def _b64url(segment: str) -> bytes:
    try:
        return base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


@dataclass(frozen=True, slots=True)
class ParsedJws:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @classmethod
    def parse(cls, token: str) -> ParsedJws:
        parts = token.split(".")
        if len(parts) != 3 or not all(parts[:2]):
            raise ValueError("not a compact JWS")
        try:
            header, claims = orjson.loads(_b64url(parts[0])), orjson.loads(_b64url(parts[1]))
        except orjson.JSONDecodeError:
            raise ValueError("not JSON") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("header and claims must be JSON objects")
        return cls(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), _b64url(parts[2]))


@dataclass(frozen=True, slots=True)
class TokenDevice:
    """What the token endpoint needs of a device (repository: one query, no transaction)."""

    id: str
    merchant_id: str
    store_id: str
    status: str
    version: int
    jwks: str  # JSON text, parsed only when its keys are not cached yet
    integration_enabled: bool = True  # its integration (if any) is rolled out to its merchant


def key_fits_algorithm(key: dict[str, Any], alg: str) -> bool:
    if key.get("alg") not in (None, alg):
        return False
    kty = key.get("kty")
    if alg in EC_CURVES:
        return kty == "EC" and key.get("crv") == EC_CURVES[alg]
    if alg in RSA_ALGORITHMS:
        return kty == "RSA"
    if alg == "EdDSA":
        return kty == "OKP" and key.get("crv") == "Ed25519"
    return False


class DeviceKeys:
    """Parsed public keys of registered devices (bounded; refilled from the next requests when full)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, str | None, str], tuple[list[jwt.PyJWK], bool]] = {}

    def _candidates(self, device: TokenDevice, alg: str, kid: str | None) -> tuple[list[jwt.PyJWK], bool]:
        """The device's keys that may verify `alg` under `kid`, and whether any key had that kid at all."""
        cache_key = (device.id, device.version, kid, alg)
        found = self._cache.get(cache_key)
        if found is not None:
            return found
        registered = orjson.loads(device.jwks).get("keys", [])
        named = [key for key in registered if kid is None or key.get("kid") == kid]
        usable = []
        for raw in named:
            if not key_fits_algorithm(raw, alg):
                continue
            try:
                usable.append(jwt.PyJWK(raw, algorithm=alg))
            except (jwt.PyJWTError, ValueError, TypeError):
                continue
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[cache_key] = (usable, bool(named))
        return usable, bool(named)

    def verify(self, device: TokenDevice, jws: ParsedJws, alg: str, kid: str | None) -> str | None:
        """None if one of the device's own keys verifies the signature; else why not (for the audit log)."""
        keys, kid_known = self._candidates(device, alg, kid)
        for key in keys:
            try:
                if key.Algorithm.verify(jws.signing_input, key.key, jws.signature):
                    return None
            except (ValueError, TypeError, jwt.PyJWTError):
                continue
        return "bad_signature" if kid_known else "unknown_kid"
