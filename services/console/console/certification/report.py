"""Signed certification reports: a compact JWS (ES256) over the run's results, signed with the console's report
key; the keys are published at `GET /.well-known/jwks.json` (retired ones too, so a report still verifies after a
rotation). `smartpos certification verify FILE` checks a report offline against a saved JWKS.
"""

from __future__ import annotations

import html
import json
import uuid
from datetime import datetime
from typing import Any

import jwt
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

REPORT_TYPE = "smartpos-certification-report+jwt"
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('console:report_keys', 0))"
ACTIVE = "SELECT kid, private_key FROM report_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1"
INSERT = """
INSERT INTO report_keys (kid, private_key, public_jwk, created_at)
VALUES (:kid, :private_key, CAST(:jwk AS jsonb), :now)"""


class ReportKeys:
    def __init__(self, key_encryption_key: str) -> None:
        self.fernet = Fernet(key_encryption_key.encode())

    async def _create(self, session: AsyncSession, now: datetime) -> tuple[str, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        kid = f"report-{uuid.uuid4().hex[:12]}"
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": "ES256"})
        await session.execute(
            text(INSERT), {"kid": kid, "private_key": self.fernet.encrypt(pem), "jwk": json.dumps(jwk), "now": now}
        )
        return kid, key

    async def active(self, session: AsyncSession, now: datetime) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The signing key, created on first use (one at a time, under an advisory lock)."""
        await session.execute(text(LOCK))
        row = (await session.execute(text(ACTIVE))).one_or_none()
        if row is None:
            return await self._create(session, now)
        key = serialization.load_pem_private_key(self.fernet.decrypt(bytes(row.private_key)), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return row.kid, key

    async def rotate(self, session: AsyncSession, now: datetime) -> str:
        await session.execute(text(LOCK))
        await session.execute(text("UPDATE report_keys SET retired_at = :now WHERE retired_at IS NULL"), {"now": now})
        kid, _ = await self._create(session, now)
        return kid

    @staticmethod
    async def jwks(session: AsyncSession) -> dict[str, Any]:
        rows = await session.execute(text("SELECT public_jwk FROM report_keys ORDER BY created_at"))
        keys = [r.public_jwk if isinstance(r.public_jwk, dict) else json.loads(r.public_jwk) for r in rows]
        return {"keys": keys}


def sign(payload: dict[str, Any], kid: str, key: ec.EllipticCurvePrivateKey) -> str:
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": kid, "typ": REPORT_TYPE})


def verify(report: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """The report's content if its signature verifies with a key of `jwks`; raises jwt.PyJWTError otherwise."""
    header = jwt.get_unverified_header(report)
    if header.get("alg") != "ES256" or header.get("typ") != REPORT_TYPE:
        raise jwt.InvalidTokenError("not a SmartPOS certification report")
    for candidate in jwks.get("keys", []):
        if candidate.get("kid") == header.get("kid"):
            key = jwt.PyJWK(candidate, algorithm="ES256")
            content: dict[str, Any] = jwt.decode(report, key, algorithms=["ES256"], options={"verify_aud": False})
            return content
    raise jwt.InvalidTokenError(f"no published key {header.get('kid')!r}")


def unverified_content(report: str) -> dict[str, Any]:
    """The content of a report this console signed and stored (re-signed with the sign-offs at certification)."""
    content: dict[str, Any] = jwt.decode(report, options={"verify_signature": False})
    return content


def kid_of(report: str) -> str:
    return str(jwt.get_unverified_header(report).get("kid", ""))


def render_html(content: dict[str, Any]) -> str:
    """The report for people: every case, its verdict, the evidence (event ids) and what the judge saw."""
    e = html.escape
    rows = "\n".join(
        f'<tr><th scope="row">{e(c["title"])}</th><td class="{e(c["status"])}">{e(c["status"])}</td>'
        f"<td>{e(', '.join(c['evidence'])) or '—'}</td><td>{e(c['detail'])}</td></tr>"
        for c in content["cases"]
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Certification report {e(content["run_id"])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}
td,th{{padding:.3rem .6rem;text-align:left;vertical-align:top}}
.passed{{color:#05620a}}.failed{{color:#a00}}table{{border-collapse:collapse}}tr{{border-bottom:1px solid #ddd}}</style>
</head><body><main>
<h1>Certification report</h1>
<p>Run <code>{e(content["run_id"])}</code> of integration <code>{e(content["integration_id"])}</code>
(partner <code>{e(content["partner_id"])}</code>), checklist <code>{e(content["checklist"])}</code>:
<strong>{e(content["result"])}</strong>. Started {e(content["started_at"])}, completed {e(content["completed_at"])}.</p>
<table><caption>Cases, judged from the platform's own events</caption>
<thead><tr><th scope="col">Case</th><th scope="col">Verdict</th><th scope="col">Evidence (event ids)</th>
<th scope="col">Detail</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<p>Signed (ES256, key <code>{e(content.get("kid", ""))}</code>);
verify with <code>smartpos certification verify</code>.</p>
</main></body></html>
"""
