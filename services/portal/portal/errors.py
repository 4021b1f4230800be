"""OpenAPI descriptions of the problem+json answers portal endpoints give."""

from __future__ import annotations

from typing import Any

from smartpos_shared.errors import MALFORMED_BODY, problem_schema

Responses = dict[int | str, dict[str, Any]]

COMMON_ERRORS: Responses = {
    400: problem_schema(MALFORMED_BODY),
    401: problem_schema("Missing, invalid or expired access token (`WWW-Authenticate: Bearer`)"),
    403: problem_schema("Authenticated, but this role may not do this"),
    413: problem_schema("Request body too large"),
    422: problem_schema("Invalid input; `errors` lists the offending fields"),
}
NOT_FOUND: Responses = {404: problem_schema("Unknown resource, or another tenant's (never revealed)")}
CONFLICT: Responses = {
    409: problem_schema("Illegal state transition, or a request with this Idempotency-Key in flight")
}
