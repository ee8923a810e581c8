"""Generated clients against the live app: one uvicorn server per module over the session's app
(a background thread, 127.0.0.1, a free port), the document it serves at /openapi.json, and a
bearer token for the writes. Each test still gets tables of its own (`tables`): the server runs in
this process, so it uses whatever tables the models point at."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

START_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def live_url(app: FastAPI) -> Iterator[str]:
    """The session's app under uvicorn on 127.0.0.1 and a free port, for this module."""
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


@pytest.fixture(scope="module")
def live_document(live_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The document the live server serves, as a file (what a team generates its client from)."""
    response = httpx.get(f"{live_url}/openapi.json", timeout=30.0)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    path = tmp_path_factory.mktemp("document") / "openapi.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bearer_token(app: FastAPI) -> str:
    """A token allowed to write: the app's own (dev) issuer signs one when auth is on; with
    auth off any token passes (a generated client for secured operations sends one anyway)."""
    issuer = getattr(getattr(app.state, "auth", None), "dev", None)
    if issuer is None:
        return "no-auth"
    signed: str = issuer.sign("generated-client", "admin", 3600)
    return signed
