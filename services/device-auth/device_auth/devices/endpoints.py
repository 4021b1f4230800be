from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from smartpos_shared.auth import MerchantOrAdminDep
from smartpos_shared.db import SessionDep, TransactionDep
from smartpos_shared.errors import MALFORMED_BODY, problem_schema
from smartpos_shared.pagination import CursorQuery, LimitQuery, Page, decode_cursor, page_of

from . import service
from .schemas import DeviceCreate, DevicePublic, Jwks

router = APIRouter(
    prefix="/devices",
    tags=["devices"],
    responses={
        400: problem_schema(MALFORMED_BODY),
        401: problem_schema("Missing, invalid or expired access token"),
        403: problem_schema("Only admins and merchants manage devices"),
        422: problem_schema("Invalid input"),
    },
)

DeviceId = Annotated[str, Path(pattern=r"^dev_[0-9A-HJKMNP-TV-Z]{26}$", description="device id (= its client_id)")]
_not_found: dict[int | str, dict[str, Any]] = {404: problem_schema("No such device for this merchant")}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        404: problem_schema("The store is unknown or not the merchant's (a new store is known within a second)")
    },
    summary="Register a device and its public keys, for a store of the merchant",
)
async def register_device(body: DeviceCreate, principal: MerchantOrAdminDep, session: SessionDep) -> DevicePublic:
    return await service.register_device(session, principal, body)


@router.get("", summary="List devices, newest first")
async def list_devices(
    principal: MerchantOrAdminDep,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    store_id: Annotated[str | None, Query(pattern=r"^sto_[0-9A-HJKMNP-TV-Z]{26}$")] = None,
) -> Page[DevicePublic]:
    rows = await service.list_devices(session, principal, store_id, decode_cursor(cursor, "dev"), limit)
    return page_of(rows, limit)


@router.get("/{device_id}", responses=_not_found, summary="Get a device")
async def get_device(device_id: DeviceId, principal: MerchantOrAdminDep, session: SessionDep) -> DevicePublic:
    return await service.get_device(session, principal, device_id)


@router.put("/{device_id}/jwks", responses=_not_found, summary="Replace the device's public keys (rotation)")
async def replace_keys(
    device_id: DeviceId, body: Jwks, principal: MerchantOrAdminDep, session: SessionDep
) -> DevicePublic:
    return await service.replace_keys(session, principal, device_id, body)


@router.post("/{device_id}/revoke", responses=_not_found, summary="Revoke a device: no new tokens, live ones refused")
async def revoke_device(
    device_id: DeviceId, principal: MerchantOrAdminDep, transaction: TransactionDep
) -> DevicePublic:
    return await service.revoke_device(transaction, principal, device_id)
