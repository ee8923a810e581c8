"""The embedded database as users see it, and the app under concurrent clients.

- `as_users_see_it`: `python -m app_lib serve` exactly as `make run` starts it (its own embedded
  database, DATA_DIR in a temporary directory, seeded, a jobs worker thread, LOG_LEVEL=INFO):
  the filtered page of 50 one at a time, then bursts of ten concurrent `limit=1000` pages.
- `scale_out`: GET by id from 8 concurrent clients, app-lib with 1 and with 2 uvicorn workers,
  all against one shared embedded server.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import GET_PREFIX, LIST_PATH, app_lib_env, ms_since, say
from bench.procs import (
    HttpClient,
    ServerProcess,
    free_port,
    percentile,
    process_cpu_seconds,
    summary,
    uvicorn_argv,
)

PAGE_P50_TARGET_MS = 20.0
BIG_PAGE_PATH = "/api/v1/passengers?limit=1000"


def _concurrently(
    clients: int,
    work: Any,
    seconds: float,
    max_per_client: int,
) -> tuple[list[list[tuple[float, int]]], float]:
    """`clients` threads, each calling work(client_number, request_number) -> status until
    `seconds` pass or it made `max_per_client` calls; (ms, status) per call, wall seconds."""
    results: list[list[tuple[float, int]]] = [[] for _ in range(clients)]
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]

    def run(number: int) -> None:
        start_line.wait(timeout=60)
        for i in range(max_per_client):
            if time.perf_counter() >= deadline[0]:
                break
            begun = time.perf_counter_ns()
            status = work(number, i)
            results[number].append((ms_since(begun), status))

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start_line.wait(timeout=60)
    for thread in threads:
        thread.join(timeout=seconds + 120)
    return results, time.perf_counter() - began


def as_users_see_it(work: Path, *, pages: int, bursts: int) -> dict[str, Any]:
    port = free_port()
    data_dir = work / "make-run-data"
    env = {
        "DYNAMODB_HOST": "embedded",
        "DATA_DIR": str(data_dir),
        "APP_ENV": "dev",
        "APP_NAMESPACE": "",
        "LOG_LEVEL": "INFO",
        "SEED_ON_START": "true",
        "RUN_WORKER": "true",
    }
    argv = [sys.executable, "-m", "app_lib", "serve", "--host", "127.0.0.1", "--port", str(port)]
    app = ServerProcess("make-run", argv, env, work, port=port)
    out: dict[str, Any] = {"command": "python -m app_lib serve", "env": env}
    try:
        say("embedded: starting the app as `make run` does (DATA_DIR in a temporary directory)")
        app.start()
        out["ready_seconds"] = round(app.wait_ready(), 2)
        out["processes"] = len(app.tree())
        client = HttpClient(app.port)
        try:
            count = len(client.get_json(LIST_PATH)["items"])
            for _ in range(10):
                client.get(LIST_PATH)
            timed: list[float] = []
            statuses: list[int] = []
            for _ in range(pages):
                begun = time.perf_counter_ns()
                status, _body = client.get(LIST_PATH)
                timed.append(ms_since(begun))
                statuses.append(status)
            big = len(client.get_json(BIG_PAGE_PATH)["items"])
        finally:
            client.close()
        page = summary(timed)
        out["page_of_50"] = {
            "path": LIST_PATH,
            "items": count,
            "non_200": sum(1 for s in statuses if s != 200),
            **page,
            "target_p50_ms": PAGE_P50_TARGET_MS,
            "met": page["p50_ms"] <= PAGE_P50_TARGET_MS and all(s == 200 for s in statuses),
        }
        say(f"embedded: page of 50 p50 {page['p50_ms']:.1f} ms; {bursts} bursts of 10 x limit=1000")

        def one_big(number: int, i: int) -> int:
            fresh = HttpClient(app.port, timeout=60)
            try:
                return fresh.get(BIG_PAGE_PATH)[0]
            finally:
                fresh.close()

        burst_results = []
        for _ in range(bursts):
            results, wall = _concurrently(10, one_big, seconds=120, max_per_client=1)
            calls = [call for client_calls in results for call in client_calls]
            burst_results.append(
                {
                    "statuses": sorted(status for _, status in calls),
                    "wall_seconds": round(wall, 2),
                    "slowest_ms": round(max(ms for ms, _ in calls), 1),
                }
            )
        all_statuses = [s for burst in burst_results for s in burst["statuses"]]
        out["ten_concurrent_limit_1000"] = {
            "path": BIG_PAGE_PATH,
            "items_per_page": big,
            "bursts": burst_results,
            "answered_200": sum(1 for s in all_statuses if s == 200),
            "requests": len(all_statuses),
            "met": len(all_statuses) == 10 * bursts and all(s == 200 for s in all_statuses),
        }
    finally:
        out["leftover_processes_killed"] = app.stop()
    return out


def _started_workers(server: ServerProcess) -> int:
    text = server.log_path.read_text(encoding="utf-8", errors="replace")
    return len(re.findall(r"Application startup complete", text))


def scale_out(
    endpoint: str,
    namespace: str,
    database_pid: int | None,
    ids: list[str],
    work: Path,
    *,
    workers: tuple[int, ...],
    clients: int,
    seconds: float,
) -> dict[str, Any]:
    out: dict[str, Any] = {"clients": clients, "seconds": seconds, "by_workers": {}}
    for count in workers:
        port = free_port()
        argv = uvicorn_argv("app_lib.main:app_factory", port, workers=count, factory=True)
        env = app_lib_env(endpoint, namespace)
        server = ServerProcess(f"scale-{count}", argv, env, work, port=port)
        try:
            say(f"scale: app-lib with --workers {count}")
            server.start()
            server.wait_ready()
            deadline = time.monotonic() + 60
            while _started_workers(server) < count and time.monotonic() < deadline:
                time.sleep(0.2)
            pids = server.tree()
            connections = [HttpClient(port) for _ in range(clients)]

            def get(number: int, i: int, connections: list[HttpClient] = connections) -> int:
                pid = ids[(number * 7919 + i) % len(ids)]
                return connections[number].get(GET_PREFIX + pid)[0]

            try:
                _concurrently(clients, get, seconds=1.0, max_per_client=50)  # warm-up
                cpu_before = {pid: process_cpu_seconds(pid) for pid in pids}
                db_before = process_cpu_seconds(database_pid) if database_pid else 0.0
                client_before = time.process_time()
                results, wall = _concurrently(clients, get, seconds=seconds, max_per_client=20_000)
                client_cpu = time.process_time() - client_before
                cpu = {pid: process_cpu_seconds(pid) - cpu_before[pid] for pid in pids}
                db_cpu = process_cpu_seconds(database_pid) - db_before if database_pid else 0.0
            finally:
                for connection in connections:
                    connection.close()
            calls = [call for client_calls in results for call in client_calls]
            latencies = [ms for ms, _ in calls]
            total = len(calls)
            busy = {str(pid): round(seconds_used, 2) for pid, seconds_used in cpu.items()}
            out["by_workers"][str(count)] = {
                "workers_started": _started_workers(server),
                "requests": total,
                "non_200": sum(1 for _, status in calls if status != 200),
                "requests_per_second": round(total / wall, 1),
                "p50_ms": round(percentile(latencies, 50), 2),
                "p99_ms": round(percentile(latencies, 99), 2),
                "app_cpu_ms_per_request": round(sum(cpu.values()) / total * 1000, 3),
                "app_cpu_seconds_by_process": busy,
                "database_cpu_ms_per_request": round(db_cpu / total * 1000, 3),
                "client_cpu_ms_per_request": round(client_cpu / total * 1000, 3),
                "cores_busy": {
                    "app": round(sum(cpu.values()) / wall, 2),
                    "database": round(db_cpu / wall, 2),
                    "client": round(client_cpu / wall, 2),
                    "total": round((sum(cpu.values()) + db_cpu + client_cpu) / wall, 2),
                },
            }
            say(
                f"scale: {count} worker(s): {total / wall:,.0f} requests/s, "
                f"p99 {percentile(latencies, 99):.1f} ms"
            )
        finally:
            server.stop()
    return out
