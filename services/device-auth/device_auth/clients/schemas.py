from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from smartpos_shared.schemas import RequestModel


class ClientCreate(RequestModel):
    merchant_id: str = Field(pattern=r"^mer_[0-9A-HJKMNP-TV-Z]{26}$")
    name: str = Field(min_length=1, max_length=200)


class ClientCreated(BaseModel):
    """The only time the secret is shown: it is stored as an argon2id hash."""

    client_id: str
    client_secret: str
    merchant_id: str | None
    role: str
    name: str
    created_at: datetime
