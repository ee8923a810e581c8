"""What a feature folder exposes to the app: its router, its tables, its seed hook."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter
from pynamodb.models import Model

from app_lib.common.config import Settings
from app_lib.common.data import table_registry


@dataclass(frozen=True)
class Feature:
    """Declared as `FEATURE` in `app_lib/features/<name>/__init__.py`."""

    name: str
    router: APIRouter
    tables: tuple[type[Model], ...] = ()
    # Loads a data file (None = the bundled one) and returns how many items it wrote. Start-up
    # calls it when the feature's tables are empty; `python -m app_lib seed <name>` too.
    seed: Callable[[Path | None], int] | None = None
    background: tuple[Callable[[], object], ...] = field(default=())
    # Called at start-up once the tables exist, with the database endpoint (None = AWS).
    on_start: Callable[[Settings, str | None], None] | None = None
    # Routes mounted at the root instead of /api/v1 (e.g. Lambda Web Adapter's POST /events).
    root_router: APIRouter | None = None


def discover() -> list[Feature]:
    """Every feature folder under `app_lib/features`, its tables registered."""
    import app_lib.features as package

    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        feature = getattr(module, "FEATURE", None)
        if isinstance(feature, Feature):
            for table in feature.tables:
                table_registry.register(table)
            found.append(feature)
    return found
