from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from smartpos_shared.schemas import RequestModel


class ClientCreate(RequestModel):
    """A merchant's API client (`merchant_id` required), or a partner's (`role: "partner"`, no merchant)."""

    role: Literal["merchant", "partner"] = "merchant"
    merchant_id: str | None = Field(default=None, pattern=r"^mer_[0-9A-HJKMNP-TV-Z]{26}$")
    name: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _merchant_for_merchants_only(self) -> ClientCreate:
        if (self.role == "merchant") != (self.merchant_id is not None):
            raise ValueError("a merchant client names its merchant_id; a partner client has none")
        return self


class ClientCreated(BaseModel):
    """The only time the secret is shown: it is stored as an argon2id hash."""

    client_id: str
    client_secret: str
    merchant_id: str | None
    role: str
    name: str
    created_at: datetime
