"""One start-up path for the server, the CLI and the worker: the database, then the features.

`open_database` starts the embedded database when DYNAMODB_HOST is `embedded`, points every model
at the endpoint, creates what is missing (never on AWS), seeds empty tables and runs each
feature's `on_start` hook (whose result is the feature's state, handed to its background tasks
and dependencies). Off AWS it also keeps that state: an embedded database that dies is
started again, and tables that disappear from another endpoint (a local server that restarted
empty) are created and seeded again, so the app recovers without a restart of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app_lib.common.config import Settings
from app_lib.common.data import table_registry
from app_lib.common.errors import AppError
from app_lib.common.feature import Feature, Startup

if TYPE_CHECKING:  # imported when used: the module that starts moto's process
    from app_lib.common.embedded import EmbeddedServer

log = logging.getLogger(__name__)

# How often a non-AWS endpoint is checked for missing tables.
MONITOR_SECONDS = 5.0


def prepare_database(
    settings: Settings,
    found: Sequence[Feature],
    host: str | None,
    *,
    seed: bool = True,
    states: dict[str, object] | None = None,
) -> dict[str, object]:
    """Point every model at `host`; off AWS, create missing tables and seed empty ones. Runs the
    features' `on_start` hooks and returns (updating `states` in place) what they returned."""
    states = {} if states is None else states
    table_registry.configure(settings, host)
    if host is not None:  # On AWS the tables belong to the CloudFormation stacks.
        table_registry.create_tables()
    for feature in found:
        if feature.on_start is not None:
            states[feature.name] = feature.on_start(Startup(settings, host))
    if host is None or not seed or not settings.seed_on_start:
        return states
    for feature in found:
        if feature.seed and all(_is_empty(table) for table in feature.tables):
            written = feature.seed(None)
            log.info("seeded %s", feature.name, extra={"feature": feature.name, "items": written})
    return states


def _is_empty(table: type) -> bool:
    return next(iter(table.scan(limit=1)), None) is None  # type: ignore[attr-defined]


@dataclass
class Database:
    """The database the process uses; `close()` stops what `open_database` started. `states`
    holds each feature's `on_start` result (kept current when the database is repaired)."""

    host: str | None
    embedded: EmbeddedServer | None = None
    states: dict[str, object] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.embedded is not None:
            self.embedded.stop()


def open_database(
    settings: Settings, found: Sequence[Feature], *, seed: bool = True, keep: bool = True
) -> Database:
    """Start (embedded) or reach the database and prepare it; with `keep`, keep it prepared."""
    host: str | None = settings.dynamodb_host or None
    embedded = None
    if settings.embedded and settings.embedded_url:
        # `make dev`: the database belongs to the process that reloads this one.
        host = settings.embedded_url
    elif settings.embedded:
        from app_lib.common.embedded import EmbeddedServer

        embedded = EmbeddedServer(Path(settings.data_dir) if settings.data_dir else None)
        host = embedded.start()
        if embedded.load_seconds is not None:
            log.info("embedded database loaded its data in %.2f s", embedded.load_seconds)
    database = Database(host, embedded)
    try:
        prepare_database(settings, found, host, seed=seed, states=database.states)
    except BaseException:
        database.close()
        raise
    if not keep or host is None:
        return database

    def repair() -> None:
        prepare_database(settings, found, host, seed=seed, states=database.states)
        log.warning("the database was prepared again (tables, queues, seed data)")

    if embedded is not None:
        embedded.watch(repair)
    else:
        monitor = threading.Thread(
            target=_monitor, args=(database._stop, repair), name="db-monitor", daemon=True
        )
        monitor.start()
        database._threads.append(monitor)
    return database


def _monitor(stop: threading.Event, repair: Callable[[], None]) -> None:
    """Off AWS: re-create tables that went missing (an endpoint that came back empty)."""
    while not stop.wait(MONITOR_SECONDS):
        try:
            missing = table_registry.missing_tables()
        except AppError:
            continue  # unreachable: nothing to repair until it answers
        if not missing:
            continue
        log.error("tables are missing: %s; creating them again", ", ".join(missing))
        try:
            repair()
        except Exception as error:
            log.error("re-creating the tables failed: %s", error)
