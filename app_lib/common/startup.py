"""What start-up hands a feature's hooks (no web framework here: domain code may import it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app_lib.common.config import Settings


@dataclass(frozen=True)
class Startup:
    """The settings and the database endpoint (None = AWS), and `state`: what the feature's
    `on_start` returned (its queue, say), for its background tasks."""

    settings: Settings
    host: str | None
    state: Any = None
