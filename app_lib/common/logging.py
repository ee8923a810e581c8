"""JSON-lines logging; each line carries the request id of the request being served."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

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


class JsonFormatter(logging.Formatter):
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
        line.update(_extras(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class ConsoleFormatter(logging.Formatter):
    """For people at a terminal: `12:00:01 INFO  GET /path?q 200 3.1ms  client=... id=...`."""

    def __init__(self) -> None:
        super().__init__()
        self._stamp = _Seconds("%H:%M:%S", time.localtime)

    def format(self, record: logging.LogRecord) -> str:
        stamp = self._stamp(record.created)
        text = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        extras = _extras(record)
        if record.name != "app_lib.access":
            extras = {"logger": record.name, **extras}
        request_id = current_request_id()
        if request_id:
            extras["id"] = request_id[:8]
        if extras:
            text += "  " + " ".join(f"{key}={value}" for key, value in extras.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(level: str, log_format: str = "auto") -> None:
    """`log_format`: json, console, or auto (console when stderr is a terminal)."""
    # Each record would otherwise walk the stack for its caller's file and line and look up the
    # thread and process names: none of which the formatters print (the logging HOWTO's
    # "Optimization"). The access line is written once per request.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
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
