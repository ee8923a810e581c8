"""JSON-lines logging; each line carries the request id of the request being served."""

from __future__ import annotations

import json
import logging
import sys
import time
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


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and key not in _DROPPED and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object a line: for log collectors (CloudWatch, Loki, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
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
