"""A profiled server: `python -m bench.profile_server TARGET [--factory] --port P --out DIR`.

The same app as `make bench` serves, with the same uvicorn settings, plus two things for
cProfile (which follows one thread): FastAPI's threadpool hops run inline on the event loop's
thread (requests come one at a time, so nothing waits on anything else), and
`GET /__profile/start` / `GET /__profile/stop/NAME` begin and end a profile (written to
DIR/NAME.pstats; the garbage collector's runs and CPU time to DIR/NAME.gc.json), so start-up and
warm-up stay out of it. cProfile's clock is the thread's CPU time: waiting for the database
costs nothing.
Only `make bench` starts it; never serve with it.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import time
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.importer import import_from_string


def inline_threadpool() -> None:
    """FastAPI and Starlette call sync code through `run_in_threadpool`: call it inline."""
    import fastapi.dependencies.utils
    import fastapi.routing
    import starlette.concurrency

    async def run_inline(func: Any, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    for module in (fastapi.routing, fastapi.dependencies.utils, starlette.concurrency):
        module.run_in_threadpool = run_inline  # type: ignore[attr-defined]


class GcClock:
    """The garbage collector's runs per generation and its CPU time, while `on`."""

    def __init__(self) -> None:
        self.on = False
        self.runs = [0, 0, 0]
        self.ns = 0
        self._started = 0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._started = time.thread_time_ns()
        elif self._started:
            self.ns += time.thread_time_ns() - self._started
            self.runs[info["generation"]] += 1
            self._started = 0

    def reset(self) -> None:
        self.runs, self.ns, self.on = [0, 0, 0], 0, True


class ProfileControl:
    """ASGI wrapper: /__profile/start and /__profile/stop/NAME; the rest goes to the app."""

    def __init__(self, app: Any, out: Path) -> None:
        self.app = app
        self.out = out
        self.profile: cProfile.Profile | None = None
        self.gc = GcClock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/__profile/"):
            await self.app(scope, receive, send)
            return
        if path == "/__profile/start":
            gc.collect()  # what earlier requests (and an earlier profile's stats) left
            self.gc.reset()
            self.profile = cProfile.Profile(time.thread_time_ns, 1e-9)
            self.profile.enable()
        elif path.startswith("/__profile/stop/"):
            if self.profile is not None:
                self.profile.disable()
            self.gc.on = False
            name = path.rsplit("/", 1)[1]
            if name.isidentifier():
                if self.profile is not None:
                    self.profile.dump_stats(str(self.out / f"{name}.pstats"))
                collected = {"runs_by_generation": self.gc.runs, "cpu_ns": self.gc.ns}
                (self.out / f"{name}.gc.json").write_text(json.dumps(collected))
            self.profile = None

        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_server")
    parser.add_argument("target")
    parser.add_argument("--factory", action="store_true")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="directory for NAME.pstats")
    args = parser.parse_args()
    inline_threadpool()
    loaded = import_from_string(args.target)
    app = loaded() if args.factory else loaded
    # The settings of procs.uvicorn_argv (the measured servers), as keyword arguments.
    uvicorn.run(
        ProfileControl(app, args.out),
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="info",
    )


if __name__ == "__main__":
    main()
