"""Where app-lib's CPU goes: cProfile of the serving process, by layer and by hot spot.

The profiled servers (bench.profile_server) are the same apps with the same uvicorn settings,
their threadpool hops run inline so that one thread does all the work, and cProfile's clock is
that thread's CPU time (waiting for the database costs nothing). cProfile slows Python code down
unevenly (more for many small calls), so shares are converted to milliseconds with the CPU per
request measured without a profiler (bench.cpu): read the figures as "about", the ranking as firm.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import GET_PREFIX, LIST_PATH, app_lib_env, bare_client, say
from bench.procs import HttpClient, ServerProcess, free_port

# First match wins: (substring of the file name, layer). A file no entry names (and a builtin
# BUILTIN_LAYERS does not name) is charged to its callers' layers, in proportion to their calls:
# json.loads under PynamoDB's NumberAttribute is PynamoDB's cost, under the formatter logging's.
OTHER = "other (stdlib, asyncio)"
CALLERS = "(charged to callers)"
LAYERS: tuple[tuple[str, str], ...] = (
    ("app_lib/common/middleware.py", "app-lib middleware (request id)"),
    ("app_lib/common/logging.py", "logging"),
    ("/logging/__init__.py", "logging"),
    ("app_lib/common/request_checks.py", "app-lib check_request"),
    ("app_lib/features/passengers/dto.py", "app-lib from_model"),
    ("app_lib/common/data/", "app-lib data layer (parsing, items, planner)"),
    ("app_lib/common/aws.py", "botocore (request, HTTP, parsing)"),
    ("app_lib/", "app-lib other"),
    ("bench/minimal_app.py", "minimal app's own code"),
    ("pynamodb/", "PynamoDB (call + deserialize)"),
    ("botocore/", "botocore (request, HTTP, parsing)"),
    ("urllib3/", "botocore (request, HTTP, parsing)"),
    ("/http/client.py", "botocore (request, HTTP, parsing)"),
    ("/email/", "botocore (request, HTTP, parsing)"),
    ("pydantic", "pydantic (validation, serialization)"),
    ("fastapi/", "FastAPI (routing, dependencies, response)"),
    ("starlette/", "Starlette, anyio"),
    ("anyio/", "Starlette, anyio"),
    ("uvicorn/", "uvicorn (HTTP server)"),
    ("bench/profile_server.py", "profiler harness"),
    ("/json/", CALLERS),
    ("/uuid.py", CALLERS),
    ("/re/", CALLERS),
    ("/enum.py", CALLERS),
    ("/typing.py", CALLERS),
    ("/contextlib.py", CALLERS),
    ("/functools.py", CALLERS),
    ("/base64.py", CALLERS),
    ("/hmac.py", CALLERS),
    ("/copy.py", CALLERS),
    ("/collections/", CALLERS),
)
BUILTIN_LAYERS: tuple[tuple[str, str], ...] = (
    ("pydantic_core", "pydantic (validation, serialization)"),
    ("httptools", "uvicorn (HTTP server)"),
    ("uvloop", "uvicorn (HTTP server)"),
)

# Inclusive costs worth a name: label, then the (file substring, function) pairs it adds up.
HOTSPOTS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("PynamoDB Model.get (valid_passenger)", (("pynamodb/models.py", "get"),)),
    ("service.page (Query, models, cursor)", (("pynamodb_data_service.py", "page"),)),
    ("  botocore _make_api_call", (("botocore/client.py", "_make_api_call"),)),
    ("    of which parsing the answer", (("botocore/parsers.py", "parse"),)),
    (
        "  Model.from_raw_data (VersionedTable's)",
        (("pynamodb/models.py", "from_raw_data"), ("versioned_table.py", "from_raw_data")),
    ),
    (
        "  planner and cursor",
        (
            ("pynamodb_data_service.py", "_plan"),
            ("pynamodb_data_service.py", "_key_condition"),
            ("pynamodb_data_service.py", "_filter"),
            ("pynamodb_data_service.py", "_cursor_context"),
            ("data/cursor.py", "encode"),
        ),
    ),
    ("PassengerRead.from_model", (("passengers/dto.py", "from_model"),)),
    ("FastAPI serialize_response", (("fastapi/routing.py", "serialize_response"),)),
    (
        "request checks (CheckedRoute)",
        (("request_checks.py", "_check_query"), ("request_checks.py", "check_body")),
    ),
    # The line itself is written later by the AccessLog writer thread (not profiled: one
    # thread is); cpu.py's figures include that thread's CPU.
    ("access line queued (AccessLog.write)", (("app_lib/common/logging.py", "write"),)),
    ("ETag (set_etag)", (("app_lib/common/http.py", "set_etag"),)),
)

Key = tuple[str, int, str]


def _layer_of(key: Key) -> str:
    filename, _, name = key
    if filename == "~":
        for part, layer in BUILTIN_LAYERS:
            if part in name:
                return layer
        return CALLERS
    for part, layer in LAYERS:
        if part in filename:
            return layer
    return OTHER


def by_layer(stats: dict[Key, Any]) -> dict[str, float]:
    """Own time per layer; what is charged to callers follows the call graph up, in proportion
    to each caller's share of the calls' time, until it reaches a layer."""
    memo: dict[Key, dict[str, float]] = {}

    def shares(key: Key, depth: int) -> dict[str, float]:
        layer = _layer_of(key)
        if layer != CALLERS:
            return {layer: 1.0}
        if key in memo:
            return memo[key]
        callers = stats[key][4] if key in stats else {}
        total = sum(entry[2] for entry in callers.values())
        if depth > 8 or not callers or total <= 0:
            return {OTHER: 1.0}
        found: dict[str, float] = {}
        for caller, entry in callers.items():
            for layer_name, part in shares(caller, depth + 1).items():
                found[layer_name] = found.get(layer_name, 0.0) + part * entry[2] / total
        memo[key] = found
        return found

    layers: dict[str, float] = {}
    for key, entry in stats.items():
        for layer_name, part in shares(key, 0).items():
            layers[layer_name] = layers.get(layer_name, 0.0) + entry[2] * part
    return layers


def _gc_figures(path: Path, requests: int) -> dict[str, Any] | None:
    """The collector's own clock (not scaled: it is C code, which cProfile does not slow)."""
    figures = path.with_suffix(".gc.json")
    if not figures.exists():
        return None
    found = json.loads(figures.read_text())
    return {
        "cpu_ms_per_request": round(found["cpu_ns"] / requests / 1e6, 3),
        "runs_per_request": [round(n / requests, 2) for n in found["runs_by_generation"]],
    }


def analyze(path: Path, requests: int, measured_ms: float | None) -> dict[str, Any]:
    """Per request: profiled ms, scaled to the CPU measured without profiler (if given)."""
    stats: dict[Key, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    per_request = total / requests * 1000
    if measured_ms is None:
        measured_ms = per_request
    scale = measured_ms / per_request if per_request else 0.0
    layers = by_layer(stats)
    hotspots = {}
    for label, pairs in HOTSPOTS:
        cumulative = sum(
            entry[3]
            for key, entry in stats.items()
            if any(part in key[0] and key[2] == name for part, name in pairs)
        )
        if cumulative > 0:
            hotspots[label] = round(cumulative / requests * 1000 * scale, 3)
    own = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:15]
    collector = _gc_figures(path, requests)
    return {
        "gc": collector,
        "requests": requests,
        "profiled_ms_per_request": round(per_request, 3),
        "measured_ms_per_request": round(measured_ms, 3),
        "scale": round(scale, 3),
        "layers_ms": {
            name: round(value / requests * 1000 * scale, 3)
            for name, value in sorted(layers.items(), key=lambda item: -item[1])
        },
        "hotspots_ms": hotspots,
        "top_own_ms": [
            {
                "function": f"{Path(key[0]).name}:{key[1]}:{key[2]}" if key[0] != "~" else key[2],
                "ms": round(entry[2] / requests * 1000 * scale, 3),
                "calls_per_request": round(entry[1] / requests, 1),
            }
            for key, entry in own
        ],
    }


def _profiled_server(
    name: str, target: str, factory: bool, env: dict[str, str], work: Path, ready: str
) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, "-m", "bench.profile_server", target, "--port", str(port)]
    argv += ["--out", str(work), *(["--factory"] if factory else [])]
    return ServerProcess(name, argv, env, work, ready_path=ready, port=port)


def _profile_requests(server: ServerProcess, paths: list[str], name: str) -> Path:
    """Warm up, then profile `paths` one at a time; the stats file."""
    out = Path(server.log_path).parent / f"{name}.pstats"
    client = HttpClient(server.port)
    try:
        for path in paths[: max(20, len(paths) // 5)]:
            client.get(path)
        client.get("/__profile/start")
        for path in paths:
            status, body = client.get(path)
            if status != 200:
                raise RuntimeError(f"profiled GET {path}: {status} {body[:200]!r}")
        client.get(f"/__profile/stop/{name}")
    finally:
        client.close()
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return out


def run_profiles(
    endpoint: str,
    namespace: str,
    table: str,
    bare: Any,
    query: dict[str, Any],
    ids: list[str],
    work: Path,
    measured: dict[str, float],
    *,
    gets: int,
    pages: int,
) -> dict[str, Any]:
    """Profile app-lib (GET by id, page of 50), the minimal app (GET), bare Query (in-process);
    `measured`: CPU ms per request of each without a profiler."""
    work.mkdir(parents=True, exist_ok=True)
    get_paths = [GET_PREFIX + ids[i % len(ids)] for i in range(gets)]
    results: dict[str, Any] = {}
    say(f"profile: app-lib under cProfile, {gets} GETs by id, {pages} pages of 50")
    env = app_lib_env(endpoint, namespace)
    app = _profiled_server("profile-app", "app_lib.main:app_factory", True, env, work, "/ready")
    try:
        app.start().wait_ready()
        results["app_get"] = analyze(
            _profile_requests(app, get_paths, "app_get"), gets, measured.get("app_get")
        )
        results["app_page"] = analyze(
            _profile_requests(app, [LIST_PATH] * pages, "app_page"), pages, measured.get("app_page")
        )
    finally:
        app.stop()

    say("profile: the minimal app under cProfile")
    env = {"DYNAMODB_HOST": endpoint, "BENCH_TABLE": table}
    ready = GET_PREFIX + ids[0]
    minimal = _profiled_server("profile-minimal", "bench.minimal_app:app", False, env, work, ready)
    try:
        minimal.start().wait_ready()
        results["minimal_get"] = analyze(
            _profile_requests(minimal, get_paths, "minimal_get"), gets, measured.get("minimal_get")
        )
    finally:
        minimal.stop()

    say("profile: bare botocore Query in this process")
    for _ in range(10):
        bare.query(**query)
    profile = cProfile.Profile(time.thread_time_ns, 1e-9)
    profile.enable()
    for _ in range(pages):
        bare.query(**query)
    profile.disable()
    bare_file = work / "bare_query.pstats"
    profile.dump_stats(str(bare_file))
    results["bare_query"] = analyze(bare_file, pages, measured.get("bare_query"))
    results["in_process_ms"] = micro_costs(bare, table, query, ids)
    return results


# ----- in-process costs, no profiler --------------------------------------------------------------
def _least_cpu_ms(pieces: list[tuple[str, Any, int]], repeat: int) -> dict[str, float]:
    """CPU ms per call of each piece (this thread): `repeat` turns, each piece taking its turn
    of `number` calls in every one (so a busy moment of the machine hits all); the least turn."""
    best = {label: float("inf") for label, _, _ in pieces}
    for _, function, _ in pieces:
        function()
    for _ in range(repeat):
        for label, function, number in pieces:
            start = time.thread_time_ns()
            for _ in range(number):
                function()
            best[label] = min(best[label], (time.thread_time_ns() - start) / number / 1e6)
    return best


def _read_from_item(item: dict[str, dict[str, str]]) -> Any:
    """A sketch of the suggested `PassengerRead.from_item`: a DynamoDB item straight into the DTO,
    no model instance in between (what the page of 50 could do)."""
    from app_lib.features.passengers.dto import PassengerRead

    def number(name: str) -> float | None:
        value = item.get(name)
        return None if value is None else float(value["N"])

    def text(name: str) -> str | None:
        value = item.get(name)
        return None if value is None else value["S"]

    return PassengerRead(
        passenger_id=item["passenger_id"]["S"],
        survived=item["survived"]["N"] != "0",
        pclass=int(item["pclass"]["N"]),
        name=item["name"]["S"],
        sex=item["sex"]["S"],
        age=number("age"),
        sibsp=int(number("sibsp") or 0),
        parch=int(number("parch") or 0),
        ticket=text("ticket"),
        fare=number("fare"),
        cabin=text("cabin"),
        embarked=text("embarked"),
    )


def micro_costs(bare: Any, table: str, query: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """CPU ms of the pieces the profile points at, measured directly (see _least_cpu_ms)."""
    import asyncio
    import io
    import logging

    import anyio.to_thread
    from botocore.context import start_as_current_context
    from botocore.useragent import UserAgentString
    from pydantic import TypeAdapter
    from pynamodb.models import Model

    from app_lib.common.config import get_settings
    from app_lib.common.data import cursor as cursors
    from app_lib.common.data import pynamodb_adapter as adapter
    from app_lib.common.dto import Page
    from app_lib.common.logging import JsonFormatter, set_request_id
    from app_lib.features.passengers.data_service import PassengerDataService
    from app_lib.features.passengers.dto import PassengerRead
    from app_lib.features.passengers.table import PassengerTable

    say("profile: in-process costs of the pieces (no profiler)")
    items = bare.query(**query)["Items"]
    models = [PassengerTable.from_raw_data(item) for item in items]
    reads = [PassengerRead.from_model(model) for model in models]
    page_adapter = TypeAdapter(Page[PassengerRead])
    service = PassengerDataService()
    key = {"passenger_id": {"S": ids[0]}}
    filters = {"pclass": 1, "sex": "female"}

    def plan_and_cursor() -> str:
        plan, used = service._plan(filters)
        assert plan is not None
        service._key_condition(plan, used, filters)
        return cursors.encode({"passenger_id": {"S": "1"}}, service._cursor_context(plan, filters))

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.Logger("bench.access", logging.INFO)
    access.addHandler(handler)
    set_request_id("0123456789abcdef0123456789abcdef")

    def log_line() -> None:
        access.info(
            "%s %s %s",
            "GET",
            "/api/v1/passengers/1",
            200,
            extra={"status": 200, "duration_ms": 1.23},
        )
        if stream.tell() > 1 << 20:
            stream.seek(0)
            stream.truncate()

    # The same client, parsing as app-lib's PynamoDB clients do (pynamodb_adapter): like for like.
    direct = adapter.parse_answers_directly(bare_client(bare.meta.endpoint_url, get_settings()))
    stock_model = Model.from_raw_data.__func__  # type: ignore[attr-defined]
    # The User-Agent header of a GetItem: botocore builds it twice a call (the minimal app's
    # client does); app-lib's clients build it once per set of features (pynamodb_adapter).
    creator = adapter.botocore_client(PassengerTable)._user_agent_creator

    def user_agent(build: Any) -> None:
        with start_as_current_context():
            build(creator)
            build(creator)

    pieces: list[tuple[str, Any, int]] = [
        ("page: bare botocore Query (client CPU)", lambda: bare.query(**query), 5),
        ("page: bare botocore Query, app-lib's answer parser", lambda: direct.query(**query), 5),
        (
            "page: service.page (PynamoDB Query + models)",
            lambda: service.page(50, None, **filters),
            5,
        ),
        (
            "page: 50 x Model.from_raw_data",
            lambda: [PassengerTable.from_raw_data(item) for item in items],
            10,
        ),
        (
            "page: 50 x PynamoDB's own from_raw_data",
            lambda: [stock_model(PassengerTable, item) for item in items],
            5,
        ),
        (
            "page: 50 x PassengerRead.from_model",
            lambda: [PassengerRead.from_model(model) for model in models],
            20,
        ),
        (
            "page: 50 x raw item -> PassengerRead (sketch)",
            lambda: [_read_from_item(item) for item in items],
            20,
        ),
        (
            "page: Page[PassengerRead] validate + dump_json",
            lambda: page_adapter.dump_json(
                page_adapter.validate_python(Page[PassengerRead](items=reads, next_cursor="x"))
            ),
            100,
        ),
        ("page: planner + cursor (plan, key condition, encode)", plan_and_cursor, 200),
        (
            "get: bare botocore GetItem (client CPU)",
            lambda: bare.get_item(TableName=table, Key=key),
            20,
        ),
        ("get: PynamoDB Model.get", lambda: PassengerTable.get(ids[0]), 20),
        (
            "get: its User-Agent, botocore's 2 builds a call",
            lambda: user_agent(UserAgentString.to_string),
            100,
        ),
        ("get: its User-Agent, app-lib's client", lambda: user_agent(type(creator).to_string), 500),
        ("both: the access log line (JSON)", log_line, 500),
    ]
    out = _least_cpu_ms(pieces, repeat=7)
    set_request_id(None)

    async def hops(count: int) -> float:
        start = time.process_time_ns()
        for _ in range(count):
            await anyio.to_thread.run_sync(int)
        return (time.process_time_ns() - start) / count / 1e6

    out["both: one threadpool hop (process CPU)"] = min(asyncio.run(hops(300)) for _ in range(3))
    return {name: round(value, 3) for name, value in out.items()}
