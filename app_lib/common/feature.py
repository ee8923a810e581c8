"""What a feature folder exposes to the app: its router, tables, settings, hooks and commands."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic_settings import BaseSettings
from pynamodb.models import Model

from app_lib.common.data import table_registry
from app_lib.common.startup import Startup

__all__ = ["Feature", "Startup", "discover", "feature_state"]


@dataclass(frozen=True)
class Feature:
    """Declared as `FEATURE` in `app_lib/features/<name>/__init__.py`. Only `name` and `router`
    are required; a plain CRUD feature also gives `tables`."""

    name: str
    router: APIRouter
    tables: tuple[type[Model], ...] = ()
    # Loads a data file (None = the bundled one) and returns how many items it wrote. Start-up
    # calls it when the feature's tables are empty; `python -m app_lib seed <name>` too.
    seed: Callable[[Path | None], int] | None = None
    # Called once the tables exist (and again after the database was repaired); what it returns
    # is the feature's state: `Startup.state` for `background`, and `feature_state(request,
    # name)` for its routes. Nothing is stashed in module globals.
    on_start: Callable[[Startup], object] | None = None
    # Started with the server (after on_start); each returns a function that stops it, or None.
    background: tuple[Callable[[Startup], Callable[[], None] | None], ...] = field(default=())
    # The feature's own settings class (its variables are in .env.example and the README).
    settings: type[BaseSettings] | None = None
    # Adds the feature's sub-commands to `python -m app_lib` (e.g. `worker`).
    commands: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] | None = None
    # Dependencies of every route of `router`, e.g. `public_reads("x:write")` (common/auth.py):
    # what the feature's routes need of the caller, in one place.
    dependencies: Sequence[Any] = ()
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


def feature_state(app: Any, name: str) -> Any:
    """What feature `name`'s `on_start` returned in this app (None before start-up or when it
    has no hook): read by the feature's own dependencies, `feature_state(request.app, "jobs")`."""
    states: dict[str, Any] = getattr(app.state, "features", {})
    return states.get(name)
