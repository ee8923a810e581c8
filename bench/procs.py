"""Servers under test in their own processes, their CPU time, keep-alive clients, percentiles."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

READY_TIMEOUT = 90.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the bench dies without cleanup (Linux; best effort)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# ----- /proc --------------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from the 3rd on: state, ppid, ...


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, all its threads (also those that ended); 0 if gone.
    The kernel keeps it in ns and prints it in clock ticks (10 ms): read it over many requests."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK if fields else 0.0


def threads_cpu_ns(pid: int) -> dict[int, int]:
    """CPU ns of each live thread of `pid` (/proc/<pid>/task/<tid>/schedstat: exact, but a
    thread that ends takes its count with it: for short windows of an idle server)."""
    found = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                found[int(task.name)] = int((task / "schedstat").read_text().split()[0])
    return found


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (children first), from /proc's parent links."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending and len(found) < 1000:
        children = parents.get(pending.pop(0), [])
        found.extend(children)
        pending.extend(children)
    return found


def alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


# ----- HTTP ---------------------------------------------------------------------------------------
class HttpClient:
    """One keep-alive HTTP/1.1 connection: the cheapest client the standard library has."""

    def __init__(self, port: int, timeout: float = 60) -> None:
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            self.conn.request("GET", path)
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            # The server closed the kept-alive connection: reconnect once.
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request("GET", path)
            response = self.conn.getresponse()
        return response.status, response.read()

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:300]!r}")
        return json.loads(body)

    def close(self) -> None:
        self.conn.close()


# ----- servers ------------------------------------------------------------------------------------
def uvicorn_argv(target: str, port: int, *, workers: int = 1, factory: bool = False) -> list[str]:
    """The one uvicorn command line every compared server runs with: only the app differs.
    As `python -m app_lib serve` runs: httptools, uvloop, no uvicorn access log (app-lib writes
    its own access line at LOG_LEVEL=INFO); uvicorn's INFO lines are start and stop only."""
    argv = [sys.executable, "-m", "uvicorn", target, *(["--factory"] if factory else [])]
    return [
        *argv,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--no-access-log",
        "--log-level",
        "info",
    ]


class ServerProcess:
    """An HTTP server in a child process on 127.0.0.1 and a free port; stops with its tree."""

    def __init__(
        self,
        name: str,
        argv: list[str] | None,
        env: dict[str, str],
        workdir: Path,
        *,
        ready_path: str = "/ready",
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port or free_port()
        self.argv = argv or []
        self.env = {**os.environ, **env}
        self.ready_path = ready_path
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in = 0.0
        self._seen: set[int] = set()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> ServerProcess:
        self._log = self.log_path.open("wb")
        self._started = time.perf_counter()
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Poll `ready_path` until 200 (bounded); seconds from start to ready."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.process.returncode}):\n{self.tail()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", self.ready_path)
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    self.started_in = time.perf_counter() - self._started
                    self._seen.update(self.tree())
                    return self.started_in
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.tail()}")

    def tree(self) -> list[int]:
        """This server's process and its live descendants (uvicorn workers, a database child)."""
        return [self.pid, *descendants(self.pid)]

    def cpu_seconds(self, pids: list[int] | None = None) -> float:
        """CPU used so far by the server process (default) or the given processes."""
        return sum(process_cpu_seconds(pid) for pid in (pids or [self.pid]))

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def stop(self) -> list[int]:
        """SIGTERM, wait; SIGKILL if needed. Then end, by pid, any descendant that outlived it.
        Returns the pids that had to be killed that way (should be none)."""
        process, self.process = self.process, None
        leftovers: list[int] = []
        if process is not None:
            with contextlib.suppress(OSError):
                self._seen.update(descendants(process.pid))
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            deadline = time.monotonic() + 10
            for pid in sorted(self._seen - {process.pid}):
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if alive(pid):
                    leftovers.append(pid)
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        return leftovers

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ----- statistics ---------------------------------------------------------------------------------
def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 50), 3),
        "p90_ms": round(percentile(samples_ms, 90), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
        "mean_ms": round(sum(samples_ms) / len(samples_ms), 3),
        "max_ms": round(max(samples_ms), 3),
    }
