"""The app under test in its own process, a keep-alive HTTP client for it, and percentiles."""

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the bench dies without cleanup (Linux; best effort)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class HttpClient:
    """One keep-alive HTTP/1.1 connection: the cheapest client the standard library has."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            self.conn.request("GET", path)
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            # The server closed the kept-alive connection: reconnect once.
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
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


class AppProcess:
    """`python -m app_lib serve` on 127.0.0.1 and a free port, pointed at one namespace."""

    def __init__(
        self,
        name: str,
        endpoint: str,
        namespace: str,
        workdir: Path,
        *,
        log_level: str = "INFO",
        seed: bool = False,
        python: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = workdir / f"app-{name}.log"
        self.env = {
            **os.environ,
            "DYNAMODB_HOST": endpoint,
            "APP_NAMESPACE": namespace,
            "LOG_LEVEL": log_level,
            "SEED_ON_START": "true" if seed else "false",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
        }
        self.python = python or sys.executable
        self.cwd = cwd  # `python -m app_lib` imports app_lib from here first
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in = 0.0

    def start(self) -> AppProcess:
        self._log = self.log_path.open("wb")
        self._started = time.perf_counter()
        self.process = subprocess.Popen(
            [
                self.python,
                "-m",
                "app_lib",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Poll /ready until 200 (bounded); seconds from start to ready."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"app {self.name} exited ({self.process.returncode}):\n{self.tail()}"
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/ready")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    self.started_in = time.perf_counter() - self._started
                    return self.started_in
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"app {self.name} not ready after {timeout:.0f}s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU the app process has used so far (Linux /proc)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def access_durations(self, path_prefix: str) -> list[float]:
        """Server-side milliseconds from the app's own access log lines (LOG_LEVEL=INFO only)."""
        durations = []
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line.startswith("{"):
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("logger") != "app_lib.access":
                    continue
                if str(record.get("path", "")).startswith(path_prefix) or str(
                    record.get("message", "")
                ).startswith(f"GET {path_prefix}"):
                    durations.append(float(record["duration_ms"]))
        return durations

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 50), 3),
        "p90_ms": round(percentile(samples_ms, 90), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
        "mean_ms": round(sum(samples_ms) / len(samples_ms), 3),
        "min_ms": round(min(samples_ms), 3),
    }
