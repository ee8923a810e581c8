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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app_lib.common.logging import (
    ACCESS_LOGGER,
    AccessEntry,
    AccessLog,
    ConsoleFormatter,
    JsonFormatter,
    LineFormatter,
    LineHandler,
    set_request_id,
)
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


class Lines(logging.Handler):
    """The access lines as the JSON formatter writes them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def access_lines() -> Iterator[Lines]:
    logger = logging.getLogger(ACCESS_LOGGER)
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_access_lines_are_written_at_once_until_the_writer_starts(access_lines: Lines) -> None:
    access = AccessLog()
    access.write("GET", "/x?a=1", 200, 1.5, "127.0.0.1:9", "req-1")
    (line,) = access_lines.lines
    assert line["message"] == "GET /x?a=1 200 1.5ms" and line["request_id"] == "req-1"
    assert (line["status"], line["duration_ms"], line["client"]) == (200, 1.5, "127.0.0.1:9")


def test_a_started_access_log_writes_in_bursts_and_everything_at_stop(access_lines: Lines) -> None:
    access = AccessLog(interval=30)  # longer than this test: only stop() can write them
    access.start()
    try:
        before = time.time()
        for number in range(50):
            access.write("GET", f"/items/{number}", 200, 0.5, None, f"req-{number}")
        time.sleep(0.05)
        assert access_lines.lines == []  # queued, not written by the request
    finally:
        access.stop()
    assert [line["request_id"] for line in access_lines.lines] == [f"req-{n}" for n in range(50)]
    # Stamped with the time of the request, not of the burst; keys in the synchronous order.
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before))
    assert str(access_lines.lines[0]["ts"]).startswith(stamp[:16])
    assert list(access_lines.lines[0]) == [
        "ts",
        "level",
        "logger",
        "message",
        "request_id",
        "status",
        "duration_ms",
        "client",
    ]
    # Stopped, it writes at once again.
    access.write("GET", "/after", 200, 0.5, None, "req-after")
    assert access_lines.lines[-1]["request_id"] == "req-after"


def test_the_writer_thread_writes_without_stop(access_lines: Lines) -> None:
    access = AccessLog(interval=0.01)
    access.start()
    try:
        access.write("GET", "/soon", 200, 0.5, None, "req-soon")
        deadline = time.monotonic() + 10
        while not access_lines.lines and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [line["request_id"] for line in access_lines.lines] == ["req-soon"]
    finally:
        access.stop()


def test_no_access_line_is_queued_below_info(access_lines: Lines) -> None:
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)
    access = AccessLog()
    access.start()
    access.write("GET", "/quiet", 200, 0.5, None, "req-quiet")
    assert not access._pending
    access.stop()
    assert access_lines.lines == []


def test_the_console_line_takes_the_id_the_access_line_carries() -> None:
    line = ConsoleFormatter().format(record("GET /x 200 1ms", request_id="0123456789abcdef"))
    assert line.endswith("id=01234567") and "request_id" not in line


ENTRIES: list[AccessEntry] = [
    (1_700_000_000.0, "GET", "/api/v1/passengers/1", 200, 3.21, "127.0.0.1:5555", "0f" * 16),
    (1_700_000_000.999, "POST", '/x?q="a"&b=\u00e9', 422, 0.5, None, "req-1"),
    (1_700_000_061.0405, "DELETE", "/", 500, 12.0, "[::1]:80", ""),
]


@pytest.mark.parametrize("formatter", [JsonFormatter(), ConsoleFormatter()])
def test_an_access_line_formatted_from_its_entry_is_the_records_line(
    formatter: LineFormatter,
) -> None:
    for request_id in (None, "outer-request"):
        set_request_id(request_id)
        try:
            for entry in ENTRIES:
                record = AccessLog()._record(entry)
                assert formatter.format_access(entry) == formatter.format(record)
        finally:
            set_request_id(None)


class Writes:
    """A stream that keeps each write."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


@contextmanager
def line_stream() -> Iterator[Writes]:
    """The access logger writing only to a LineHandler (as configure_logging sets it up). In
    the test's body: pytest adds its capture handlers, which would take the record path."""
    logger = logging.getLogger(ACCESS_LOGGER)
    stream = Writes()
    handler = LineHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter())
    saved = logger.level, logger.propagate, logger.handlers[:]
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield stream
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.handlers[:] = saved[2]


def test_a_burst_of_access_lines_is_one_write() -> None:
    access = AccessLog(interval=30)
    with line_stream() as stream:
        access.start()
        try:
            for number in range(20):
                access.write("GET", f"/items/{number}", 200, 0.5, None, f"req-{number}")
        finally:
            access.stop()
    (burst,) = stream.writes
    lines = [json.loads(line) for line in burst.splitlines()]
    assert [line["request_id"] for line in lines] == [f"req-{n}" for n in range(20)]
    assert lines[0]["message"] == "GET /items/0 200 0.5ms" and burst.endswith("\n")


def test_a_filter_on_the_way_still_sees_every_access_record() -> None:
    seen: list[str] = []

    def keep_errors(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return getattr(record, "status", 0) >= 500

    logger = logging.getLogger(ACCESS_LOGGER)
    with line_stream() as stream:
        logger.addFilter(keep_errors)
        try:
            access = AccessLog()
            access.write("GET", "/fine", 200, 0.5, None, "req-fine")
            access.write("GET", "/broken", 500, 0.5, None, "req-broken")
        finally:
            logger.removeFilter(keep_errors)
        direct = AccessLog()
        direct.write("GET", "/direct", 200, 0.5, None, "req-direct")
    assert seen == ["GET /fine 200 0.5ms", "GET /broken 500 0.5ms"]
    written = [json.loads(text)["request_id"] for text in stream.writes]
    assert written == ["req-broken", "req-direct"]


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
