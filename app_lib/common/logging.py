"""JSON-lines logging; each line carries the request id of the request being served."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# One encoder for every line: `json.dumps(..., default=str)` builds a new one on each call.
_to_json = json.JSONEncoder(default=str).encode

ACCESS_LOGGER = "app_lib.access"
ACCESS_FORMAT = "%s %s %s %sms"

# An access line as AccessLog keeps it: (created, method, target, status, duration_ms, client,
# request_id).
AccessEntry = tuple[float, str, str, int, float, "str | None", str]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> None:
    _request_id.set(value)


# Extras some libraries add for their own terminal output (uvicorn's colour codes): never logged.
_DROPPED = {"color_message"}


_NOT_EXTRA = frozenset(_STANDARD | _DROPPED)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _NOT_EXTRA and not key.startswith("_")
    }


class _Seconds:
    """`strftime` of the current second, kept until the second changes (a line per request)."""

    def __init__(self, pattern: str, convert: Callable[[float], time.struct_time]) -> None:
        self.pattern, self.convert = pattern, convert
        self.second, self.text = -1, ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self.second:
            self.second, self.text = second, time.strftime(self.pattern, self.convert(second))
        return self.text


def _access_message(entry: AccessEntry) -> str:
    return ACCESS_FORMAT % entry[1:5]


def _msecs(created: float) -> int:
    """The milliseconds of a time stamp, as a LogRecord's `msecs` holds them."""
    return int((created - int(created)) * 1000)


class LineFormatter(logging.Formatter):
    """A formatter of configure_logging's: it also formats an access line straight from its
    entry, as `format` would format the record AccessLog makes of it (tested)."""

    def format_access(self, entry: AccessEntry) -> str:
        raise NotImplementedError


class JsonFormatter(LineFormatter):
    """One JSON object a line: for log collectors (CloudWatch, Loki, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self._stamp = _Seconds("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": f"{self._stamp(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id:
            line["request_id"] = request_id
        line.update(_extras(record))  # an access line carries its request's id itself
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _to_json(line)

    def format_access(self, entry: AccessEntry) -> str:
        created, _, _, status, duration_ms, client, request_id = entry
        return _to_json(
            {
                "ts": f"{self._stamp(created)}.{_msecs(created):03d}Z",
                "level": "INFO",
                "logger": ACCESS_LOGGER,
                "message": _access_message(entry),
                "request_id": request_id,
                "status": status,
                "duration_ms": duration_ms,
                "client": client,
            }
        )


class ConsoleFormatter(LineFormatter):
    """For people at a terminal: `12:00:01 INFO  GET /path?q 200 3.1ms  client=... id=...`."""

    def __init__(self) -> None:
        super().__init__()
        self._stamp = _Seconds("%H:%M:%S", time.localtime)

    def format(self, record: logging.LogRecord) -> str:
        stamp = self._stamp(record.created)
        text = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        extras = _extras(record)
        if record.name != ACCESS_LOGGER:
            extras = {"logger": record.name, **extras}
        request_id = extras.pop("request_id", None) or current_request_id()
        if request_id:
            extras["id"] = request_id[:8]
        if extras:
            text += "  " + " ".join(f"{key}={value}" for key, value in extras.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text

    def format_access(self, entry: AccessEntry) -> str:
        created, _, _, status, duration_ms, client, request_id = entry
        text = (
            f"{self._stamp(created)} INFO    {_access_message(entry)}  status={status} "
            f"duration_ms={duration_ms} client={client}"
        )
        request_id = request_id or current_request_id() or ""
        return f"{text} id={request_id[:8]}" if request_id else text


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """configure_logging's handler: a record a line, and many access lines in one write."""

    def write_lines(self, lines: list[str]) -> None:
        text = "".join(line + self.terminator for line in lines)
        with self.lock:  # type: ignore[union-attr]
            try:
                self.stream.write(text)
                self.flush()
            except Exception:  # as StreamHandler.emit: logging must not raise
                self.handleError(logging.makeLogRecord({"msg": "access lines"}))


def configure_logging(level: str, log_format: str = "auto") -> None:
    """`log_format`: json, console, or auto (console when stderr is a terminal)."""
    # Each record would otherwise walk the stack for its caller's file and line and look up the
    # thread and process names: none of which the formatters print (the logging HOWTO's
    # "Optimization"). The access line is written once per request.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LineHandler(sys.stderr)
    console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    handler.setFormatter(ConsoleFormatter() if console else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # We log one access line per request ourselves, with the request id.
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("botocore", "urllib3", "pynamodb"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


class AccessLog:
    """One line per request (`app_lib.access`, INFO): method, target, status, duration, client
    and request id, stamped with the time the request ended.

    Started (`start()`, by the app's lifespan), a writer thread writes the lines in bursts, at
    most `interval` seconds after their request: a request only queues a tuple. Writing a line
    is code the request's own path does not otherwise run: one line at a time, between
    requests, it costs several times what it costs in a burst (bench/: ~0.14 ms of CPU a
    request against ~0.02 ms). `stop()` writes what is left (shutdown). Not started (Lambda,
    where the process is frozen as soon as the response is out; a test client without
    lifespan), each line is written at once.

    Where the lines go only to configure_logging's handlers (`LineHandler`, no filters), they
    are formatted straight from their entries and a burst is one write: the same text as
    through a LogRecord, a third of the CPU. Any other handler or filter gets records."""

    def __init__(self, interval: float = 0.5) -> None:
        self.logger = logging.getLogger(ACCESS_LOGGER)
        self.interval = interval
        self._pending: deque[AccessEntry] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write(
        self,
        method: str,
        target: str,
        status: int,
        duration_ms: float,
        client: str | None,
        request_id: str,
    ) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        entry = (time.time(), method, target, status, duration_ms, client, request_id)
        if self._thread is None:
            self._emit([entry])
            return
        self._pending.append(entry)
        if not self._wake.is_set():
            self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Write every queued line and end the writer; later lines are written at once."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join(timeout=5)
        self._drain()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._stop.wait(self.interval)  # let the lines of a busy moment gather
            # Cleared before draining: a line queued from here on sets it again.
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        entries: list[AccessEntry] = []
        while self._pending:
            try:
                entries.append(self._pending.popleft())
            except IndexError:
                break
        if entries:
            self._emit(entries)

    def _emit(self, entries: list[AccessEntry]) -> None:
        handlers = self._line_handlers()
        if handlers is None:
            for entry in entries:
                self.logger.handle(self._record(entry))
            return
        for handler in handlers:
            formatter = handler.formatter
            assert isinstance(formatter, LineFormatter)
            handler.write_lines([formatter.format_access(entry) for entry in entries])

    def _line_handlers(self) -> list[LineHandler] | None:
        """The handlers a record of the access logger would reach, when all of them are
        LineHandlers with a LineFormatter and nothing on the way filters; else None."""
        if self.logger.disabled:
            return []
        found: list[LineHandler] = []
        logger: logging.Logger | None = self.logger
        while logger is not None:
            if logger.filters:
                return None
            for handler in logger.handlers:
                if (
                    type(handler) is not LineHandler
                    or handler.filters
                    or not isinstance(handler.formatter, LineFormatter)
                ):
                    return None
                if handler.level <= logging.INFO:
                    found.append(handler)
            if not logger.propagate:
                break
            logger = logger.parent
        # No handler at all: logging's last resort decides (it prints warnings only).
        return found or None

    def _record(self, entry: AccessEntry) -> logging.LogRecord:
        created, method, target, status, duration_ms, client, request_id = entry
        record = self.logger.makeRecord(
            self.logger.name,
            logging.INFO,
            __file__,
            0,
            ACCESS_FORMAT,
            (method, target, status, duration_ms),
            None,
            extra={
                "request_id": request_id,
                "status": status,
                "duration_ms": duration_ms,
                "client": client,
            },
        )
        record.created = created
        record.msecs = _msecs(created) + 0.0
        return record
