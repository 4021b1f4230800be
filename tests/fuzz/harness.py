"""The OpenAPI fuzzer's harness: settings, one schemathesis schema per service, the hooks that aim generated
requests at seeded resources, and the call that signs webhook bodies, validates every response and records what
it finds. docs/fuzzing.md explains the whole.

Why schemathesis's pytest API (and not the `st` CLI as a subprocess): the services, the seed data and the tokens
are pytest fixtures already; the hooks need the seeded ids and a token provider that re-mints while a run goes on
(a device token lives 120 s); and a finding is then an ordinary pytest failure, one per operation and role,
inside `make test`. The CLI would need all of that passed through environment variables and a hooks module, and
its report parsed back.

The schemas are loaded when the test module is imported (pytest needs the operations to make one test item per
operation and role), from the same application objects the uvicorn processes serve; the `fuzz_platform` fixture
checks that each process's /openapi.json is exactly that document before anything runs.

A failed check does not stop the run of its operation (as the CLI's `--continue-on-failure`): Hypothesis would
stop at the first failure and shrink it, and one undocumented 400 would hide every 500 behind it. Instead each
distinct finding is recorded with the smallest request that produced it, and the test item fails at the end
with all of them (`conftest.py`, `pytest_runtest_call`).
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import schemathesis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import strategies as st
from jwt.utils import der_to_raw_signature
from schemathesis import Case, HookContext
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.parameters import ParameterLocation

from portal.pgw.signature import sign
from tests.fuzz.stack import Seed, Stack, Tokens
from tests.support.keys import ASSERTION_TYPE, DeviceKey
from tests.support.portal_fixtures import WEBHOOK_SECRET

WEBHOOK = ("POST", "/webhooks/pgw")
TOKEN_ENDPOINT = ("POST", "/oauth/token")
DEFAULT_PORTS = {"portal": 8000, "smarttab": 8001, "device-auth": 8002, "console": 8003}

# Checks run on every response. `not_a_server_error` and `response_schema_conformance` are the point; the others
# keep the documentation honest: every status code and content type a response has is documented, documented
# headers are present, and a request that violates the schema is rejected (negative mode).
# Not enabled: `positive_data_acceptance` (schema-valid data naming resources that do not exist is rightly 404,
# another tenant's store 403...), `ignored_auth`, `use_after_free`, `ensure_resource_availability`,
# `object_level_authorization` (they re-send requests with schemathesis's own auth or stateful links: auth and
# tenancy have their own tests, docs/security.md), `max_response_time` (a 2-core CI box is no latency oracle;
# `make bench` is), `missing_required_header`, `unsupported_method` (FastAPI answers 405 without a documented
# response: framework behaviour, not ours).
CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
)

# Operations not fuzzed, and why. None today. (smarttab's WebSocket `/ws/orders` is not in its OpenAPI at all,
# FastAPI does not document WebSocket routes; tests/integration/test_live_hub.py covers it.)
EXCLUDED: dict[tuple[str, str, str], str] = {}

# Fuzz dictionaries: generated strings and integers are sometimes replaced by one of these. In parameters
# schemathesis does it (keeping only the values the schema allows in positive cases, only those it forbids in
# negative ones); in bodies `_aimed` does, in positive cases (schemathesis binds dictionaries to body fields only
# one by one, by path).
HOSTILE_STRINGS = [
    "\u0000",  # NUL, three times: the one character PostgreSQL text cannot store
    "a\u0000b",
    "\u0000\u0000 ",
    "\u202e\u0627",  # right-to-left override, Arabic
    "\U0001f600",  # outside the BMP
    "\ufeff",  # byte order mark
    "'; DROP TABLE x; --",
    '"\\',
    "%00%s%n{0}",
    "../../etc/passwd",
    "line\nbreak",
    " ",
    "A" * 1000,
]
BOUNDARY_INTEGERS = [0, -1, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 10**12, 10**12 + 1, -(2**63) - 1]


@dataclass(frozen=True)
class FuzzSettings:
    """`make test` runs the short profile; `make fuzz` the thorough one. Each value can be overridden by env."""

    profile: str
    max_examples: int  # Hypothesis examples per operation and role in the fuzzing phase (`max-examples`)
    coverage: bool  # schemathesis's coverage phase: deterministic boundary and negative cases per operation
    seed: int  # fixed in the short profile; new for each thorough run unless given (printed either way)
    report_dir: Path

    @classmethod
    def from_env(cls, root: Path) -> FuzzSettings:
        profile = os.environ.get("SMARTPOS_FUZZ_PROFILE", "short")
        if profile not in ("short", "thorough"):
            raise ValueError(f"SMARTPOS_FUZZ_PROFILE must be short or thorough, not {profile!r}")
        thorough = profile == "thorough"
        seed = os.environ.get("SMARTPOS_FUZZ_SEED") or ("" if thorough else "20240611")
        return cls(
            profile=profile,
            max_examples=int(os.environ.get("SMARTPOS_FUZZ_MAX_EXAMPLES", "150" if thorough else "12")),
            coverage=os.environ.get("SMARTPOS_FUZZ_COVERAGE", "1" if thorough else "0") == "1",
            seed=int(seed) if seed else random.randrange(2**32),
            report_dir=Path(os.environ.get("SMARTPOS_FUZZ_REPORT_DIR", str(root / ".fuzz"))),
        )


def config(settings: FuzzSettings) -> schemathesis.Config:
    data: dict[str, Any] = {
        "dictionaries": {"hostile": {"values": HOSTILE_STRINGS}, "boundaries": {"values": BOUNDARY_INTEGERS}},
        "generation": {
            "mode": "all",
            "max-examples": settings.max_examples,
            "database": "none",
            "deterministic": False,  # the seed decides, locally and in CI (where Hypothesis would derandomize)
            # No made-up query parameters in negative cases: ignoring unknown query parameters is HTTP's norm and
            # not part of our contract (unknown *body* fields are refused, and negative cases test that).
            "allow-extra-parameters": False,
            "dictionaries": {
                "string": {"dictionary": "hostile", "probability": 0.25},
                "integer": {"dictionary": "boundaries", "probability": 0.15},
            },
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": settings.coverage},
            "fuzzing": {"enabled": True},
            # Not available per operation in the pytest API; the seeded ids below stand in for its links.
            "stateful": {"enabled": False},
        },
        "checks": {
            "enabled": False,
            **{name: {"enabled": True} for name in CHECKS},
            # A schema-violating body over the 64 KiB body limit is refused before it is read: 413 is a rejection.
            "negative_data_rejection": {
                "enabled": True,
                "expected-statuses": ["400", "401", "403", "404", "406", "413", "422", "428"],
            },
        },
        # A reproduction must show what was sent. The tokens are the test run's own, short-lived and valid only
        # on the test databases; `Target.reproduction` replaces them with a variable.
        "output": {"sanitization": {"enabled": False}},
        "request-timeout": 10,
    }
    data["seed"] = settings.seed
    return schemathesis.Config.from_dict(data)


def load_schema(service: str, document: dict[str, Any], settings: FuzzSettings) -> schemathesis.BaseSchema:
    # Fuzzed as served, except that references into `$defs` embedded in a schema are resolved first: schemathesis
    # cannot follow them and would send such bodies empty. `test_every_reference_resolves` reports the document.
    raw = with_embedded_defs_resolved(document)
    schema: schemathesis.BaseSchema = schemathesis.openapi.from_dict(raw, config=config(settings))
    for (excluded_service, method, path), _why in EXCLUDED.items():
        if excluded_service == service:
            schema = schema.exclude(method=method, path=path)
    schema.hook("map_case")(_http_headers)
    schema.hook("flatmap_case")(_aim)
    return schema


def _http_headers(context: HookContext, case: Case[Any]) -> Case[Any]:
    """Header values as HTTP can carry them (RFC 9110): Latin-1, no control characters, no leading whitespace.
    Other values make no HTTP request at all (the client library refuses to send them, or uvicorn answers its
    own plain-text 400 before any of our code runs), so the fuzz dictionary's strings are cleaned up there."""
    for name, value in list((case.headers or {}).items()):
        if isinstance(value, str):
            cleaned = "".join(c for c in value if (ord(c) >= 32 or c == "\t") and ord(c) != 127 and ord(c) < 256)
            if cleaned.lstrip() != value:
                case.headers[name] = cleaned.lstrip()
    return case


def dangling_references(document: dict[str, Any]) -> list[str]:
    """`$ref`s that do not resolve from the document's root (as JSON Schema resolves `#/...` without `$id`)."""
    found = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                target: Any = document
                for part in ref[2:].split("/"):
                    target = target.get(part) if isinstance(target, dict) else None
                if target is None:
                    found.append(f"{ref} at {where}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(document, "#")
    return found


def with_embedded_defs_resolved(document: dict[str, Any]) -> dict[str, Any]:
    """A copy in which `{"$ref": "#/$defs/X"}` inside a schema that carries its own `$defs` (Pydantic's
    `model_json_schema()` pasted into `openapi_extra`) is replaced by that definition."""

    def resolve(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
        if isinstance(node, dict):
            if "$defs" in node and isinstance(node["$defs"], dict):
                defs = {**defs, **node["$defs"]}
                node = {k: v for k, v in node.items() if k != "$defs"}
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs and depth < 20:
                return resolve(defs[ref[8:]], defs, depth + 1)
            return {k: resolve(v, defs, depth) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v, defs, depth) for v in node]
        return node

    resolved: dict[str, Any] = resolve(document, {})
    return resolved


# --- findings and counts ---------------------------------------------------------------------------------------


@dataclass
class Finding:
    service: str
    role: str
    operation: str
    checks: list[str]
    title: str
    status: int
    cause: str | None  # for a 5xx: what the service logged (exception and the line of ours it came from)
    curl: str  # the smallest request seen that produced it, against `make run`
    report: str  # schemathesis's own report of that request and its response
    occurrences: int = 1

    def describe(self) -> str:
        cause = f"\n    cause: {self.cause}" if self.cause else ""
        return (
            f"{self.service} as {self.role}: {self.operation} -> {self.status} [{', '.join(self.checks)}] "
            f"{self.title} ({self.occurrences}x){cause}\n    {self.curl}"
        )


@dataclass
class RunStats:
    service: str
    role: str
    requests: int = 0
    server_errors: int = 0  # 5xx responses
    schema_violations: int = 0  # responses that failed `response_schema_conformance`
    statuses: dict[str, int] = field(default_factory=dict)
    by_operation: dict[str, dict[str, int]] = field(default_factory=dict)  # how deep each operation got
    findings: dict[tuple[str, ...], Finding] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, operation: str, response: schemathesis.Response) -> None:
        status = response.status_code
        self.requests += 1
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if status >= 500:
            self.server_errors += 1
        outcome = f"{status} {_reason(response)}".strip()
        counts = self.by_operation.setdefault(operation, {})
        counts[outcome] = counts.get(outcome, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "role": self.role,
            "requests": self.requests,
            "server_errors": self.server_errors,
            "schema_violations": self.schema_violations,
            "statuses": dict(sorted(self.statuses.items())),
            "statuses_by_operation": {op: dict(sorted(c.items())) for op, c in self.by_operation.items()},
            "seconds": round(self.seconds, 1),
            "findings": [vars(finding) for finding in self.findings.values()],
        }


def _reason(response: schemathesis.Response) -> str:
    """The problem `type` (its last segment) or OAuth `error` of an error response: how far a request got."""
    if response.status_code < 400:
        return ""
    try:
        body = response.json()
    except Exception:
        return ""
    if not isinstance(body, dict):
        return ""
    reason = body.get("type") or body.get("error") or ""
    return str(reason).rsplit("/", 1)[-1][:60]


def _key(operation: str, failure: Failure, status: int, cause: str | None) -> tuple[str, ...]:
    checks = ",".join(type(failure).checks) or type(failure).__name__
    if cause and "not_a_server_error" in checks:
        return operation, checks, str(status), cause.split(" at ")[-1]  # one per place in our code
    return operation, checks, str(status), failure.title


# --- one run: a service as one role ----------------------------------------------------------------------------


@dataclass
class Target:
    service: str
    role: str
    stack: Stack
    tokens: Tokens
    stats: RunStats
    on_finding: Callable[[tuple[str, ...], Finding], None]
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def base_url(self) -> str:
        return self.stack.url(self.service)

    @property
    def signs_webhooks(self) -> bool:
        # The anonymous run leaves webhook bodies unsigned (whatever PGW-Signature was generated, or none: the
        # signature check itself gets fuzzed); the other runs sign every generated body with the portal's secret,
        # so that the body parser and the settlement code behind the check get fuzzed too.
        return self.role != "anonymous"

    def call_and_validate(self, case: Case[Any]) -> None:
        started = time.monotonic()
        headers = {} if self._removes_auth(case) or not self._needs_token(case) else self.tokens.headers(self.role)
        if self.signs_webhooks and (case.method.upper(), case.path) == WEBHOOK:
            headers["PGW-Signature"] = sign(WEBHOOK_SECRET, int(time.time()), self._raw_body(case))
        try:
            response = case.call(base_url=self.base_url, session=self.session, headers=headers)
            self.stats.count(case.operation.label, response)
            cause = self.stack.server_error_cause(self.service) if response.status_code >= 500 else None
            try:
                case.validate_response(
                    response,
                    headers=headers,
                    transport_kwargs={"base_url": self.base_url, "session": self.session, "headers": headers},
                )
            except FailureGroup as group:
                self._record(case, response, group, cause)
        finally:
            self.stats.seconds += time.monotonic() - started
        dead = self.stack.dead()
        assert not dead, f"a service process died: {dead}"

    @staticmethod
    def _needs_token(case: Case[Any]) -> bool:
        """Tokens go where the document asks for one; public operations (the token endpoint, the webhook, health,
        metrics, discovery) get none from any role: no client sends one there, and reproductions stay clean."""
        return bool(case.operation.definition.raw.get("security"))

    @staticmethod
    def _removes_auth(case: Case[Any]) -> bool:
        """A negative case whose headers are the invalid part (typically: the required Authorization header left
        out, or not a bearer token) is sent as generated, without the role's token, or the token would make it
        valid and `negative_data_rejection` would report the 200 as accepted invalid data."""
        meta = case.meta
        header = meta.components.get(ParameterLocation.HEADER) if meta is not None else None
        return header is not None and header.mode == schemathesis.GenerationMode.NEGATIVE

    def _record(self, case: Case[Any], response: schemathesis.Response, group: FailureGroup, cause: str | None) -> None:
        status = response.status_code
        curl = self._for_make_run(curl_line(response.request))
        failures = group.exceptions
        if status >= 500:  # the server error is the finding; its status and body being undocumented go with it
            failures = tuple(f for f in failures if "not_a_server_error" in type(f).checks) or failures
        for failure in failures:
            if "response_schema_conformance" in type(failure).checks:
                self.stats.schema_violations += 1
            key = _key(case.operation.label, failure, status, cause)
            previous = self.stats.findings.get(key)
            if previous is not None:
                previous.occurrences += 1
                if len(curl) >= len(previous.curl):
                    continue
            finding = Finding(
                service=self.service,
                role=self.role,
                operation=case.operation.label,
                checks=list(type(failure).checks) or [type(failure).__name__],
                title=failure.title,
                status=status,
                cause=cause,
                curl=curl,
                report=self._for_make_run(group.message),
                occurrences=previous.occurrences if previous else 1,
            )
            self.stats.findings[key] = finding
            self.on_finding(key, finding)

    def _raw_body(self, case: Case[Any]) -> bytes:
        """The exact bytes that will be sent, so that the signature covers them."""
        kwargs = case.as_transport_kwargs(base_url=self.base_url)
        fields = ("method", "url", "headers", "json", "data", "params")
        prepared = requests.Request(**{k: v for k, v in kwargs.items() if k in fields}).prepare()
        body = prepared.body
        if isinstance(body, str):
            return body.encode()
        return body if isinstance(body, bytes) else b""

    def _for_make_run(self, text: str) -> str:
        """Aimed at `make run` (the service's default port), the role's token replaced by a shell variable named
        after it (docs/fuzzing.md shows how to mint them), outside the single quotes so that it expands."""
        text = text.replace(self.base_url, f"http://127.0.0.1:{DEFAULT_PORTS[self.service]}")
        for role in ("admin", "merchant", "device", "partner"):
            token = self.tokens.cached(role)
            if token:
                variable = f"${role.upper()}_TOKEN"
                text = text.replace(f"'Authorization: Bearer {token}'", f'"Authorization: Bearer {variable}"')
                text = text.replace(token, f"'\"{variable}\"'")
        return text


def curl_line(request: requests.PreparedRequest) -> str:
    """The request exactly as sent, for bash: headers and body bytes quoted, invalid UTF-8 and NUL included
    (schemathesis's own curl line decodes the body lossily, so it cannot replay an undecodable body)."""
    skip = {"user-agent", "accept-encoding", "accept", "connection", "content-length", "x-schemathesis-testcaseid"}
    parts = ["curl", "-X", str(request.method)]
    for name, value in request.headers.items():
        if name.lower() not in skip:
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            parts += ["-H", _quoted(f"{name}: {text}".encode("latin-1", "replace"))]
    body = request.body
    data = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else b""
    prefix = ""
    if data and all(32 <= b < 127 for b in data):
        parts += ["--data-binary", _quoted(data)]
    elif data:  # bash strings cannot hold NUL: printf writes the bytes
        escaped = "".join(
            "%%" if b == 37 else "\\\\" if b == 92 else chr(b) if 32 <= b < 127 and b != 39 else f"\\x{b:02x}"
            for b in data
        )
        prefix = f"printf '{escaped}' | "
        parts += ["--data-binary", "@-"]
    parts.append(_quoted(str(request.url).encode()))
    return prefix + " ".join(parts)


def _quoted(data: bytes) -> str:
    """Bash quoting: '…' when the bytes are printable ASCII, else $'…' with escapes (no NUL: headers have none)."""
    if all(32 <= b < 127 for b in data):
        return "'" + data.decode().replace("'", "'\\''") + "'"
    escaped = "".join(
        chr(b) if 32 <= b < 127 and b not in (39, 92) else {39: "\\'", 92: "\\\\"}.get(b, f"\\x{b:02x}") for b in data
    )
    return f"$'{escaped}'"


# --- hooks: aim at seeded resources ----------------------------------------------------------------------------

SEEDED: dict[str, Seed] = {}  # "seed" -> the running platform's data, set by the `fuzz_platform` fixture


def _aim(context: HookContext, case: Case[Any]) -> st.SearchStrategy[Case[Any]]:
    """Positive (schema-valid) cases get, for each parameter or field that carries an id, either the generated
    value or the id of a real resource, so that requests reach past the 404s into the code behind them; list
    cursors, device keys and client assertions get well-formed shapes with one part gone wrong. Negative cases
    are sent as generated: replacing the very value that makes one invalid would make `negative_data_rejection`
    report a valid request as accepted invalid data."""
    meta = case.meta
    seeded = SEEDED.get("seed")
    if seeded is None or meta is None or meta.generation.mode != schemathesis.GenerationMode.POSITIVE:
        return st.just(case)
    return _aimed(case, seeded)


def _often(draw: st.DrawFn) -> bool:
    """True three times in four."""
    return draw(st.integers(0, 3)) != 0


def _choice(draw: st.DrawFn, original: Any, options: list[Any]) -> Any:
    """The generated value or one of the options: mostly an option (the generated one is where shrinking goes)."""
    return draw(st.sampled_from([original, *options])) if options else original


@st.composite
def _aimed(draw: st.DrawFn, case: Case[Any], seeded: Seed) -> Case[Any]:
    ids = seeded.ids
    for name in list(case.path_parameters or {}):
        if name in ids:
            case.path_parameters[name] = _choice(draw, case.path_parameters[name], ids[name])
    for name in list(case.query or {}):
        if name in ids and isinstance(case.query[name], str):
            case.query[name] = _choice(draw, case.query[name], ids[name])
    if "cursor" in {parameter.name for parameter in case.operation.query}:
        query = case.query if isinstance(case.query, dict) else {}
        cursor = draw(st.one_of(st.just(query.get("cursor")), _cursors(case.path, ids)))
        if cursor is not None:
            case.query = {**query, "cursor": cursor}
    if isinstance(case.body, dict | list):
        body = json.loads(json.dumps(case.body))  # a deep copy
        body = _hostile_leaves(draw, body, ids)
        _aim_fields(draw, body, seeded)
        operation = (case.method.upper(), case.path)
        if isinstance(body, dict):
            if operation == WEBHOOK:
                _aim_webhook(draw, body, seeded)
            # Three times in four: a generated JWKS is a bag of random members that fails at the first check.
            if isinstance(body.get("jwks"), dict) and _often(draw):  # POST /devices
                body["jwks"] = draw(_jwks())
            if isinstance(body.get("keys"), list) and _often(draw):  # PUT /devices/{id}/jwks: the body is the JWKS
                body = draw(_jwks())
            if operation == TOKEN_ENDPOINT and seeded.signers and _often(draw):
                _aim_assertion(draw, body, seeded)
        case.body = body
    return case


def _hostile_leaves(draw: st.DrawFn, value: Any, ids: dict[str, list[str]], key: str = "") -> Any:
    """Each string or integer in the body (ids aside) is, one time in four, a value from the fuzz dictionary."""
    if isinstance(value, dict):
        return {k: _hostile_leaves(draw, v, ids, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile_leaves(draw, v, ids, key) for v in value]
    if isinstance(value, float) and value.is_integer():
        # JSON Schema calls 148.0 an integer and schemathesis generates it; the API (strict integers) refuses it
        # with a 422, which would stop most positive cases short. Sent as 148.
        value = int(value)
    if key in ids or isinstance(value, bool) or not isinstance(value, str | int):
        return value
    if draw(st.integers(0, 3)) != 0:
        return value
    return draw(st.sampled_from(HOSTILE_STRINGS if isinstance(value, str) else BOUNDARY_INTEGERS))


def _aim_fields(draw: st.DrawFn, value: Any, seeded: Seed) -> None:
    """Id fields get real ids; `amount` fields amounts that bills really have outstanding."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in seeded.ids and isinstance(item, str):
                value[key] = _choice(draw, item, seeded.ids[key])
            elif key == "amount" and isinstance(item, int) and not isinstance(item, bool):
                value[key] = _choice(draw, item, seeded.amounts)
            else:
                _aim_fields(draw, item, seeded)
    elif isinstance(value, list):
        for item in value:
            _aim_fields(draw, item, seeded)


def _cursor(raw: str) -> str:
    """As `smartpos_shared.pagination.encode_cursor`: the last id of the page, base64url."""
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursors(path: str, ids: dict[str, list[str]]) -> st.SearchStrategy[str]:
    """Cursors of the list's own kind: real ids, and the id prefix followed by anything."""
    kind = f"{path.strip('/').split('/')[-1].removesuffix('s')}_id"  # /orders -> order_id
    if not ids.get(kind):
        return st.nothing()
    prefix = ids[kind][0].split("_")[0]
    return st.one_of(
        st.sampled_from([_cursor(i) for i in ids[kind]]),
        st.sampled_from(HOSTILE_STRINGS).map(lambda tail: _cursor(f"{prefix}_{tail}")),
        st.text(max_size=40).map(lambda tail: _cursor(f"{prefix}_{tail}")),
    )


def _aim_webhook(draw: st.DrawFn, body: dict[str, Any], seeded: Seed) -> None:
    data = body.get("data")
    if isinstance(data, dict) and seeded.pending:
        payment = _choice(draw, None, seeded.pending)
        if payment is not None:  # a pending payment's reference, with its amount or the generated one
            data["pgw_reference"] = payment["pgw_reference"]
            data["amount"] = _choice(draw, data.get("amount"), [payment["amount"]])


_REMOVED = object()


def _other_json(original: Any) -> st.SearchStrategy[Any]:
    """A JSON value of another shape than expected: the same value in a list, a scalar of any type, a hostile
    string, a list, an object, or nothing at all (the member removed)."""
    return st.one_of(
        st.just([original]),
        st.just(_REMOVED),
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(HOSTILE_STRINGS),
        st.lists(st.text(max_size=8), max_size=3),
        st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
    )


@st.composite
def _one_member_wrong(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    """A valid object, as it is or with one member (an existing one, or an extra) given a value of another shape."""
    result = dict(valid)
    member = draw(st.sampled_from([None, *valid, "x-extra"]))
    if member is None:
        return result
    value = draw(_other_json(valid.get(member)))
    if value is _REMOVED:
        result.pop(member, None)
    else:
        result[member] = value
    return result


def _jwks() -> st.SearchStrategy[dict[str, Any]]:
    """A device's JWKS: a real P-256 public key with one member of another shape."""
    return st.builds(lambda: DeviceKey().public_jwk).flatmap(_one_member_wrong).map(lambda jwk: {"keys": [jwk]})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jws(header: dict[str, Any], claims: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    """ES256 over any header and claims (PyJWT refuses to encode some of the odd ones the fuzzer wants)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = der_to_raw_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())), key.curve)
    return f"{signing_input}.{_b64(signature)}"


def _aim_assertion(draw: st.DrawFn, body: dict[str, Any], seeded: Seed) -> None:
    """A client assertion correctly signed by a registered device, with one claim or header member of another
    shape (or none: then it is a valid sign-in), so that the checks after the signature get fuzzed too."""
    device_id, key = draw(st.sampled_from(seeded.signers))
    now = int(time.time())
    claims = {"iss": device_id, "sub": device_id, "aud": seeded.issuer, "iat": now, "exp": now + 30, "jti": ""}
    claims["jti"] = draw(st.uuids()).hex
    header = {"alg": "ES256", "typ": "JWT", "kid": key.kid}
    if draw(st.booleans()):
        claims = draw(_one_member_wrong(claims))
    elif draw(st.booleans()):
        header = draw(_one_member_wrong(header))
    body.update(
        grant_type="client_credentials",
        client_assertion_type=ASSERTION_TYPE,
        client_assertion=_jws(header, claims, key.private_key),
    )
    body.pop("client_secret", None)
    if "client_id" in body:
        body["client_id"] = device_id
