"""CPU per request, side by side: app-lib vs a minimal FastAPI app, app-lib's page vs bare botocore.

Every series runs in blocks, and the blocks of all series alternate (in a rotating order) within
each round, so a slow minute of the shared machine falls on all of them alike. An HTTP series'
CPU is the serving process's user + system time over its own blocks (/proc/<pid>/stat: every
thread, the threadpool included); a bare botocore series' CPU is this thread's CPU time. The
garbage collector stays on everywhere: collecting what a request allocated is part of its cost.

A server also spends CPU with no request at all (app-lib's db-monitor thread checks its tables
against a non-AWS endpoint every 2 s; uvicorn ticks). That cost is per second, not per request,
and the bench's pace would decide how much of it lands on each request: it is measured on the
idle servers first and taken off each block in proportion to the block's duration. The figures
with it are kept too (`with_background`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.common import GET_PREFIX, LIST_PATH, PAGE_LIMIT, ms_since, say
from bench.procs import HttpClient, ServerProcess, median, summary, threads_cpu_ns

GET_TARGET = 1.10  # app-lib GET by id: CPU per request <= 1.10x the minimal app's
PAGE_TARGET = 1.40  # app-lib page of 50: CPU per request <= 1.40x bare botocore's per Query


@dataclass
class Series:
    name: str
    call: Callable[[int], bool]  # request number -> answered as expected
    # The serving process (its CPU is read before and after each block), or None: the CPU is
    # this thread's, around each call.
    server: ServerProcess | None
    idle_cpu_per_s: float = 0.0  # the server's CPU seconds per second with no request
    latencies: list[float] = field(default_factory=list)
    cpu_by_round: list[float] = field(default_factory=list)
    background_by_round: list[float] = field(default_factory=list)
    calls_by_round: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def interleave(groups: list[list[Series]], per_block: list[int], rounds: int, blocks: int) -> None:
    """Each round: `blocks` blocks of every group; within a group's block the series take turns
    call by call (in a rotating order), `per_block` calls each, so they share every moment of
    the machine's load. A server's CPU is read at the block's edges."""
    count = 0
    for round_number in range(rounds):
        cpu: dict[str, float] = {one.name: 0.0 for group in groups for one in group}
        background = dict.fromkeys(cpu, 0.0)
        calls = dict.fromkeys(cpu, 0)
        for block in range(blocks):
            for group, calls_each in zip(groups, per_block, strict=True):
                began = time.perf_counter()
                before = {one.name: one.server.cpu_seconds() for one in group if one.server}
                for i in range(calls_each):
                    shift = (block + i) % len(group)
                    for one in group[shift:] + group[:shift]:
                        count += 1
                        thread_before = time.thread_time()
                        start = time.perf_counter_ns()
                        ok = one.call(count)
                        one.latencies.append(ms_since(start))
                        if one.server is None:
                            cpu[one.name] += time.thread_time() - thread_before
                        if not ok and len(one.failures) < 5:
                            one.failures.append(f"call {count}")
                took = time.perf_counter() - began
                for one in group:
                    if one.server is not None:
                        cpu[one.name] += one.server.cpu_seconds() - before[one.name]
                        background[one.name] += one.idle_cpu_per_s * took
                    calls[one.name] += calls_each
        for group in groups:
            for one in group:
                one.cpu_by_round.append(cpu[one.name])
                one.background_by_round.append(background[one.name])
                one.calls_by_round.append(calls[one.name])
        say(
            f"cpu: round {round_number + 1}/{rounds}: "
            + ", ".join(
                f"{name} {(cpu[name] - background[name]) / calls[name] * 1000:.2f}" for name in cpu
            )
            + " ms CPU/request"
        )


def idle_cpu_per_s(servers: list[ServerProcess], seconds: float) -> list[float]:
    """CPU seconds per second each server spends with no request (exact per-thread counters)."""
    before = [threads_cpu_ns(server.pid) for server in servers]
    began = time.perf_counter()
    time.sleep(seconds)
    after = [threads_cpu_ns(server.pid) for server in servers]
    took = time.perf_counter() - began
    return [
        sum(ns - start.get(tid, 0) for tid, ns in end.items()) / 1e9 / took
        for start, end in zip(before, after, strict=True)
    ]


def per_request_ms(one: Series, background: bool = False) -> list[float]:
    return [
        (c - (0.0 if background else b)) / n * 1000
        for c, b, n in zip(
            one.cpu_by_round, one.background_by_round, one.calls_by_round, strict=True
        )
    ]


def describe(one: Series) -> dict[str, Any]:
    rounds = per_request_ms(one)
    calls = sum(one.calls_by_round)
    return {
        "cpu_ms_per_request": round(
            (sum(one.cpu_by_round) - sum(one.background_by_round)) / calls * 1000, 3
        ),
        "cpu_ms_per_request_by_round": [round(v, 3) for v in rounds],
        "cpu_ms_per_request_median_round": round(median(rounds), 3),
        "with_background": {
            "cpu_ms_per_request": round(sum(one.cpu_by_round) / calls * 1000, 3),
            "idle_cpu_ms_per_s": round(one.idle_cpu_per_s * 1000, 2),
            "background_ms_per_request": round(sum(one.background_by_round) / calls * 1000, 3),
        },
        "latency": summary(one.latencies),
        "failures": one.failures,
    }


def ratio(numerator: Series, denominator: Series, target: float | None) -> dict[str, Any]:
    """Per round (the two series ran side by side in it), then the median of the rounds."""

    def by_round(background: bool) -> list[float]:
        return [
            a / b
            for a, b in zip(
                per_request_ms(numerator, background),
                per_request_ms(denominator, background),
                strict=True,
            )
        ]

    rounds = by_round(False)
    value = median(rounds)
    return {
        "of": f"{numerator.name} / {denominator.name}",
        "median_of_rounds": round(value, 3),
        "rounds": [round(r, 3) for r in rounds],
        "with_background_median_of_rounds": round(median(by_round(True)), 3),
        "target": target,
        "met": None if target is None else value <= target,
    }


def compare(
    app: ServerProcess,
    minimal: ServerProcess,
    bare: Any,
    table: str,
    query: dict[str, Any],
    ids: list[str],
    *,
    rounds: int,
    blocks: int,
    get_block: int,
    page_block: int,
    idle_seconds: float,
) -> dict[str, Any]:
    app_http, minimal_http = HttpClient(app.port), HttpClient(minimal.port)
    app_page_http = HttpClient(app.port)

    def get_from(client: HttpClient) -> Callable[[int], bool]:
        def call(i: int) -> bool:
            status, body = client.get(GET_PREFIX + ids[i % len(ids)])
            return status == 200 and body.startswith(b"{")

        return call

    def bare_get(i: int) -> bool:
        key = {"passenger_id": {"S": ids[i % len(ids)]}}
        return "Item" in bare.get_item(TableName=table, Key=key)

    def app_page(i: int) -> bool:
        status, body = app_page_http.get(LIST_PATH)
        return status == 200 and body.startswith(b"{")

    def bare_query(i: int) -> bool:
        return len(bare.query(**query)["Items"]) == PAGE_LIMIT

    # The same answers, once, outside the timed loops.
    first = ids[0]
    mine, theirs = app_http.get_json(GET_PREFIX + first), minimal_http.get_json(GET_PREFIX + first)
    assert mine["passenger_id"] == theirs["passenger_id"] == first, (mine, theirs)
    page = app_page_http.get_json(LIST_PATH)
    bare_ids = [item["passenger_id"]["S"] for item in bare.query(**query)["Items"]]
    assert [item["passenger_id"] for item in page["items"]] == bare_ids, "pages differ"

    gets = [
        Series("app_get", get_from(app_http), app),
        Series("minimal_get", get_from(minimal_http), minimal),
        Series("bare_getitem", bare_get, None),
    ]
    pages = [Series("app_page", app_page, app), Series("bare_query", bare_query, None)]
    series = gets + pages
    say(
        f"cpu: {rounds} rounds x {blocks} blocks: {get_block} GETs by id and {page_block} "
        f"pages of {PAGE_LIMIT} per series and block, taking turns"
    )
    try:
        for one in series:  # warm-up
            for i in range(max(get_block, 20)):
                one.call(i)
        idle = dict(
            zip(("app", "minimal"), idle_cpu_per_s([app, minimal], idle_seconds), strict=True)
        )
        say(
            f"cpu: idle servers: app-lib {idle['app'] * 1000:.1f}, minimal "
            f"{idle['minimal'] * 1000:.1f} ms CPU per second"
        )
        for one in series:
            if one.server is app:
                one.idle_cpu_per_s = idle["app"]
            elif one.server is minimal:
                one.idle_cpu_per_s = idle["minimal"]
        interleave([gets, pages], [get_block, page_block], rounds, blocks)
    finally:
        for client in (app_http, minimal_http, app_page_http):
            client.close()
    by_name = {one.name: one for one in series}
    failed = {one.name: one.failures for one in series if one.failures}
    if failed:
        raise RuntimeError(f"failed calls: {json.dumps(failed)[:500]}")
    return {
        "series": {one.name: describe(one) for one in series},
        "ratios": {
            "get_app_over_minimal": ratio(by_name["app_get"], by_name["minimal_get"], GET_TARGET),
            "page_app_over_bare_query": ratio(
                by_name["app_page"], by_name["bare_query"], PAGE_TARGET
            ),
            "get_minimal_over_bare_getitem": ratio(
                by_name["minimal_get"], by_name["bare_getitem"], None
            ),
        },
        "config": {
            "rounds": rounds,
            "blocks": blocks,
            "get_per_block": get_block,
            "page_per_block": page_block,
            "idle_seconds": idle_seconds,
            "query": query,
        },
    }
