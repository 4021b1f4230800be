"""Error answers every console operation may give, documented once (RFC 9457 problem+json)."""

from __future__ import annotations

from typing import Any

from smartpos_shared.errors import MALFORMED_BODY, problem_schema

COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: problem_schema(MALFORMED_BODY),
    401: problem_schema("Missing, invalid or expired access token (`WWW-Authenticate: Bearer`)"),
    403: problem_schema("A role the console does not serve (`role_not_served`: merchants, devices), or not allowed"),
    413: problem_schema("Request body too large"),
    422: problem_schema("Invalid input; `errors` lists the offending fields"),
}
