"""dynalite (tests/dynalite/server.js under Node) on 127.0.0.1 and a free port, for the tests.

`make test-dynalite` installs it (`npm ci` here) and runs the suites that support it with
TEST_DYNAMODB=dynalite; tests/conftest.py then starts this instead of moto's server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from types import TracebackType

from app_lib.common.embedded import end_child

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "server.js"


def node_binary() -> str:
    """NODE if set, else `node` on PATH (Debian's /usr/bin/node, Node 20)."""
    node = os.environ.get("NODE") or shutil.which("node")
    if not node:
        raise RuntimeError("dynalite needs Node.js (>= 20): install it or set NODE")
    return node


class DynaliteServer:
    """dynalite in memory; `url` once started. Stops when `stop()` closes its standard input."""

    def __init__(self, start_timeout: float = 30.0) -> None:
        self.start_timeout = start_timeout
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> str:
        if not (HERE / "node_modules" / "dynalite").is_dir():
            raise RuntimeError("dynalite is not installed: run `make dynalite`")
        self._process = subprocess.Popen(
            [node_binary(), str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE,
        )
        first_line: list[str] = []
        reader = threading.Thread(
            target=lambda: first_line.append(self._process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(self.start_timeout)
        line = first_line[0].strip() if first_line else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"dynalite did not start (first line: {line!r})")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        return self.url

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            end_child(process)

    def __enter__(self) -> DynaliteServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
