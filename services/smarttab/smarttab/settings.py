from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from smartpos_shared.settings import ServiceSettings


class SmarttabSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMARTTAB_", extra="ignore")
    service_name = "smarttab"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/smartpos_smarttab"
    port: int = 8001
    # Per-socket send queue: a socket this far behind is closed (it resumes with `since`).
    ws_queue_size: int = 1000
    # At most this many missed events are replayed on resume; beyond, the client is told to reload via REST.
    replay_limit: int = 1000
    # A socket with nothing to send for this long gets {"type": "heartbeat"}.
    heartbeat_seconds: float = 15.0
    # The projector's durable JetStream consumer, shared by every smarttab process of one deployment. A new
    # deployment with an empty database starts from the beginning of the stream ("all") to rebuild its views.
    projector_durable: str = "smarttab-projections"
    projector_start: Literal["all", "new"] = "all"
    # Delete the durable after this long without a client (seconds); none in production.
    projector_inactive_seconds: float | None = None
    # The merchant dashboard (web/): the address browsers use for this service (its sign-in callback is
    # `<public_url>/dashboard/callback`, registered at device-auth as `web_client_id`'s redirect URI), and how long
    # a signed-in session lasts (its refresh token's life at most).
    public_url: str = "http://127.0.0.1:8001"
    web_client_id: str = "smartpos-dashboard"
    web_session_seconds: int = Field(default=8 * 3600, gt=0)
    # The portal the dashboard reads shifts, Z reports and reconciliations from (with the person's own token).
    portal_url: str = "http://127.0.0.1:8000"
