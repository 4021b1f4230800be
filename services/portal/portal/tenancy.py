"""Tenancy, once: what a caller may touch, derived only from its token.

A merchant touches its own data, a device its own store (and its merchant's catalog). Every repository query
is bound to one merchant (`Tenant`). An admin — and the gateway, which has no token — is not "all merchants":
it names the merchant, or the resource it asks for is first resolved to its owner, and the work then runs
scoped to that owner exactly as the owner's own request would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from smartpos_shared.auth import Principal, Role
from smartpos_shared.errors import Forbidden, NotFound, Unprocessable

Resolver = Callable[[], Awaitable[str | None]]
"""Finds the merchant that owns a resource (a repository's tenant-resolution query); None if there is none."""


@dataclass(frozen=True, slots=True)
class Tenant:
    """What a query may touch: one merchant, and for a device one store. There is no "all merchants"."""

    merchant_id: str
    store_id: str | None = None


def own_tenant(principal: Principal) -> Tenant | None:
    """The caller's own tenant; None for an admin (who acts for the owner of what it names)."""
    if principal.role is Role.admin:
        return None
    assert principal.merchant_id is not None
    return Tenant(principal.merchant_id, principal.store_id if principal.role is Role.device else None)


async def tenant_for(principal: Principal, resolve: Resolver) -> Tenant:
    """The tenant to load a resource with: the caller's own, or for an admin the resource's owner.
    A resource that does not exist is 404 here already."""
    own = own_tenant(principal)
    if own is not None:
        return own
    merchant_id = await resolve()
    if merchant_id is None:
        raise NotFound("not found")
    return Tenant(merchant_id)


def tenant_for_list(principal: Principal, merchant_id: str | None) -> Tenant:
    """Lists are per merchant: an admin names it (`merchant_id`), anyone else gets their own."""
    own = own_tenant(principal)
    if own is None:
        if merchant_id is None:
            raise Unprocessable(
                "an admin lists one merchant's data: name it (merchant_id)", code="merchant_id_required"
            )
        return Tenant(merchant_id)
    if merchant_id is not None and merchant_id != own.merchant_id:
        raise NotFound("merchant not found")
    return own


def merchant_for_write(principal: Principal, requested: str | None) -> str:
    """Merchant a create acts on: admins must name it; merchants act for themselves (naming another is 404)."""
    if principal.role is Role.device:
        raise Forbidden("devices cannot manage merchants, stores or products")
    return principal.merchant_scope(requested)
