"""The embedded DynamoDB (and SQS): moto's server mode in a child process on 127.0.0.1.

The child serves until its standard input closes. The parent holds that pipe, so the server
stops with the app even when the app is killed without cleanup. A separate process keeps moto's
Python work off the app's GIL. moto is imported only in the child (`embedded_server`): a
deployment against AWS never imports it.

The parent watches the child: if it dies, it is started again on the same port (its data comes
back from the data directory, when there is one) and `on_restart` runs, so the app re-creates
what is missing without a restart of its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "embedded",
    "AWS_SECRET_ACCESS_KEY": "embedded",
}


def use_fake_credentials() -> None:
    """moto accepts any signature; botocore still needs some credentials to sign with."""
    for key, value in _FAKE_CREDENTIALS.items():
        os.environ.setdefault(key, value)


class EmbeddedServerError(RuntimeError):
    """The embedded database could not be started."""


class EmbeddedServer:
    """A moto server on 127.0.0.1; `url` once started.

    `data_dir`: where its data persists (None = in memory only). `switch_interval`: for tests,
    makes the server's threads switch very often, so that races show on every run.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int = 0,
        switch_interval: float | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.switch_interval = switch_interval
        self.start_timeout = start_timeout
        self.url = ""
        self.restarts = 0
        # Seconds the last start took to replay the data directory (None: nothing to load).
        self.load_seconds: float | None = None
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    def start(self) -> str:
        use_fake_credentials()
        with self._lock:
            self._stopping.clear()
            self._spawn()
        log.info("embedded database started", extra={"endpoint": self.url})
        return self.url

    def _spawn(self) -> None:
        command = [sys.executable, "-m", "app_lib.common.embedded", "--port", str(self.port)]
        if self.data_dir is not None:
            command += ["--data-dir", str(self.data_dir)]
        if self.switch_interval:
            command += ["--switch-interval", repr(self.switch_interval)]
        # Our own interpreter running our own module.
        process = subprocess.Popen(  # noqa: S603
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        lines: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if line.startswith("PORT "):
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        port_line = next((line for line in lines if line.startswith("PORT ")), "")
        if not port_line:
            end_child(process)
            raise EmbeddedServerError(
                "the embedded database did not start (is moto[server] installed? "
                "is the data directory used by another process?)"
            )
        loaded = next((line for line in lines if line.startswith("LOADED ")), "")
        self.load_seconds = float(loaded.split()[2]) if loaded else None
        self.port = int(port_line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._process = process

    def watch(self, on_restart: Callable[[], None], poll_seconds: float = 0.2) -> None:
        """Restart the child whenever it dies (until `stop`), then call `on_restart`."""

        def loop() -> None:
            failures = 0
            while not self._stopping.wait(poll_seconds):
                process = self._process
                if process is None or process.poll() is None:
                    continue
                with self._lock:
                    if self._stopping.is_set() or self._process is not process:
                        continue
                    log.error(
                        "the embedded database stopped (exit code %s); starting it again",
                        process.returncode,
                    )
                    try:
                        self._spawn()
                    except (EmbeddedServerError, OSError) as error:
                        failures += 1
                        log.error("restarting the embedded database failed: %s", error)
                        self._stopping.wait(min(10.0, 0.5 * 2**failures))
                        continue
                failures = 0
                self.restarts += 1
                try:
                    on_restart()
                except Exception:
                    log.exception("re-preparing the embedded database failed")

        self._watcher = threading.Thread(target=loop, name="embedded-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=10)
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        end_child(process)
        log.info("embedded database stopped")

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def end_child(process: subprocess.Popen[str]) -> None:
    """Close the standard input of a child that serves until it closes (it then saves and
    exits); kill it if it does not. The embedded database's and the tests' dynalite."""
    try:
        if process.stdin:
            process.stdin.close()
        process.wait(timeout=10)
    except (subprocess.TimeoutExpired, OSError):
        process.kill()
        process.wait(timeout=10)
    if process.stdout:
        process.stdout.close()


def data_dir_in_use(data_dir: Path) -> bool:
    """True while an embedded database holds `data_dir` (its lock file is locked)."""
    import fcntl

    lock = data_dir / "dynamodb" / "LOCK"
    if not lock.exists():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app_lib.common.embedded")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--switch-interval", type=float)
    args = parser.parse_args(argv)
    # Ctrl-C reaches the whole process group; the parent ends this process (it closes our
    # standard input), so the database stops after the app, quietly, with its data saved.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from app_lib.common.embedded_server import serve

    serve(args.port, args.data_dir, args.switch_interval)


if __name__ == "__main__":
    main()
