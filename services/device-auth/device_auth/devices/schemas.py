from __future__ import annotations

from datetime import datetime
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from smartpos_shared.schemas import RequestModel

from ..tokens.algorithms import ASSERTION_ALGORITHMS, EC_CURVES

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_KEPT_MEMBERS = frozenset({"kty", "kid", "use", "alg", "crv", "x", "y", "n", "e", "key_ops", "x5t", "x5t#S256"})
MAX_KEYS = 5
MIN_RSA_BITS = 2048


def validate_public_jwk(key: dict[str, Any]) -> dict[str, Any]:
    """A device key must be a public signing key of an allowed type and strength, with a kid."""
    for name in _KEPT_MEMBERS & key.keys():
        # Kept members are strings (key_ops a list of strings): anything else is refused before it is compared,
        # hashed or stored. Other members (WebCrypto's "ext": true) are dropped below.
        value = key[name]
        if name == "key_ops":
            if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
                raise ValueError("JWK member 'key_ops' must be a list of strings")
        elif not isinstance(value, str):
            raise ValueError(f"JWK member {name!r} must be a string")
    if _PRIVATE_MEMBERS & key.keys():
        raise ValueError("keys must be public keys (private key members are not accepted)")
    kid = key.get("kid")
    if not isinstance(kid, str) or not 1 <= len(kid) <= 128:
        raise ValueError("every key needs a kid (1-128 characters)")
    if key.get("use", "sig") != "sig":
        raise ValueError("keys must be signing keys (use=sig)")
    alg = key.get("alg")
    if alg is not None and alg not in ASSERTION_ALGORITHMS:
        raise ValueError(f"alg must be one of {', '.join(sorted(ASSERTION_ALGORITHMS))}")
    kty = key.get("kty")
    if kty == "EC":
        if key.get("crv") not in EC_CURVES.values():
            raise ValueError("EC keys must use P-256, P-384 or P-521")
    elif kty == "RSA":
        n = key.get("n")
        if not isinstance(n, str) or (len(n) * 6) < MIN_RSA_BITS - 8:
            raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    elif kty == "OKP":
        if key.get("crv") != "Ed25519":
            raise ValueError("OKP keys must be Ed25519")
    else:
        raise ValueError("kty must be EC, RSA or OKP")
    try:
        jwt.PyJWK(key)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise ValueError(f"key {kid!r} is not a valid JWK") from exc
    return {k: v for k, v in key.items() if k in _KEPT_MEMBERS}


class Jwks(RequestModel):
    model_config = ConfigDict(extra="ignore")

    keys: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_KEYS)

    @field_validator("keys")
    @classmethod
    def _public_signing_keys(cls, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cleaned = [validate_public_jwk(key) for key in keys]
        kids = [key["kid"] for key in cleaned]
        if len(set(kids)) != len(kids):
            raise ValueError("kids must be unique")
        return cleaned


class DeviceCreate(RequestModel):
    store_id: str = Field(pattern=r"^sto_[0-9A-HJKMNP-TV-Z]{26}$")
    merchant_id: str | None = Field(
        default=None, pattern=r"^mer_[0-9A-HJKMNP-TV-Z]{26}$", description="admin only: the device's merchant"
    )
    name: str = Field(min_length=1, max_length=200)
    jwks: Jwks
    integration_id: str | None = Field(
        default=None,
        pattern=r"^int_[0-9A-HJKMNP-TV-Z]{26}$",
        description="the partner integration (console) it runs: then it gets tokens only where a rollout enables it",
    )


class DevicePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    client_id: str
    merchant_id: str
    store_id: str
    name: str
    status: str
    jwks: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    revoked_at: datetime | None
    integration_id: str | None = None
