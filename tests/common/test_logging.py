"""Logs: JSON for collectors, a readable line at a terminal, no colour codes, a full access line,
and a quiet Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app_lib.common.logging import ConsoleFormatter, JsonFormatter, set_request_id
from tests.common.test_database_faults import free_port


def record(message: str, **extra: object) -> logging.LogRecord:
    item = logging.LogRecord("app_lib.access", logging.INFO, __file__, 1, message, None, None)
    item.__dict__.update(extra)
    return item


def test_json_lines_carry_the_request_id_and_no_colour_codes() -> None:
    set_request_id("abc123")
    try:
        line = JsonFormatter().format(
            record("GET /x 200", status=200, color_message="\x1b[36mGET\x1b[0m")
        )
    finally:
        set_request_id(None)
    parsed = json.loads(line)
    assert parsed["request_id"] == "abc123" and parsed["status"] == 200
    assert "color_message" not in parsed and "\x1b" not in line


def test_the_console_line_is_readable() -> None:
    line = ConsoleFormatter().format(
        record("GET /api/v1/passengers?pclass=1 200 3.1ms", status=200, client="127.0.0.1:5")
    )
    assert "INFO" in line and "GET /api/v1/passengers?pclass=1 200 3.1ms" in line
    assert "client=127.0.0.1:5" in line and not line.startswith("{")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_server_stops_quietly(tmp_path: Path, signum: int) -> None:
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(tmp_path / "data"),
        "DYNAMODB_HOST": "embedded",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "RUN_WORKER": "false",
        "APP_ENV": "logs",
    }
    env.pop("EMBEDDED_URL", None)
    # Its own process group, as a terminal's Ctrl-C reaches the app and its database alike.
    server = subprocess.Popen(
        [sys.executable, "-m", "app_lib", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.2)
        httpx.get(f"http://127.0.0.1:{port}/api/v1/passengers?limit=2&pclass=1")
        os.killpg(server.pid, signum)
        output, _ = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    text = output.decode()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
    access = [json.loads(line) for line in text.splitlines() if '"app_lib.access"' in line]
    page = [a for a in access if "/api/v1/passengers?limit=2&pclass=1" in a["message"]]
    assert page and page[0]["status"] == 200 and page[0]["client"].startswith("127.0.0.1:")
    assert "color_message" not in text
