"""Device keys and client assertions as a terminal makes them."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class DeviceKey:
    kid: str = field(default_factory=lambda: "k-" + uuid.uuid4().hex[:8])
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        return jwk

    def assertion(
        self,
        device_id: str,
        audience: Any,
        *,
        now: float | None = None,
        lifetime: int = 30,
        claims: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        headers: dict[str, Any] | None = None,
    ) -> str:
        issued = int(now if now is not None else time.time())
        payload: dict[str, Any] = {
            "iss": device_id,
            "sub": device_id,
            "aud": audience,
            "iat": issued,
            "exp": issued + lifetime,
            "jti": uuid.uuid4().hex,
        }
        payload.update(claims or {})
        for name in drop:
            payload.pop(name, None)
        return jwt.encode(payload, self.private_key, algorithm="ES256", headers={"kid": self.kid, **(headers or {})})


def assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }
