"""The embedded DynamoDB (and SQS): moto's server mode in a child process on 127.0.0.1.

The child picks a free port, prints it, and serves until its standard input closes. The parent
holds that pipe, so the server stops with the app even when the app is killed without cleanup.
A separate process keeps moto's Python work off the app's GIL, so latencies are the server's.
moto is imported only in the child: a deployment against AWS never imports it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
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


class EmbeddedServer:
    """A moto server on 127.0.0.1 and a free port; `url` once started."""

    def __init__(self, start_timeout: float = 60.0) -> None:
        self.start_timeout = start_timeout
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> str:
        use_fake_credentials()
        # Our own interpreter running our own module.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "app_lib.common.embedded"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        port: list[str] = []
        reader = threading.Thread(
            target=lambda: port.append(self._process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(self.start_timeout)
        line = port[0].strip() if port else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError("the embedded database did not start (is moto[server] installed?)")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        log.info("embedded database started", extra={"endpoint": self.url})
        return self.url

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin:
                process.stdin.close()
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
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


def _serve() -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(f"PORT {server.get_host_and_port()[1]}", flush=True)
    # Serve until the parent closes our standard input (or dies).
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    _serve()
