"""What every measurement shares: progress lines, the data, tables, a bare botocore client."""

from __future__ import annotations

import contextlib
import gc
import json
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import botocore.session
from botocore.config import Config

from app_lib.common.config import Settings
from app_lib.common.data import table_registry
from app_lib.features.passengers.dto import PassengerCreate
from app_lib.features.passengers.seed import BUNDLED, parse_csv
from app_lib.features.passengers.table import PassengerTable

FILTER = {"pclass": 1, "sex": "female"}
PAGE_LIMIT = 50
LIST_PATH = f"/api/v1/passengers?pclass=1&sex=female&limit={PAGE_LIMIT}"
GET_PREFIX = "/api/v1/passengers/"

_T0 = time.perf_counter()


def say(message: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(f"[{time.perf_counter() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def ms_since(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """The bench's own garbage collector stays out of the timed loops."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Data:
    """The bundled 891 rows, sampled with fresh ids for bigger tables (same distribution)."""

    def __init__(self) -> None:
        self.rows: list[PassengerCreate] = parse_csv(BUNDLED.read_text(encoding="utf-8-sig"))
        self.ids = [row.passenger_id or "" for row in self.rows]

    def sample(self, count: int, prefix: str, seed: int) -> list[PassengerCreate]:
        """What parse_csv returns for a file of `count` such rows: validated, with ids."""
        pick = random.Random(seed).choice
        return [
            pick(self.rows).model_copy(update={"passenger_id": f"{prefix}{i:07d}"})
            for i in range(count)
        ]


def point(settings: Settings, endpoint: str, namespace: str) -> str:
    """Point PassengerTable (in this process) at a namespace; create its table if missing."""
    table_registry.configure_model(PassengerTable, settings, endpoint, namespace)
    table_registry.create_tables([PassengerTable])
    return str(PassengerTable.Meta.table_name)


def bare_client(endpoint: str, settings: Settings) -> Any:
    """A plain botocore DynamoDB client: same endpoint, credentials, region as the app's; the
    same Config PynamoDB uses (no client-side parameter validation), so only layers differ."""
    return botocore.session.get_session().create_client(
        "dynamodb",
        region_name=settings.aws_region,
        endpoint_url=endpoint,
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )


class CallRecorder:
    """botocore event hooks on PynamoDB's client: the operations really sent, and what
    DynamoDB answered (ScannedCount), to show a filtered page is one Query on the index."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._client: Any = None

    def attach(self) -> CallRecorder:
        self._client = PassengerTable._get_connection().connection.client
        events = self._client.meta.events
        events.register("provide-client-params.dynamodb.*", self._params, unique_id="bench-p")
        events.register("after-call.dynamodb.*", self._after, unique_id="bench-a")
        return self

    def detach(self) -> None:
        if self._client is not None:
            events = self._client.meta.events
            events.unregister("provide-client-params.dynamodb.*", unique_id="bench-p")
            events.unregister("after-call.dynamodb.*", unique_id="bench-a")

    def _params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append({"operation": model.name, "params": json.loads(json.dumps(params))})

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if self.calls and self.calls[-1]["operation"] == model.name:
            self.calls[-1]["scanned_count"] = parsed.get("ScannedCount")
            self.calls[-1]["count"] = parsed.get("Count")


def app_lib_env(endpoint: str, namespace: str, *, log_level: str = "INFO") -> dict[str, str]:
    """app-lib against a shared server, on tables the bench made and seeded. Auth as `make run`
    has it (dev: the app is its own issuer; the bench's GETs are public reads)."""
    return {
        "DYNAMODB_HOST": endpoint,
        "APP_NAMESPACE": namespace,
        "LOG_LEVEL": log_level,
        "SEED_ON_START": "false",
        "RUN_WORKER": "false",
        "AUTH_MODE": "dev",
        "DATA_DIR": "",
    }
