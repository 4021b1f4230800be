"""The base of every request body model.

PostgreSQL `text` and `jsonb` cannot hold NUL (U+0000): a NUL that reaches a query is a database error, i.e. a 500
and a log line carrying the statement. Refusing it here, once for every field of every body (nested JSON such as
a JWK set included), is what keeps a new field from reopening the hole.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

NUL = "\x00"


def nul_path(data: Any) -> str | None:
    """Where in a decoded JSON value a string (or object key) holds a NUL, as `a.b[2].c`; None if nowhere."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                return where or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and NUL in key:
                    return f"{where}.{key!r}".lstrip(".")
                stack.append((f"{where}.{key}".lstrip("."), item))
        elif isinstance(value, list | tuple):
            stack.extend((f"{where}[{index}]", item) for index, item in enumerate(value))
    return None


class RequestModel(BaseModel):
    """Unknown fields refused; no NUL anywhere in the body."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        where = nul_path(data)
        if where is not None:
            raise PydanticCustomError(
                "nul_character", "{where}: text may not contain NUL (\\u0000) characters", {"where": where}
            )
        return data


def standalone_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON Schema with its `$defs` inlined, for `openapi_extra`: a `#/$defs/...` reference would
    resolve against the whole OpenAPI document, where it does not exist."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined
