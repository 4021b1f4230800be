"""ORM models of the smarttab service. Every model is imported here so Alembic sees them all."""

from smartpos_shared.db import make_base

Base = make_base()

__all__ = ["Base"]
