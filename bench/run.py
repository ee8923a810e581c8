"""The three measurements, the printed table and bench/results.json."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config

from app_lib.common.config import Settings, get_settings
from app_lib.common.data import table_registry
from app_lib.common.embedded import EmbeddedServer
from app_lib.features.passengers import seed
from app_lib.features.passengers.data_service import PassengerDataService
from app_lib.features.passengers.dto import PassengerCreate
from app_lib.features.passengers.seed import BUNDLED, parse_csv
from app_lib.features.passengers.table import PassengerTable
from bench.procs import AppProcess, HttpClient, percentile, summary

RESULTS = Path(__file__).parent / "results.json"
OVERHEAD_TARGET = 1.5  # app GET p50 within 1.5x of the bare GetItem p50
EXAMINED_TARGET = 2.0  # items examined per filtered page at 100k within 2x of that at 1k
FILTER = {"pclass": 1, "sex": "female"}
PAGE_LIMIT = 50
LIST_PATH = f"/api/v1/passengers?pclass=1&sex=female&limit={PAGE_LIMIT}"

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


# ----- data ---------------------------------------------------------------------------------------
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


# ----- 1. bulk load -------------------------------------------------------------------------------
def bulk_load(
    settings: Settings, endpoint: str, data: Data, count: int, run: str
) -> dict[str, Any]:
    """The seed path (seed.write: models, then 25-item BatchWriteItems) vs one save() (a
    conditional PutItem) per item; both start from validated rows and build the models."""
    service = PassengerDataService()
    point(settings, endpoint, f"{run}-bulk-batch")
    rows = data.sample(count, "k", seed=11)
    start = time.perf_counter_ns()
    written = seed.write(rows)
    batch_s = ms_since(start) / 1000
    assert written == count

    point(settings, endpoint, f"{run}-bulk-save")
    rows = data.sample(count, "v", seed=12)
    start = time.perf_counter_ns()
    for row in rows:
        service.save(row.to_model(row.passenger_id or service.new_id()))
    save_s = ms_since(start) / 1000
    batch_rate, save_rate = count / batch_s, count / save_s
    say(f"bulk: seed path {batch_rate:,.0f} items/s, save() {save_rate:,.0f} items/s")
    return {
        "items": count,
        "batch_put_seconds": round(batch_s, 3),
        "batch_put_items_per_s": round(batch_rate, 1),
        "save_seconds": round(save_s, 3),
        "save_items_per_s": round(save_rate, 1),
        "ratio_batch_over_save": round(batch_rate / save_rate, 2),
    }


# ----- 2. overhead --------------------------------------------------------------------------------
def overhead(
    settings: Settings, endpoint: str, data: Data, n: int, run: str, work: Path, python: str
) -> dict[str, Any]:
    namespace = f"{run}-get"
    info = AppProcess(
        "get-info", endpoint, namespace, work, log_level="INFO", seed=True, python=python
    )
    warn = AppProcess("get-warning", endpoint, namespace, work, log_level="WARNING", python=python)
    try:
        # The first one creates and seeds the table (891 rows); the second finds it seeded.
        say("overhead: starting the app (LOG_LEVEL=INFO, SEED_ON_START=true)")
        ready_info = info.start().wait_ready()
        say("overhead: starting a second app process (LOG_LEVEL=WARNING)")
        ready_warn = warn.start().wait_ready()
        table = point(settings, endpoint, namespace)
        service = PassengerDataService()
        bare = bare_client(endpoint, settings)
        http_info, http_warn = HttpClient(info.port), HttpClient(warn.port)
        prefix = "/api/v1/passengers/"
        # GET /health (no database, no access line) goes to the WARNING app, so that the INFO
        # app serves only the GETs and its CPU time per request can be read off /proc.

        def do_bare(pid: str) -> Any:
            return bare.get_item(
                TableName=table,
                Key={"passenger_id": {"S": pid}},
                ReturnConsumedCapacity="TOTAL",  # PynamoDB asks for it on every read too
            ).get("Item")

        def do_pynamodb(pid: str) -> Any:
            return service.get(pid)

        def do_app(client: HttpClient) -> Callable[[str], Any]:
            return lambda pid: client.get(prefix + pid)

        def do_health(pid: str) -> Any:
            return http_warn.get("/health")

        series: dict[str, Callable[[str], Any]] = {
            "bare_getitem": do_bare,
            "pynamodb_get_in_process": do_pynamodb,
            "app_http_info": do_app(http_info),
            "app_http_warning": do_app(http_warn),
            "health_http": do_health,
        }
        # Correctness once, outside the timed loop.
        pid = data.ids[0]
        assert do_bare(pid)["passenger_id"]["S"] == pid
        assert do_pynamodb(pid).passenger_id == pid
        for name in ("app_http_info", "app_http_warning"):
            status, body = series[name](pid)
            assert status == 200 and json.loads(body)["passenger_id"] == pid, (status, body)

        warmup = max(50, n // 10)
        samples: dict[str, list[float]] = {name: [] for name in series}
        names = list(series)
        bad: list[str] = []
        say(f"overhead: {warmup} warm-up + {n} timed rounds of {len(names)} calls, interleaved")
        cpu_before = 0.0
        with no_gc():
            for i in range(warmup + n):
                if i == warmup:
                    cpu_before = info.cpu_seconds()
                pid = data.ids[i % len(data.ids)]
                shift = i % len(names)  # rotate the order: none always runs right after another
                for name in names[shift:] + names[:shift]:
                    start = time.perf_counter_ns()
                    result = series[name](pid)
                    elapsed = ms_since(start)
                    if i >= warmup:
                        samples[name].append(elapsed)
                    if isinstance(result, tuple) and result[0] != 200:
                        bad.append(f"{name} {pid}: {result[0]}")
                    elif result is None:
                        bad.append(f"{name} {pid}: no item")
            cpu_info = info.cpu_seconds() - cpu_before
        if bad:
            raise RuntimeError(f"{len(bad)} failed calls, e.g. {bad[:3]}")
        http_info.close()
        http_warn.close()
        time.sleep(0.5)  # let the access log reach the file
        server_side = info.access_durations(prefix)[-n:]
        out: dict[str, Any] = {name: summary(values) for name, values in samples.items()}
        out["app_server_side_info"] = summary(server_side) if server_side else None
        bare_p50 = out["bare_getitem"]["p50_ms"]
        bare_p99 = out["bare_getitem"]["p99_ms"]
        out["ratios"] = {
            f"{name}_p50": round(out[name]["p50_ms"] / bare_p50, 3)
            for name in ("app_http_info", "app_http_warning", "pynamodb_get_in_process")
        } | {
            f"{name}_p99": round(out[name]["p99_ms"] / bare_p99, 3)
            for name in ("app_http_info", "app_http_warning", "pynamodb_get_in_process")
        }
        out["app_minus_bare_p50_ms"] = {
            name: round(out[name]["p50_ms"] - bare_p50, 3)
            for name in ("app_http_info", "app_http_warning")
        }
        out["app_cpu_ms_per_request_info"] = round(cpu_info / n * 1000, 3)
        out["n"] = n
        out["warmup"] = warmup
        out["app_ready_seconds"] = {"info": round(ready_info, 2), "warning": round(ready_warn, 2)}
        say(
            f"overhead: bare p50 {bare_p50:.2f} ms, app p50 {out['app_http_info']['p50_ms']:.2f} ms"
        )
        return out
    finally:
        info.stop()
        warn.stop()


# ----- 3. read cost -------------------------------------------------------------------------------
def load_table(
    settings: Settings, endpoint: str, data: Data, namespace: str, rows: int
) -> dict[str, Any]:
    point(settings, endpoint, namespace)
    start = time.perf_counter_ns()
    items = data.sample(rows, "r", seed=rows)
    sample_s = ms_since(start) / 1000
    say(f"read cost: loading {rows:,} rows through the seed path (batch_put) ...")
    step = max(25, rows // 10 // 25 * 25)
    loaded_at = time.perf_counter()

    def progress(done: int) -> None:
        if rows >= 10_000 and (done % step == 0 or done == rows):
            rate = done / (time.perf_counter() - loaded_at)
            say(f"  {done:>7,}/{rows:,} ({rate:,.0f} items/s)")

    start = time.perf_counter_ns()
    written = seed.write(items, progress)
    load_s = ms_since(start) / 1000
    assert written == rows
    say(f"read cost: {rows:,} rows loaded in {load_s:.1f}s ({rows / load_s:,.0f} items/s)")
    expected = sum(1 for item in items if item.pclass == 1 and item.sex == "female")
    return {
        "rows": rows,
        "sample_seconds": round(sample_s, 2),
        "load_seconds": round(load_s, 2),
        "load_items_per_s": round(rows / load_s, 1),
        "matching_rows": expected,
    }


def page_plan(settings: Settings, endpoint: str, namespace: str, pages: int) -> dict[str, Any]:
    """Follow the filtered listing in this process through the data service, recording every
    DynamoDB call: operation, index, key condition, ScannedCount per page."""
    table_registry.configure_model(PassengerTable, settings, endpoint, namespace)
    service = PassengerDataService()
    recorder = CallRecorder().attach()
    found: list[dict[str, Any]] = []
    cursor = None
    try:
        for _ in range(pages):
            before = len(recorder.calls)
            page = service.page(PAGE_LIMIT, cursor, **FILTER)
            calls = recorder.calls[before:]
            assert all(i.pclass == 1 and i.sex == "female" for i in page.items)
            found.append(
                {
                    "items": len(page.items),
                    "scanned_count": page.scanned_count,
                    "calls": [
                        {
                            "operation": call["operation"],
                            "index": call["params"].get("IndexName"),
                            "key_condition": call["params"].get("KeyConditionExpression"),
                            "filter": call["params"].get("FilterExpression"),
                            "scanned_count": call.get("scanned_count"),
                            "count": call.get("count"),
                        }
                        for call in calls
                    ],
                    "ids": [i.passenger_id for i in page.items],
                }
            )
            cursor = page.next_cursor
            if cursor is None:
                break
        first_query = next((c["params"] for c in recorder.calls if c["operation"] == "Query"), None)
    finally:
        recorder.detach()
    return {"pages": found, "first_query_params": first_query}


def time_reads(
    app: AppProcess, bare: Any, query_params: dict[str, Any], rounds: int, pages: int
) -> dict[str, Any]:
    """p50 of the filtered page over HTTP (first page, and following pages via next_cursor),
    and of the same Query sent bare to the same server (the server's own time), also with
    Limit=1 (what the server spends on the table rather than on the 50 items it returns)."""
    client = HttpClient(app.port)
    first: list[float] = []
    following: list[float] = []
    bare_ms: list[float] = []
    bare_one_ms: list[float] = []
    paired: list[float] = []  # per round: first page over HTTP minus the bare Query
    first_ids: list[str] = []
    one_item = {**query_params, "Limit": 1}
    try:
        client.get_json(LIST_PATH)  # warm-up
        bare._make_api_call("Query", query_params)
        with no_gc():
            for _ in range(rounds):
                start = time.perf_counter_ns()
                bare._make_api_call("Query", query_params)
                bare_ms.append(ms_since(start))
                start = time.perf_counter_ns()
                bare._make_api_call("Query", one_item)
                bare_one_ms.append(ms_since(start))
                path = LIST_PATH
                for number in range(pages):
                    start = time.perf_counter_ns()
                    status, body = client.get(path)
                    elapsed = ms_since(start)
                    if status != 200:
                        raise RuntimeError(f"GET {path}: {status} {body[:300]!r}")
                    (first if number == 0 else following).append(elapsed)
                    if number == 0:
                        paired.append(elapsed - bare_ms[-1])
                    answer = json.loads(body)
                    if number == 0:
                        first_ids = [item["passenger_id"] for item in answer["items"]]
                    if not answer["next_cursor"]:
                        break
                    path = f"{LIST_PATH}&cursor={answer['next_cursor']}"
    finally:
        client.close()
    return {
        "http_first_page": summary(first),
        "http_following_pages": summary(following) if following else None,
        "http_all_pages": summary(first + following),
        "bare_query_first_page": summary(bare_ms),
        "bare_query_limit_1": summary(bare_one_ms),
        "http_minus_bare_query_p50_ms": round(percentile(paired, 50), 3),
        "first_page_ids": first_ids,
    }


def read_cost(
    settings: Settings,
    endpoint: str,
    data: Data,
    sizes: tuple[int, int],
    run: str,
    work: Path,
    python: str,
) -> dict[str, Any]:
    small, large = sizes
    namespaces = {small: f"{run}-r{small}", large: f"{run}-r{large}"}
    loads = {rows: load_table(settings, endpoint, data, namespaces[rows], rows) for rows in sizes}
    apps = {
        rows: AppProcess(f"read-{rows}", endpoint, namespaces[rows], work, python=python)
        for rows in sizes
    }
    bare = bare_client(endpoint, settings)
    out: dict[str, Any] = {"filter": LIST_PATH, "sizes": {}}
    try:
        say("read cost: starting one app process per table")
        for app in apps.values():
            app.start()
        for app in apps.values():
            app.wait_ready()
        for rows in sizes:
            plan = page_plan(settings, endpoint, namespaces[rows], pages=3)
            query = plan["first_query_params"]
            assert query is not None, "the filtered page sent no Query"
            # 100k rows: moto answers a GSI Query in seconds (see the notes), so fewer rounds.
            rounds = 20 if rows <= 10_000 else 5
            say(f"read cost: {rows:,} rows, {rounds} rounds of up to 3 pages over HTTP")
            timing = time_reads(apps[rows], bare, query, rounds, pages=3)
            ids_match = timing.pop("first_page_ids") == plan["pages"][0]["ids"]
            if not ids_match:
                say("read cost: WARNING the app's first page differs from the data service's")
            for page in plan["pages"]:
                page.pop("ids")
            full = [p["scanned_count"] for p in plan["pages"] if p["items"] == PAGE_LIMIT]
            out["sizes"][str(rows)] = {
                **loads[rows],
                "pages": plan["pages"],
                "examined_per_full_page": sum(full) / len(full) if full else None,
                "http_first_page_matches_service": ids_match,
                "query_sent": query,
                **timing,
            }
            say(
                f"read cost: {rows:,} rows: examined/page {full}, "
                f"HTTP p50 {timing['http_first_page']['p50_ms']:.1f} ms, "
                f"bare Query p50 {timing['bare_query_first_page']['p50_ms']:.1f} ms"
            )
    finally:
        for app in apps.values():
            app.stop()
    s, lg = out["sizes"][str(small)], out["sizes"][str(large)]

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    out["ratios_large_over_small"] = {
        "examined_per_page": ratio(lg["examined_per_full_page"], s["examined_per_full_page"]),
        "http_first_page_p50": ratio(
            lg["http_first_page"]["p50_ms"], s["http_first_page"]["p50_ms"]
        ),
        "http_all_pages_p50": ratio(lg["http_all_pages"]["p50_ms"], s["http_all_pages"]["p50_ms"]),
        "bare_query_p50": ratio(
            lg["bare_query_first_page"]["p50_ms"], s["bare_query_first_page"]["p50_ms"]
        ),
        "bare_query_limit_1_p50": ratio(
            lg["bare_query_limit_1"]["p50_ms"], s["bare_query_limit_1"]["p50_ms"]
        ),
        "rows": large / small,
    }
    return out


# ----- machine and report -------------------------------------------------------------------------
def app_runtime(python: str) -> dict[str, Any]:
    """What uvicorn will pick in the app's interpreter: httptools/uvloop or h11/asyncio."""
    code = (
        "import importlib.util as u, json, sys;"
        "print(json.dumps({'python': sys.version.split()[0],"
        "'httptools': bool(u.find_spec('httptools')), 'uvloop': bool(u.find_spec('uvloop'))}))"
    )
    try:
        found: dict[str, Any] = json.loads(
            subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
        )
    except (subprocess.CalledProcessError, ValueError, OSError):
        return {"interpreter": python}
    found["interpreter"] = python
    found["uvicorn_http"] = "httptools" if found["httptools"] else "h11"
    found["uvicorn_loop"] = "uvloop" if found["uvloop"] else "asyncio"
    return found


def machine() -> dict[str, Any]:
    versions = {}
    for package in ("fastapi", "starlette", "uvicorn", "pydantic", "pynamodb", "botocore", "moto"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    commit = ""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
        "git_commit": commit,
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: dict[str, Any]) -> tuple[str, bool]:
    """The printed table; True when both targets of the issue are met."""
    o, r, b = results["overhead"], results["read_cost"], results["bulk_load"]
    m, rt = results["machine"], results["app_runtime"]
    small, large = (int(size) for size in results["config"]["sizes"])
    rs, rl = r["sizes"][str(small)], r["sizes"][str(large)]
    ratios = r["ratios_large_over_small"]
    width = 106
    lines: list[str] = []

    def row(
        metric: str, value: str = "", ratio: str = "", target: str = "", result: str = ""
    ) -> None:
        lines.append(f"{metric:<52}{value:>25}{ratio:>9}{target:>12}{result:>8}".rstrip())

    def p(s: dict[str, Any] | None) -> str:
        return f"p50 {s['p50_ms']:.2f}  p99 {s['p99_ms']:.2f} ms" if s else "-"

    def x(value: float | None) -> str:
        return f"{value:.2f}x" if value is not None else "-"

    def vs(a: float, b: float, unit: str = "ms", digits: int = 1) -> str:
        return f"{a:,.{digits}f} vs {b:,.{digits}f} {unit}".rstrip()

    lines.append("=" * width)
    lines.append(
        f"app-lib bench  {results['timestamp']}  commit {m['git_commit'] or '?'}  "
        f"python {m['python']}  nproc {m['nproc']}  took {results['elapsed_seconds']:.0f}s  "
        f"loadavg {m['loadavg_start'][0]} -> {m['loadavg_end'][0]}"
    )
    lines.append(
        f"app: python -m app_lib serve, uvicorn {m['versions'].get('uvicorn', '?')} "
        f"(http={rt.get('uvicorn_http', '?')}, loop={rt.get('uvicorn_loop', '?')}), one process;"
        f" database: moto {m['versions'].get('moto', '?')} server; all on 127.0.0.1"
    )
    lines.append("=" * width)
    row("metric", "value", "ratio", "target", "result")
    lines.append("-" * width)

    info_ratio = o["ratios"]["app_http_info_p50"]
    overhead_ok = info_ratio <= OVERHEAD_TARGET
    bare = o["bare_getitem"]
    pyn = o["pynamodb_get_in_process"]
    server = o["app_server_side_info"]
    lines.append(
        f"OVERHEAD  GET one passenger by id: {o['n']} interleaved rounds, keep-alive HTTP/1.1"
    )
    row("  bare botocore GetItem, same item and server", p(bare), "1.00x")
    row(
        "  app GET /api/v1/passengers/{id}, LOG_LEVEL=INFO",
        p(o["app_http_info"]),
        x(info_ratio),
        f"<= {OVERHEAD_TARGET:.2f}x",
        verdict(overhead_ok),
    )
    row("    p99 ratio", "", x(o["ratios"]["app_http_info_p99"]))
    row("    app minus bare, p50", f"+{o['app_minus_bare_p50_ms']['app_http_info']:.2f} ms")
    row(
        "    app CPU per request (its own GetItem included)",
        f"{o['app_cpu_ms_per_request_info']:.2f} ms",
    )
    row(
        "  same app, LOG_LEVEL=WARNING (no access log)",
        p(o["app_http_warning"]),
        x(o["ratios"]["app_http_warning_p50"]),
    )
    lines.append("  where the app's time goes (p50):")
    row(
        "    PynamoDB Model.get, in the bench process",
        p(pyn),
        x(o["ratios"]["pynamodb_get_in_process_p50"]),
    )
    if server:
        row("    app server-side (its access log duration_ms)", p(server))
        row(
            "    = framework: server-side minus Model.get",
            f"{server['p50_ms'] - pyn['p50_ms']:+.2f} ms",
        )
        row(
            "    = HTTP hop: app minus server-side",
            f"{o['app_http_info']['p50_ms'] - server['p50_ms']:+.2f} ms",
        )
    row("    GET /health over HTTP (no database)", p(o["health_http"]))

    examined_ratio = ratios["examined_per_page"]
    examined_ok = examined_ratio is not None and examined_ratio <= EXAMINED_TARGET
    lines.append(f"READ COST  GET {r['filter']}: {small:,} vs {large:,} rows")
    calls = {
        f"{c['operation']} on {'GSI ' + c['index'] if c['index'] else 'the table'}"
        + (" + FilterExpression" if c["filter"] else "")
        for size in (rs, rl)
        for page in size["pages"]
        for c in page["calls"]
    }
    per_page = {len(page["calls"]) for size in (rs, rl) for page in size["pages"]}
    row(
        "  DynamoDB requests per page",
        f"{'/'.join(map(str, sorted(per_page)))}: " + ", ".join(sorted(calls)),
    )
    key = rl["pages"][0]["calls"][0]["key_condition"] if rl["pages"][0]["calls"] else "-"
    row("    key condition (pclass = 1, begins_with female#)", key)
    row(
        "  items examined (ScannedCount) per full page",
        vs(rs["examined_per_full_page"] or 0, rl["examined_per_full_page"] or 0, "", 0),
        x(examined_ratio),
        f"<= {EXAMINED_TARGET:.2f}x",
        verdict(examined_ok),
    )
    row(
        "  rows matching the filter",
        vs(rs["matching_rows"], rl["matching_rows"], "", 0),
        x(rl["matching_rows"] / max(1, rs["matching_rows"])),
    )
    row(
        "  HTTP p50, first page",
        vs(rs["http_first_page"]["p50_ms"], rl["http_first_page"]["p50_ms"]),
        x(ratios["http_first_page_p50"]),
        "",
        "moto*",
    )
    row(
        "  HTTP p50, pages 1-3 via next_cursor",
        vs(rs["http_all_pages"]["p50_ms"], rl["http_all_pages"]["p50_ms"]),
        x(ratios["http_all_pages_p50"]),
    )
    row(
        "  the same Query sent bare to moto, p50",
        vs(rs["bare_query_first_page"]["p50_ms"], rl["bare_query_first_page"]["p50_ms"]),
        x(ratios["bare_query_p50"]),
    )
    row(
        "  the same Query with Limit=1, bare, p50",
        vs(rs["bare_query_limit_1"]["p50_ms"], rl["bare_query_limit_1"]["p50_ms"]),
        x(ratios["bare_query_limit_1_p50"]),
    )
    row(
        "  app minus bare Query, median of pairs",
        f"{rs['http_minus_bare_query_p50_ms']:+.1f} vs "
        f"{rl['http_minus_bare_query_p50_ms']:+.1f} ms",
    )
    row(
        f"  seed path load of the {large:,}-row table",
        f"{rl['load_items_per_s']:,.0f} items/s in {rl['load_seconds']:.0f}s",
    )

    lines.append(f"BULK LOAD  {b['items']:,} items each into a fresh table, same server")
    row(
        "  seed path: seed.write, BatchWriteItem x25",
        f"{b['batch_put_items_per_s']:,.0f} items/s",
        x(b["ratio_batch_over_save"]),
    )
    row(
        "  one save() (conditional PutItem) per item",
        f"{b['save_items_per_s']:,.0f} items/s",
        "1.00x",
    )
    lines.append("-" * width)
    lines.extend(
        [
            "notes:",
            "  ratios: app/bare for latency, big/small table for read cost, batch/save for bulk.",
            "  Examined items are DynamoDB's ScannedCount: the filter is one Query on GSI",
            "  by-pclass whose key condition selects just the page: flat however big the table is.",
            "  * The page TIME is not flat here because moto answers a GSI Query by walking and",
            "  sorting every item of the table in Python, and spends 2-3 ms serialising each item",
            "  it returns (compare 'Limit=1' with the 50-item page): that is the test server, not",
            "  the app: its own share ('app minus bare Query', 50 items) is a few ms at 1k and",
            "  within the noise of a one-second moto call at 100k.",
            "  Against DynamoDB a Query's latency depends on the page, not on the table size.",
            "  Latency ratios depend on the baseline, here moto's ~5 ms of Python per GetItem:",
            "  'app minus bare' (ms) is the figure that carries over; one noisy 2-core machine",
            "  runs client, app and moto, so compare figures of the same run (results.json).",
        ]
    )
    lines.append("=" * width)
    return "\n".join(lines), overhead_ok and examined_ok


# ----- main ---------------------------------------------------------------------------------------
def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1k vs 10k rows, fewer rounds")
    parser.add_argument("--rounds", type=int, help="overhead rounds (default 1000, quick 300)")
    parser.add_argument("--large", type=int, help="rows of the big table (default 100000)")
    parser.add_argument("--bulk", type=int, help="items per bulk-load method (default 2000)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--app-python",
        default=sys.executable,
        help="interpreter for the app processes (to try e.g. uvicorn[standard] in another venv)",
    )
    args = parser.parse_args(argv)
    small = 1_000
    large = args.large or (10_000 if args.quick else 100_000)
    rounds = args.rounds or (300 if args.quick else 1_000)
    bulk = args.bulk or (500 if args.quick else 2_000)

    signal.signal(signal.SIGTERM, _terminate)
    settings = get_settings()
    data = Data()
    run = f"b{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    results: dict[str, Any] = {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {
            "sizes": [small, large],
            "overhead_rounds": rounds,
            "bulk_items": bulk,
            "page_limit": PAGE_LIMIT,
            "quick": args.quick,
            "targets": {
                "app_over_bare_getitem_p50": OVERHEAD_TARGET,
                "examined_large_over_small": EXAMINED_TARGET,
            },
        },
        "machine": machine(),
        "app_runtime": app_runtime(args.app_python),
    }
    server = EmbeddedServer()
    try:
        with tempfile.TemporaryDirectory(prefix="app-lib-bench-") as tmp:
            work = Path(tmp)
            # The moto child inherits an ignored SIGINT: on Ctrl-C it is stopped below, cleanly.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                endpoint = server.start()
            finally:
                signal.signal(signal.SIGINT, previous)
            say(f"moto server at {endpoint}")
            results["bulk_load"] = bulk_load(settings, endpoint, data, bulk, run)
            results["overhead"] = overhead(
                settings, endpoint, data, rounds, run, work, args.app_python
            )
            results["read_cost"] = read_cost(
                settings, endpoint, data, (small, large), run, work, args.app_python
            )
    except KeyboardInterrupt:
        say("interrupted: stopping every process this run started")
        return 130
    finally:
        server.stop()
    results["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    results["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    table, ok = report(results)
    results["targets_met"] = ok
    results["table"] = table.splitlines()
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table)
    print(f"wrote {args.output} (total {results['elapsed_seconds']:.0f}s)")
    return 1 if args.strict and not ok else 0
