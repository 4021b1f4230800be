"""Schemathesis over every operation of every service's /openapi.json, once per role (anonymous, admin, merchant,
device), against the services as real uvicorn processes: no response may be a 5xx, and every response must be
documented (status code, content type, headers) and match its documented schema. docs/fuzzing.md says more.

One test item per service, role and operation: `test_portal_as_merchant[POST /orders][merchant]`. `make test` runs the
short profile (few examples, fixed seed); `make fuzz` the thorough one (SMARTPOS_FUZZ_PROFILE=thorough).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import schemathesis

from console.main import app as console_app
from device_auth.main import app as device_auth_app
from portal.main import app as portal_app
from smarttab.main import app as smarttab_app
from tests.fuzz.conftest import SETTINGS, Platform
from tests.fuzz.harness import dangling_references, load_schema
from tests.fuzz.stack import ROLES

# The documents the processes serve (the `fuzz_platform` fixture checks that they do, byte for byte).
DOCUMENTS = {
    "portal": portal_app.openapi(),
    "smarttab": smarttab_app.openapi(),
    "device-auth": device_auth_app.openapi(),
    "console": console_app.openapi(),
}
SCHEMAS = {service: load_schema(service, document, SETTINGS) for service, document in DOCUMENTS.items()}


@pytest.mark.parametrize("service", list(DOCUMENTS))
def test_every_reference_resolves(service: str) -> None:
    """A `$ref` that leads nowhere leaves clients (and the fuzzer) without the shape it stands for."""
    assert dangling_references(DOCUMENTS[service]) == []


def _fuzz_test(service: str, role: str) -> Callable[..., None]:
    def test(case: schemathesis.Case[Any], role: str, fuzz_platform: Platform) -> None:
        fuzz_platform.target(service, role).call_and_validate(case)

    test.__name__ = test.__qualname__ = f"test_{service.replace('-', '_')}_as_{role}"
    # Each role draws its own inputs (schemathesis would give every role the same ones for an operation).
    test = hypothesis.seed(SETTINGS.seed + ROLES.index(role))(test)
    if role == "anonymous":
        # Without a token nearly everything stops at the 401; a few examples show what runs before it.
        test = hypothesis.settings(max_examples=max(2, SETTINGS.max_examples // 4))(test)
    # The parameter also keeps the operation in the test id under pytest >= 9.2, which builds ids of
    # unparametrized items from the function name alone.
    test = pytest.mark.parametrize("role", [role])(test)
    parametrized: Callable[..., None] = SCHEMAS[service].parametrize()(test)
    return parametrized


# test_portal_as_anonymous, test_portal_as_admin, ..., test_device_auth_as_device
_tests: dict[str, Any] = {}
for _service in SCHEMAS:
    for _role in ROLES:
        _test = _fuzz_test(_service, _role)
        _tests[_test.__name__] = _test
globals().update(_tests)
