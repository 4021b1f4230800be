"""What a caller may touch, derived only from its token: admin everything, a merchant its own data, a device its
own store (and its merchant's catalog). Repositories take a `Scope` and filter every query by it."""

from __future__ import annotations

from dataclasses import dataclass

from smartpos_shared.auth import Principal, Role
from smartpos_shared.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Scope:
    merchant_id: str | None  # None: admin, all merchants
    store_id: str | None  # set for devices only

    @classmethod
    def of(cls, principal: Principal) -> Scope:
        if principal.role is Role.admin:
            return cls(None, None)
        return cls(principal.merchant_id, principal.store_id if principal.role is Role.device else None)

    def allows(self, merchant_id: str, store_id: str | None) -> bool:
        if self.merchant_id is not None and merchant_id != self.merchant_id:
            return False
        return self.store_id is None or store_id == self.store_id


def merchant_for_write(principal: Principal, requested: str | None) -> str:
    """Merchant a create acts on: admins must name it; merchants act for themselves (naming another is 404)."""
    if principal.role is Role.device:
        raise Forbidden("devices cannot manage merchants, stores or products")
    return principal.merchant_scope(requested)
