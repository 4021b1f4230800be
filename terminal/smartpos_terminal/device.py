"""The terminal's identity: its signing key (EC P-256, `private_key_jwt`), its registration with device-auth, and
the device file a sandbox keeps it in."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class DeviceKey:
    """A terminal's signing key and the client assertions it signs (RFC 7523: iss = sub = the device id, aud =
    the issuer, short-lived, a unique jti, ES256)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, kid: str) -> None:
        self.private_key = private_key
        self.kid = kid

    @classmethod
    def generate(cls, kid: str | None = None) -> DeviceKey:
        return cls(ec.generate_private_key(ec.SECP256R1()), kid or f"till-{uuid.uuid4().hex[:8]}")

    @classmethod
    def from_pem(cls, pem: str, kid: str) -> DeviceKey:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("a device key is an EC P-256 private key")
        return cls(key, kid)

    def pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        return jwk

    def assertion(self, device_id: str, audience: str, lifetime: int = 30) -> str:
        now = int(time.time())
        claims = {
            "iss": device_id,
            "sub": device_id,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm="ES256", headers={"kid": self.kid})


@dataclass(frozen=True)
class DeviceFile:
    """What a terminal needs to sign in, in one JSON file (mode 0600): written by `smartpos seed` and
    `smartpos terminal register`, read by `smartpos terminal …`."""

    device_id: str
    merchant_id: str
    store_id: str
    kid: str
    private_key_pem: str
    products: tuple[dict[str, Any], ...] = ()

    @property
    def key(self) -> DeviceKey:
        return DeviceKey.from_pem(self.private_key_pem, self.kid)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "device_id": self.device_id,
            "merchant_id": self.merchant_id,
            "store_id": self.store_id,
            "kid": self.kid,
            "private_key_pem": self.private_key_pem,
            "products": list(self.products),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a private key: the owner reads it only
        with os.fdopen(fd, "w") as out:
            json.dump(body, out, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: Path) -> DeviceFile:
        data = json.loads(path.read_text())
        return cls(
            data["device_id"],
            data["merchant_id"],
            data["store_id"],
            data["kid"],
            data["private_key_pem"],
            tuple(data.get("products", ())),
        )


def register(
    client: httpx.Client,
    auth_url: str,
    operator_token: str,
    merchant_id: str,
    store_id: str,
    name: str,
    key: DeviceKey,
    *,
    wait: float = 10.0,
) -> dict[str, Any]:
    """POST /devices with the key's public JWK (an admin's or the merchant's token). A store created a moment ago
    may not have reached device-auth yet (it learns stores from events): 404 is retried for up to `wait` s."""
    body = {"merchant_id": merchant_id, "store_id": store_id, "name": name, "jwks": {"keys": [key.public_jwk]}}
    deadline = time.monotonic() + wait
    while True:
        response = client.post(
            f"{auth_url.rstrip('/')}/devices", json=body, headers={"Authorization": f"Bearer {operator_token}"}
        )
        if response.status_code != 404 or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    if response.status_code != 201:
        raise RuntimeError(f"registering the device: {response.status_code} {response.text[:300]}")
    device: dict[str, Any] = response.json()
    return device
