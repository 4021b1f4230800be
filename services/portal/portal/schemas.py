"""Field types shared by the portal's request and response models."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator, Field, StringConstraints

ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
MerchantId = Annotated[str, StringConstraints(pattern=rf"^mer_{ULID}$")]
StoreId = Annotated[str, StringConstraints(pattern=rf"^sto_{ULID}$")]
ProductId = Annotated[str, StringConstraints(pattern=rf"^prd_{ULID}$")]
OrderId = Annotated[str, StringConstraints(pattern=rf"^ord_{ULID}$")]
BillId = Annotated[str, StringConstraints(pattern=rf"^bil_{ULID}$")]
PaymentId = Annotated[str, StringConstraints(pattern=rf"^pay_{ULID}$")]


def _stripped(value: str) -> str:
    """Surrounding whitespace is dropped after the length checks (the documented limits apply to what was sent)."""
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be blank")
    return stripped


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_stripped)]
# Minor units. The cap keeps every total far inside bigint (and any real till).
MAX_AMOUNT = 10**12
Amount = Annotated[int, Field(strict=True, gt=0, le=MAX_AMOUNT)]
Price = Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT)]
MerchantQuery = Annotated[
    str | None, Query(pattern=rf"^mer_{ULID}$", description="admins: the merchant whose data to list")
]
