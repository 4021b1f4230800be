from __future__ import annotations

from fastapi import APIRouter, Request, status
from pydantic import BaseModel

from smartpos_shared.auth import AdminDep
from smartpos_shared.db import SessionDep
from smartpos_shared.errors import problem_schema

router = APIRouter(prefix="/signing-keys", tags=["signing keys"])


class RotatedKey(BaseModel):
    kid: str


@router.post(
    "/rotate",
    status_code=status.HTTP_201_CREATED,
    summary="Rotate the access-token signing key (the old key keeps verifying for a grace period)",
    responses={401: problem_schema("Missing or invalid token"), 403: problem_schema("Admins only")},
)
async def rotate(request: Request, _: AdminDep, session: SessionDep) -> RotatedKey:
    return RotatedKey(kid=await request.app.state.keyring.rotate(session))
