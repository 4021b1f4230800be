"""Keyset pagination, newest first: `?limit=N&cursor=C` → `{"items": [...], "next_cursor": "..." | null}`.

Ids are time-sortable, so the cursor is the last id of the page (base64url, opaque to clients).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from .errors import Unprocessable
from .ids import is_id

T = TypeVar("T")

MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, prefix: str) -> str | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unprocessable("cursor is not valid", code="invalid_cursor") from None
    if not is_id(raw, prefix):  # an id of the listed type, nothing else reaches the query
        raise Unprocessable("cursor is not valid", code="invalid_cursor")
    return raw


LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
CursorQuery = Annotated[str | None, Query(max_length=128, description="`next_cursor` of the previous page")]


def page_of(rows: list[T], limit: int, id_of: str = "id") -> Page[T]:
    """`rows` was fetched with `limit + 1`: the extra row only tells that another page exists."""
    has_more = len(rows) > limit
    items = rows[:limit]
    next_cursor = encode_cursor(getattr(items[-1], id_of)) if has_more and items else None
    return Page[T](items=items, next_cursor=next_cursor)
