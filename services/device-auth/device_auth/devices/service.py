from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from smartpos_shared.auth import Principal, Role
from smartpos_shared.db import Transaction, utcnow
from smartpos_shared.errors import Forbidden, NotFound
from smartpos_shared.events import add_event
from smartpos_shared.ids import new_id

from ..models import Device, OutboxEvent
from ..stores import repository as stores
from . import repository
from .schemas import DeviceCreate, DevicePublic, Jwks

SOURCE = "device-auth"


def _public(device: Device) -> DevicePublic:
    return DevicePublic(
        id=device.id,
        client_id=device.id,
        merchant_id=device.merchant_id,
        store_id=device.store_id,
        name=device.name,
        status=device.status,
        jwks=device.jwks,
        version=device.version,
        created_at=device.created_at,
        updated_at=device.updated_at,
        revoked_at=device.revoked_at,
        integration_id=device.integration_id,
    )


def _merchant_filter(principal: Principal) -> str | None:
    return None if principal.role is Role.admin else principal.merchant_id


async def register_device(session: AsyncSession, principal: Principal, body: DeviceCreate) -> DevicePublic:
    if principal.role is Role.admin:
        if body.merchant_id is None:
            raise Forbidden("an admin must name the device's merchant_id", code="merchant_id_required")
        merchant_id = body.merchant_id
    else:
        merchant_id = principal.merchant_scope(body.merchant_id)
    if not await stores.store_of_merchant(session, body.store_id, merchant_id):
        # Unknown and foreign stores get the same answer. A store created a moment ago is known here once the
        # portal's store.created event arrived (well within a second).
        raise NotFound("store not found for this merchant", code="store_not_found")
    now = utcnow()
    device = Device(
        id=new_id("dev"),
        merchant_id=merchant_id,
        store_id=body.store_id,
        name=body.name,
        status="active",
        jwks=body.jwks.model_dump(),
        integration_id=body.integration_id,
        version=1,
        created_at=now,
        updated_at=now,
        revoked_at=None,
    )
    session.add(device)
    await session.flush()
    return _public(device)


async def get_device(session: AsyncSession, principal: Principal, device_id: str) -> DevicePublic:
    device = await repository.get_device_for_merchant(session, device_id, _merchant_filter(principal))
    if device is None:
        raise NotFound("device not found")
    return _public(device)


async def list_devices(
    session: AsyncSession, principal: Principal, store_id: str | None, before_id: str | None, limit: int
) -> list[DevicePublic]:
    rows = await repository.list_devices(session, _merchant_filter(principal), store_id, before_id, limit)
    return [_public(device) for device in rows]


async def replace_keys(session: AsyncSession, principal: Principal, device_id: str, jwks: Jwks) -> DevicePublic:
    """Key rotation: the new set replaces the old one at once; assertions signed by dropped keys stop working."""
    device = await repository.get_device_for_merchant(session, device_id, _merchant_filter(principal), lock=True)
    if device is None:
        raise NotFound("device not found")
    device.jwks = jwks.model_dump()
    device.version += 1
    device.updated_at = utcnow()
    await session.flush()
    return _public(device)


async def revoke_device(transaction: Transaction, principal: Principal, device_id: str) -> DevicePublic:
    """No new tokens from now on; the `device.revoked` event makes resource servers refuse its live tokens.
    Revoking a revoked device changes nothing."""
    session = transaction.session
    device = await repository.get_device_for_merchant(session, device_id, _merchant_filter(principal), lock=True)
    if device is None:
        raise NotFound("device not found")
    if device.status == "revoked":
        return _public(device)
    now = utcnow()
    device.status = "revoked"
    device.revoked_at = now
    device.updated_at = now
    device.version += 1
    await session.flush()
    public = _public(device)
    add_event(
        transaction,
        OutboxEvent,
        source=SOURCE,
        event_type="device.revoked",
        merchant_id=device.merchant_id,
        store_id=device.store_id,
        subject=device.id,
        version=device.version,
        data=public.model_dump(mode="json", exclude={"jwks"}),
    )
    return public
