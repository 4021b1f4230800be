"""ORM models of the portal service. Every model is imported here so Alembic sees them all."""

from smartpos_shared.db import ServiceBase, service_metadata


class Base(ServiceBase):
    __abstract__ = True
    metadata = service_metadata()


__all__ = ["Base"]
