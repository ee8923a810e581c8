"""`make bench`: the sections, the printed table and bench/results.json."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app_lib.common import feature as features
from app_lib.common.config import get_settings
from app_lib.common.data import table_registry
from app_lib.common.embedded import EmbeddedServer
from app_lib.features.passengers import seed
from bench import cpu, profile, readcost, served
from bench.common import GET_PREFIX, LIST_PATH, Data, app_lib_env, bare_client, point, say
from bench.procs import ServerProcess, free_port, uvicorn_argv

RESULTS = Path(__file__).parent / "results.json"
SECTIONS = ("cpu", "profile", "embedded", "scale", "read", "commerce")


# ----- machine ------------------------------------------------------------------------------------
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
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
        "git_commit": commit,
    }


# ----- report -------------------------------------------------------------------------------------
WIDTH = 104


def verdict(ok: bool | None) -> str:
    return "" if ok is None else "PASS" if ok else "FAIL"


def _row(lines: list[str], label: str, *cells: str) -> None:
    """label, value, ratio, target, PASS/FAIL, latency (or a remark)."""
    widths = (14, 8, 10, 5, 24)
    text = f"{label:<44}" + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=False))
    lines.append(text.rstrip())


def _cpu_lines(c: dict[str, Any], lines: list[str]) -> None:
    s, r = c["series"], c["ratios"]
    cfg = c["config"]
    per_series = cfg["rounds"] * cfg["blocks"]
    lines.append(
        f"1. CPU PER REQUEST of the serving process: {cfg['rounds']} interleaved rounds, "
        f"{per_series * cfg['get_per_block']} GETs / {per_series * cfg['page_per_block']} pages"
        " per series"
    )
    _row(lines, "", "CPU ms/req", "ratio", "target", "", "latency p50 / p99 ms")

    def lat(name: str) -> str:
        latency = s[name]["latency"]
        return f"{latency['p50_ms']:.2f} / {latency['p99_ms']:.2f}"

    def cpu_ms(name: str) -> str:
        return f"{s[name]['cpu_ms_per_request']:.2f}"

    get, page = r["get_app_over_minimal"], r["page_app_over_bare_query"]
    lines.append("  GET /api/v1/passengers/{id}")
    _row(
        lines,
        "    minimal FastAPI + botocore GetItem",
        cpu_ms("minimal_get"),
        "1.00x",
        "",
        "",
        lat("minimal_get"),
    )
    _row(
        lines,
        "    app-lib (LOG_LEVEL=INFO: access line)",
        cpu_ms("app_get"),
        f"{get['median_of_rounds']:.2f}x",
        f"<= {get['target']:.2f}x",
        verdict(get["met"]),
        lat("app_get"),
    )
    lines.append(
        f"      ratio by round: {' '.join(f'{v:.2f}' for v in get['rounds'])}"
        f"   (idle CPU kept in: {get['with_background_median_of_rounds']:.2f}x)"
    )
    _row(
        lines,
        "    (bare botocore GetItem, client CPU)",
        cpu_ms("bare_getitem"),
        "",
        "",
        "",
        lat("bare_getitem"),
    )
    lines.append(f"  GET {LIST_PATH}")
    _row(
        lines,
        "    bare botocore Query, client CPU",
        cpu_ms("bare_query"),
        "1.00x",
        "",
        "",
        lat("bare_query"),
    )
    _row(
        lines,
        "    app-lib",
        cpu_ms("app_page"),
        f"{page['median_of_rounds']:.2f}x",
        f"<= {page['target']:.2f}x",
        verdict(page["met"]),
        lat("app_page"),
    )
    lines.append(
        f"      ratio by round: {' '.join(f'{v:.2f}' for v in page['rounds'])}"
        f"   (idle CPU kept in: {page['with_background_median_of_rounds']:.2f}x)"
    )
    idle_app = s["app_get"]["with_background"]["idle_cpu_ms_per_s"]
    idle_minimal = s["minimal_get"]["with_background"]["idle_cpu_ms_per_s"]
    lines.append(
        f"  idle servers, no request: app-lib {idle_app:.1f}, minimal {idle_minimal:.1f} ms CPU/s"
        " (taken off each block by its duration)"
    )
    q = cfg["query"]
    lines.append(
        f"      the Query app-lib sends: {q.get('IndexName')} {q.get('KeyConditionExpression')}"
        f" {json.dumps(q.get('ExpressionAttributeValues'), separators=(',', ':'))}"
        f" Limit {q.get('Limit')}"
    )


def _embedded_lines(e: dict[str, Any], lines: list[str]) -> None:
    page, big = e["page_of_50"], e["ten_concurrent_limit_1000"]
    lines.append(
        "2. THE EMBEDDED DATABASE AS USERS SEE IT: python -m app_lib serve (as make run), "
        "DATA_DIR in a temp dir"
    )
    _row(
        lines,
        f"  page of 50 at 891 rows, {page['n']} requests",
        f"{page['p50_ms']:.1f} ms",
        "",
        f"<= {page['target_p50_ms']:.0f} ms",
        verdict(page["met"]),
        f"p50 / p99 {page['p50_ms']:.1f} / {page['p99_ms']:.1f}",
    )
    slowest = max(b["slowest_ms"] for b in big["bursts"])
    _row(
        lines,
        f"  10 concurrent limit=1000 pages x {len(big['bursts'])} bursts",
        f"{big['answered_200']}/{big['requests']} 200",
        "",
        "all 200",
        verdict(big["met"]),
        f"slowest {slowest:,.0f} ms",
    )


def _scale_lines(sc: dict[str, Any], lines: list[str]) -> None:
    lines.append(
        f"3. CONCURRENCY AND SCALE-OUT: GET by id, {sc['clients']} clients, {sc['seconds']:.0f} s "
        "each, one shared EmbeddedServer"
    )
    lines.append(
        f"  {'uvicorn workers':<16}{'req/s':>7}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'CPU ms/req: app':>17}{'db':>6}{'client':>8}{'cores busy':>12}"
    )
    for workers, w in sc["by_workers"].items():
        cores = w["cores_busy"]
        lines.append(
            f"  {workers:<16}{w['requests_per_second']:>7,.0f}{w['p50_ms']:>8.1f}"
            f"{w['p99_ms']:>8.1f}{w['app_cpu_ms_per_request']:>17.2f}"
            f"{w['database_cpu_ms_per_request']:>6.2f}{w['client_cpu_ms_per_request']:>8.2f}"
            f"{cores['total']:>12.2f}" + (f"  ({w['non_200']} non-200)" if w["non_200"] else "")
        )
    lines.append(
        "  cores busy = (app + db + client CPU) / wall time, of the 2 the machine has (and shares)"
    )


def _profile_lines(p: dict[str, Any], lines: list[str]) -> None:
    lines.append(
        "4. WHERE THE CPU GOES: cProfile of the serving process (bench/profile.py), "
        "ms per request scaled to section 1"
    )
    columns = (
        ("minimal_get", "minimal GET"),
        ("app_get", "app GET"),
        ("bare_query", "bare Query"),
        ("app_page", "app page"),
    )
    present = [(k, label) for k, label in columns if k in p]
    layers: list[str] = []
    for key, _ in present:
        layers += [name for name in p[key]["layers_ms"] if name not in layers]
    order = sorted(layers, key=lambda n: -p.get("app_page", {}).get("layers_ms", {}).get(n, 0.0))
    lines.append(f"  {'layer (own time)':<42}" + "".join(f"{label:>12}" for _, label in present))
    for name in order:
        values = [p[key]["layers_ms"].get(name, 0.0) for key, _ in present]
        if max(values) < 0.05:
            continue
        lines.append(f"  {name:<42}" + "".join(f"{v:>12.2f}" for v in values))
    lines.append(
        f"  {'total':<42}"
        + "".join(f"{p[key]['measured_ms_per_request']:>12.2f}" for key, _ in present)
    )
    gc_cells = []
    for key, _ in present:
        collector = p[key].get("gc")
        if collector is None:
            gc_cells.append(f"{'-':>12}")
            continue
        full = collector["runs_per_request"][2] * p[key]["requests"]
        mark = f"({full:.0f}F)" if full else ""
        gc_cells.append(f"{mark + format(collector['cpu_ms_per_request'], '.2f'):>12}")
    lines.append(f"  {'  of which garbage collector (own clock)':<42}" + "".join(gc_cells))
    labels: list[str] = []
    for key in ("app_get", "app_page"):
        labels += [n for n in p.get(key, {}).get("hotspots_ms", {}) if n not in labels]
    lines.append(f"  {'hot spots (inclusive)':<42}{'app GET':>12}{'app page':>12}")
    for label in labels:
        get_ms = p.get("app_get", {}).get("hotspots_ms", {}).get(label)
        page_ms = p.get("app_page", {}).get("hotspots_ms", {}).get(label)
        cells = "".join(f"{v:>12.2f}" if v is not None else f"{'-':>12}" for v in (get_ms, page_ms))
        lines.append(f"  {label[:42]:<42}{cells}")
    micro = p.get("in_process_ms", {})
    if micro:
        lines.append(
            "  the same pieces in this process, no profiler (CPU ms, least of 7 interleaved turns)"
        )
        for label, value in micro.items():
            lines.append(f"    {label:<62}{value:>8.3f}")


def _read_lines(rc: dict[str, Any], lines: list[str]) -> None:
    small, large = (int(k) for k in rc["sizes"])
    s, lg = rc["sizes"][str(small)], rc["sizes"][str(large)]
    b = rc["bulk_load"]
    lines.append(f"5. READ COST AND BULK LOAD: {small:,} vs {large:,} rows, in this process")
    calls = {
        f"{c['operation']} on {c['index'] or 'the table'}"
        + (" + FilterExpression" if c["filter"] else "")
        for size in (s, lg)
        for page in size["pages"]
        for c in page["calls"]
    }
    _row(lines, "  DynamoDB requests per page of 50", ", ".join(sorted(calls)))
    _row(
        lines,
        "  items examined (ScannedCount) per page",
        f"{s['examined_per_full_page'] or 0:.0f} vs {lg['examined_per_full_page'] or 0:.0f}",
        f"{rc['examined_ratio'] or 0:.2f}x",
        f"<= {rc['examined_target']:.2f}x",
        verdict(rc["met"]),
    )
    _row(
        lines,
        "  bare Query p50 (moto walks the index)",
        f"{s['bare_query_p50_ms']:,.0f} vs {lg['bare_query_p50_ms']:,.0f} ms",
    )
    _row(
        lines,
        "  bulk: seed path vs one save() per item",
        f"{b['seed_path_items_per_s']:,.0f} vs {b['save_items_per_s']:,.0f}/s",
        f"{b['ratio']:.2f}x",
    )
    _row(lines, f"  seed path into the {large:,}-row table", f"{lg['load_items_per_s']:,.0f}/s")


def _commerce_lines(c: dict[str, Any], lines: list[str]) -> None:
    f, p = c["order_fetch"], c["order_placement"]
    lines.append(
        "6. COMMERCE (single table): an order with its items, and placing orders, in this process"
    )
    _row(
        lines,
        f"  order + {f['items']} items: {f['get_items_calls']} GetItems vs 1 Query",
        f"{f['get_items_ms_p50']} vs {f['query_ms_p50']} ms",
        f"{f['ratio_get_items_vs_query']:.2f}x",
    )
    threads = next(k for k in p if k.endswith("_threads"))
    _row(
        lines,
        "  placing orders (BatchGetItem + TransactWriteItems)",
        f"{p['orders_per_s_sequential']:,.0f}/s",
        "",
        "",
        "",
        f"{p[threads]:,.0f}/s on {threads.split('_')[-2]} threads",
    )


def report(results: dict[str, Any]) -> tuple[str, bool]:
    """The printed table; True when every target measured is met."""
    m = results["machine"]
    lines = ["=" * WIDTH]
    lines.append(
        f"app-lib bench  {results['timestamp']}  commit {m['git_commit'] or '?'}  python "
        f"{m['python']}  nproc {m['nproc']}  took {results['elapsed_seconds']:.0f}s  loadavg "
        f"{m['loadavg_start'][0]} -> {m['loadavg_end'][0]}"
    )
    lines.append(
        f"servers: uvicorn {m['versions'].get('uvicorn', '?')} --workers 1 --http httptools "
        "--loop uvloop --no-access-log --log-level info (app-lib: LOG_LEVEL=INFO)"
    )
    lines.append(
        f"database: one EmbeddedServer (moto {m['versions'].get('moto', '?')}, locked, no data "
        "dir), 891 passengers; all on 127.0.0.1"
    )
    lines.append("=" * WIDTH)
    met: list[bool] = []
    if "cpu" in results:
        _cpu_lines(results["cpu"], lines)
        met += [r["met"] for r in results["cpu"]["ratios"].values() if r["met"] is not None]
    if "embedded" in results:
        _embedded_lines(results["embedded"], lines)
        e = results["embedded"]
        met += [e["page_of_50"]["met"], e["ten_concurrent_limit_1000"]["met"]]
    if "scale" in results:
        _scale_lines(results["scale"], lines)
    if "profile" in results:
        _profile_lines(results["profile"], lines)
    if "read_cost" in results:
        _read_lines(results["read_cost"], lines)
        met.append(results["read_cost"]["met"])
    if "commerce" in results:
        _commerce_lines(results["commerce"], lines)
    lines.append("-" * WIDTH)
    lines += [
        "CPU per request: the serving process's user+system time (/proc/<pid>/stat) over its own",
        "requests, less what it spends idle; a bare botocore series: this process's thread CPU.",
        "Ratios: median of the per-round ratios (in a round the series take turns request by",
        "request). Absolute CPU and latency move with the shared machine's load; ratios barely.",
        "Profile: cProfile's shares scaled to section 1; it inflates code of many small calls",
        "(botocore parsing, PynamoDB deserialization): the no-profiler lines are the firm ones.",
    ]
    lines.append("=" * WIDTH)
    return "\n".join(lines), all(met)


# ----- main ---------------------------------------------------------------------------------------
def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests, 1k vs 10k rows")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of section 1 (default 5)")
    parser.add_argument("--large", type=int, help="rows of the big table (default 100000)")
    parser.add_argument(
        "--only", help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})"
    )
    parser.add_argument(
        "--profiles", type=Path, help="keep the cProfile files (NAME.pstats) in this directory"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    quick = args.quick
    rounds = args.rounds or (3 if quick else 5)
    large = args.large or (10_000 if quick else 100_000)

    signal.signal(signal.SIGTERM, _terminate)
    settings = get_settings()
    data = Data()
    run = f"b{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    results: dict[str, Any] = {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {"quick": quick, "rounds": rounds, "large": large, "sections": sorted(sections)},
        "machine": machine(),
    }
    server = EmbeddedServer()
    servers: list[ServerProcess] = []
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
            namespace = f"{run}-cmp"
            # Every table of every feature, before any app starts (apps starting together would
            # race to create them), then the 891 passengers once.
            features.discover()
            table_registry.configure(settings, endpoint, namespace)
            table_registry.create_tables()
            table = point(settings, endpoint, namespace)
            seed.write(data.rows)
            bare = bare_client(endpoint, settings)
            query = readcost.page_plan(settings, endpoint, namespace, pages=1)["first_query_params"]
            assert query is not None

            measured: dict[str, float] = {}
            if "cpu" in sections:
                say("cpu: starting app-lib and the minimal app (same uvicorn settings)")
                ports = free_port(), free_port()
                app = ServerProcess(
                    "app-lib",
                    uvicorn_argv("app_lib.main:app_factory", ports[0], factory=True),
                    app_lib_env(endpoint, namespace),
                    work,
                    port=ports[0],
                )
                minimal = ServerProcess(
                    "minimal",
                    uvicorn_argv("bench.minimal_app:app", ports[1]),
                    {"DYNAMODB_HOST": endpoint, "BENCH_TABLE": table},
                    work,
                    ready_path=GET_PREFIX + data.ids[0],
                    port=ports[1],
                )
                servers += [app, minimal]
                for one in (app, minimal):
                    one.start()
                for one in (app, minimal):
                    one.wait_ready()
                results["cpu"] = cpu.compare(
                    app,
                    minimal,
                    bare,
                    table,
                    query,
                    data.ids,
                    rounds=rounds,
                    blocks=4 if quick else 5,
                    get_block=40 if quick else 60,
                    page_block=8 if quick else 12,
                    idle_seconds=4.0 if quick else 6.0,
                )
                for one in (app, minimal):
                    one.stop()
                measured = {
                    name: s["cpu_ms_per_request"] for name, s in results["cpu"]["series"].items()
                }
            if "profile" in sections:
                if not measured:
                    say("profile: without section cpu, figures are unscaled profiler time")
                results["profile"] = profile.run_profiles(
                    endpoint,
                    namespace,
                    table,
                    bare,
                    query,
                    data.ids,
                    args.profiles or work,
                    measured,
                    gets=150 if quick else 300,
                    pages=30 if quick else 60,
                )
            if "embedded" in sections:
                results["embedded"] = served.as_users_see_it(
                    work, pages=50 if quick else 100, bursts=2 if quick else 3
                )
            if "scale" in sections:
                results["scale"] = served.scale_out(
                    endpoint,
                    namespace,
                    server.pid,
                    data.ids,
                    work,
                    workers=(1, 2),
                    clients=8,
                    seconds=4.0 if quick else 8.0,
                )
            if "read" in sections:
                results["read_cost"] = readcost.bulk_and_read_cost(
                    settings,
                    endpoint,
                    data,
                    run,
                    bare,
                    sizes=(1_000, large),
                    save_items=300 if quick else 500,
                )
            if "commerce" in sections:
                from bench import commerce  # its own tables, in a namespace of its own

                results["commerce"] = commerce.main(endpoint)
    except KeyboardInterrupt:
        say("interrupted: stopping every process this run started")
        return 130
    finally:
        for one in servers:
            one.stop()
        server.stop()
    results["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    results["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    table_text, ok = report(results)
    results["targets_met"] = ok
    results["table"] = table_text.splitlines()
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table_text)
    print(f"wrote {args.output} (total {results['elapsed_seconds']:.0f}s)")
    return 1 if args.strict and not ok else 0
