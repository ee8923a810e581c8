"""Racing clients: the app served by a real uvicorn (so its threadpool is real) and helpers to
run N client threads that start each round together."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tests.conftest import bearer

CLIENTS = 20
# Bounds on waits (never asserted as timings): the server starting and stopping, and the
# clients of one round meeting at the barrier.
START_TIMEOUT = 30.0
ROUND_TIMEOUT = 120.0

T = TypeVar("T")


@pytest.fixture
def live_url(app: FastAPI, tables: str) -> Iterator[str]:
    """The session's app under uvicorn in a background thread on 127.0.0.1 and a free port,
    over this test's fresh tables; stopped afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None: leave the test process's logging alone; no access log.
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(START_TIMEOUT)
            sock.close()
            pytest.fail("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


def race(work: Callable[[int], T], clients: int = CLIENTS) -> list[T]:
    """Run work(0..clients-1) in `clients` threads released together; their results in order.
    An exception in any client is raised here."""
    barrier = threading.Barrier(clients, timeout=ROUND_TIMEOUT)

    def client(index: int) -> T:
        barrier.wait()
        return work(index)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(client, index) for index in range(clients)]
        return [future.result(timeout=ROUND_TIMEOUT) for future in futures]


@pytest.fixture
def http_clients(app: FastAPI, live_url: str) -> Iterator[list[httpx.Client]]:
    """One HTTP client (one keep-alive connection) per racing client."""
    headers = bearer(app)
    clients = [
        httpx.Client(base_url=live_url, timeout=60.0, headers=headers) for _ in range(CLIENTS)
    ]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()
