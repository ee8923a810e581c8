"""The app as `make run` starts it, for the scripts that drive it (`make fuzz`, `make soak`).

`python -m app_lib serve` on 127.0.0.1 and a free port, the embedded database in a DATA_DIR of
the caller's (never the developer's .data/), in a process group of its own that is stopped with
everything it started (the database child included), whatever happens to the caller.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:
    """In a child: get SIGTERM if the script dies without cleanup (Linux; best effort)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the child's process group (it leads one), then SIGKILL it after `grace` seconds."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    # The group may outlive its leader (the embedded database child): kill what is left.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


class ServedApp:
    """`python -m app_lib serve` with HOST=127.0.0.1 and a free PORT, in its own process group."""

    def __init__(self, log_path: Path, data_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            # `make run`'s defaults, set here so that a .env cannot point the script elsewhere.
            "DYNAMODB_HOST": "embedded",
            "SEED_ON_START": "true",
            "RUN_WORKER": "true",  # jobs run, as under `make run`
            # A fresh database of its own: never the developer's .data/, never a `make dev` one.
            "DATA_DIR": str(self.data_dir),
            "EMBEDDED_URL": "",
            "LOG_LEVEL": "INFO",  # the access log is where requests and 5xx are counted
            # Auth on, as `make run` has it: the app is its own issuer (key in DATA_DIR).
            "AUTH_MODE": "dev",
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app_lib", "serve"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def token(self, sub: str = "load", scopes: str = "admin") -> str:
        """A token the app accepts: `python -m app_lib token` with the app's DATA_DIR (call it
        before start(), so that the key exists before the app reads it)."""
        env = {**os.environ, "DATA_DIR": str(self.data_dir), "AUTH_MODE": "dev"}
        done = subprocess.run(  # noqa: S603 (our interpreter, our arguments)
            [sys.executable, "-m", "app_lib", "token", "--sub", sub, "--scope", scopes],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def wait_ready(self, timeout: float) -> float:
        """Seconds until /ready answered 200; RuntimeError (with the log's tail) otherwise."""
        assert self.process is not None
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited ({self.process.returncode}):\n{self.tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                try:
                    conn.request("GET", "/ready")
                    if conn.getresponse().status == 200:
                        return time.monotonic() - started
                finally:
                    conn.close()
            time.sleep(0.25)
        raise RuntimeError(f"the app was not ready after {timeout:.0f}s:\n{self.tail()}")

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the group (app and database child), SIGKILL what is left after `grace`."""
        process, self.process = self.process, None
        if process is not None:
            stop_group(process, grace)

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""
