from __future__ import annotations

from fastapi import APIRouter, status

from smartpos_shared.auth import AdminDep
from smartpos_shared.db import SessionDep
from smartpos_shared.errors import MALFORMED_BODY, problem_schema

from . import service
from .schemas import ClientCreate, ClientCreated

router = APIRouter(
    prefix="/clients",
    tags=["clients"],
    responses={
        400: problem_schema(MALFORMED_BODY),
        401: problem_schema("Missing, invalid or expired access token"),
        403: problem_schema("Admins only"),
        422: problem_schema("Invalid input"),
    },
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a merchant's (or a partner's) API client; the secret is shown only in this response",
)
async def create_client(body: ClientCreate, _: AdminDep, session: SessionDep) -> ClientCreated:
    return await service.create_client(session, body)
