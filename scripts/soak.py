"""`make soak`: mixed traffic against the default set-up, watching both processes' memory.

Starts `python -m app_lib serve` as `make run` would (embedded database, seeded; HOST=127.0.0.1, a
free PORT, DATA_DIR in a temporary directory so that the user's .data is untouched), waits for
/ready (bounded), then runs 8 client threads for SOAK_SECONDS (default 180; also a request cap):
50% GET by id, 20% filtered pages, 20% GET then PATCH with the ETag in If-Match (a 412 from a lost
race is expected and counted), 10% stats. Every few seconds it samples VmRSS of the app process
and of the embedded database child. It prints the totals and the memory curve, writes
soak-results.json (git-ignored), and exits non-zero when the embedded database grew more than
20% after the first minute, when any request answered 5xx or failed, or when the database child
was restarted. The app, and with it its embedded database, is stopped whatever happens.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import math
import os
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from served_app import ROOT, ServedApp

RESULTS = ROOT / "soak-results.json"
IDS = 891  # the seeded passengers: "1".."891"
BASELINE_SECONDS = 60.0  # growth is measured from the sample at this time to the end
MIX = (("get", 50), ("page", 20), ("patch", 20), ("stats", 10))


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (VmRSS), None when it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU a process has used so far, None when it is gone."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in task.read_text().split()]
    return found


def database_pid(app_pid: int) -> int | None:
    """The embedded database: the app's child running `app_lib.common.embedded`."""
    for child in children(app_pid):
        with contextlib.suppress(OSError):
            if b"app_lib.common.embedded" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
    return None


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


# ----- the app ------------------------------------------------------------------------------------
class App(ServedApp):
    """The served app, its DATA_DIR and log in the soak's work folder; counts its logged 5xx."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir / "app.log", workdir / "data")

    def logged_5xx(self) -> dict[str, int]:
        """The 5xx the app's access log recorded, with the root cause of each when logged."""
        causes: dict[str, str] = {}
        found: collections.Counter[str] = collections.Counter()
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line.startswith("{"):
                    continue
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if "exception" in record:
                        last = str(record["exception"]).strip().splitlines()[-1:]
                        causes[str(record.get("request_id"))] = last[0][:200] if last else ""
                    access = record.get("logger") == "app_lib.access" and "status" in record
                    if access and int(record["status"]) >= 500:
                        cause = causes.get(str(record.get("request_id")), "")
                        found[f"{record.get('message')} {cause}".strip()] += 1
        return dict(found)


# ----- the clients --------------------------------------------------------------------------------
@dataclass
class Tally:
    """What the clients saw; shared, updated under `lock`."""

    cap: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    failures: list[str] = field(default_factory=list)

    def claim(self) -> bool:
        """One more request under the cap?"""
        with self.lock:
            if self.requests >= self.cap:
                return False
            self.requests += 1
            return True

    def record(self, kind: str, status: str, ms: float, detail: str = "") -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies[kind].append(ms)
            if detail and len(self.failures) < 20:
                self.failures.append(detail)


class Client:
    def __init__(self, port: int, tally: Tally, seed: int, token: str) -> None:
        self.port = port
        self.auth = {"Authorization": f"Bearer {token}"}
        self.tally = tally
        self.rng = random.Random(seed)
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(
        self,
        kind: str,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any] | None:
        """One request, timed and tallied; None when the cap is reached or it failed."""
        if not self.tally.claim():
            return None
        data = None if body is None else json.dumps(body).encode()
        sent = {**self.auth, **(headers or {})}
        if data:
            sent["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=data, headers=sent)
            response = self.conn.getresponse()
            raw = response.read()
        except (http.client.HTTPException, OSError) as error:
            ms = (time.perf_counter() - started) * 1000
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            name = type(error).__name__
            self.tally.record(kind, name, ms, f"{method} {path}: {name}: {error}")
            return None
        ms = (time.perf_counter() - started) * 1000
        status = response.status
        detail = f"{method} {path}: {status} {raw[:200]!r}" if status >= 500 else ""
        self.tally.record(kind, str(status), ms, detail)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        return status, {k.lower(): v for k, v in response.getheaders()}, payload

    def one(self) -> bool:
        """One operation of the mix; False once the cap is reached."""
        rng = self.rng
        kind = rng.choices([name for name, _ in MIX], [weight for _, weight in MIX])[0]
        passenger = f"/api/v1/passengers/{rng.randint(1, IDS)}"
        if kind == "get":
            return self.call("get", "GET", passenger) is not None
        if kind == "stats":
            return self.call("stats", "GET", "/api/v1/passengers/stats") is not None
        if kind == "page":
            filters = {
                "pclass": rng.choice([None, 1, 2, 3]),
                "sex": rng.choice([None, "female", "male"]),
                "survived": rng.choice([None, "true", "false"]),
                "embarked": rng.choice([None, None, "C", "Q", "S"]),
            }
            query = "&".join(f"{k}={v}" for k, v in filters.items() if v is not None)
            limit = rng.choice([10, 25, 50, 100])
            path = f"/api/v1/passengers?{query}&limit={limit}".replace("?&", "?")
            answer = self.call("page", "GET", path)
            if answer is None:
                return False
            cursor = (answer[2] or {}).get("next_cursor") if answer[0] == 200 else None
            if cursor and rng.random() < 0.25:  # sometimes the next page too
                next_page = f"{path}&cursor={cursor}"
                return self.call("page", "GET", next_page) is not None
            return True
        read = self.call("patch-get", "GET", passenger)
        if read is None:
            return False
        if read[0] != 200 or "etag" not in read[1]:
            return True
        change = {"fare": round(rng.uniform(0, 300), 2)}
        headers = {"If-Match": read[1]["etag"]}
        return self.call("patch", "PATCH", passenger, change, headers) is not None

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set() and self.one():
                pass
        finally:
            self.conn.close()


# ----- memory -------------------------------------------------------------------------------------
def sample(app: App, started: float, tally: Tally, db_pids: set[int]) -> dict[str, Any]:
    db = database_pid(app.pid)
    if db is not None:
        db_pids.add(db)
    with tally.lock:
        requests = tally.requests
    return {
        "t": round(time.monotonic() - started, 1),
        "requests": requests,
        "app_mb": round(rss_mb(app.pid) or 0.0, 1),
        "db_mb": round(rss_mb(db) or 0.0, 1) if db is not None else None,
        "db_pid": db,
        "app_cpu_s": cpu_seconds(app.pid),
        "db_cpu_s": cpu_seconds(db),
    }


def at(samples: list[dict[str, Any]], t: float) -> dict[str, Any]:
    """The first sample taken at or after t seconds (the last one when none is)."""
    return next((s for s in samples if s["t"] >= t), samples[-1])


def soak(app: App, args: argparse.Namespace, db_pids: set[int], token: str) -> dict[str, Any]:
    tally = Tally(cap=args.max_requests)
    stop = threading.Event()
    clients = [Client(app.port, tally, args.seed + i, token) for i in range(args.clients)]
    threads = [
        threading.Thread(target=c.run, args=(stop,), name=f"client-{i}", daemon=True)
        for i, c in enumerate(clients)
    ]
    started = time.monotonic()
    samples = [sample(app, started, tally, db_pids)]
    for thread in threads:
        thread.start()
    next_sample = started + args.sample_seconds
    end = started + args.seconds
    try:
        while time.monotonic() < end and any(t.is_alive() for t in threads):
            time.sleep(max(0.0, min(next_sample, end) - time.monotonic()))
            if time.monotonic() >= next_sample:
                samples.append(sample(app, started, tally, db_pids))
                s = samples[-1]
                print(
                    f"  t={s['t']:6.1f}s  requests={s['requests']:7d}  app={s['app_mb']:7.1f} MB"
                    f"  db={s['db_mb'] if s['db_mb'] is not None else '-':>7} MB",
                    flush=True,
                )
                next_sample += args.sample_seconds
    finally:
        stop.set()  # also when interrupted: the clients stop before the app does
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.monotonic() - started
    samples.append(sample(app, started, tally, db_pids))
    return {"tally": tally, "samples": samples, "elapsed": elapsed, "db_pids": sorted(db_pids)}


# ----- report -------------------------------------------------------------------------------------
def report(app: App, run: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    tally: Tally = run["tally"]
    samples: list[dict[str, Any]] = run["samples"]
    elapsed: float = run["elapsed"]
    every = [ms for values in tally.latencies.values() for ms in values]
    # The growth is measured from the first minute; a shorter run uses its first third.
    baseline_t = BASELINE_SECONDS if elapsed >= 1.5 * BASELINE_SECONDS else elapsed / 3
    start, baseline, last = samples[0], at(samples, baseline_t), samples[-1]
    baseline_t = baseline["t"]
    cpu = {}
    for name in ("app", "db"):
        first, final = start[f"{name}_cpu_s"], last[f"{name}_cpu_s"]
        if first is not None and final is not None and len(run["db_pids"]) <= 1:
            cpu[name] = round((final - first) / elapsed, 3)
    growth = None
    if baseline["db_mb"] and last["db_mb"] is not None:
        growth = last["db_mb"] / baseline["db_mb"] - 1
    statuses = dict(sorted(tally.statuses.items()))
    server_errors = sum(n for s, n in statuses.items() if s.isdigit() and int(s) >= 500)
    transport_errors = sum(n for s, n in statuses.items() if not s.isdigit())
    unexpected = sum(n for s, n in statuses.items() if s.isdigit() and s not in ("200", "412"))
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(elapsed, 1),
        "clients": args.clients,
        "mix": dict(MIX),
        "requests": sum(tally.statuses.values()),
        "requests_per_second": round(sum(tally.statuses.values()) / elapsed, 1),
        "statuses": statuses,
        "lost_races_412": statuses.get("412", 0),
        "server_errors_5xx": server_errors,
        "transport_errors": transport_errors,
        "app_logged_5xx": app.logged_5xx(),
        "failures": tally.failures,
        "latency_ms": {
            kind: {
                "n": len(values),
                "p50": round(percentile(values, 50), 2),
                "p99": round(percentile(values, 99), 2),
                "max": round(max(values), 2),
            }
            for kind, values in sorted({"all": every, **tally.latencies}.items())
            if values
        },
        "memory_mb": {
            "baseline_t": round(baseline_t, 1),
            "app": {
                "start": start["app_mb"],
                "baseline": baseline["app_mb"],
                "end": last["app_mb"],
            },
            "db": {"start": start["db_mb"], "baseline": baseline["db_mb"], "end": last["db_mb"]},
            "db_growth_after_baseline": None if growth is None else round(growth, 4),
            "db_growth_limit": args.max_growth,
        },
        "cpu_cores_used": cpu,
        "db_pids": run["db_pids"],
        "samples": samples,
    }
    problems = []
    if growth is None:
        problems.append("the embedded database's memory could not be read")
    elif growth > args.max_growth:
        problems.append(
            f"the embedded database grew {growth:+.0%} after {baseline_t:.0f}s"
            f" (limit {args.max_growth:+.0%})"
        )
    if server_errors:
        problems.append(f"{server_errors} responses were 5xx")
    if transport_errors:
        problems.append(f"{transport_errors} requests failed without an answer")
    if len(run["db_pids"]) > 1:
        problems.append("the embedded database was restarted during the soak")
    results["unexpected_statuses"] = unexpected
    results["result"] = "PASS" if not problems else "FAIL: " + "; ".join(problems)
    return results, 1 if problems else 0


def print_report(results: dict[str, Any], rows: int) -> None:
    memory = results["memory_mb"]
    print("\n== make soak ==")
    print(
        f"traffic             {results['clients']} clients, {results['seconds']:.0f}s, mix "
        + ", ".join(f"{k} {v}%" for k, v in results["mix"].items())
    )
    print(f"requests            {results['requests']} ({results['requests_per_second']:.1f}/s)")
    print(f"statuses            {results['statuses']}")
    print(
        f"errors              5xx: {results['server_errors_5xx']}, no answer:"
        f" {results['transport_errors']}, 412 (lost races, expected):"
        f" {results['lost_races_412']}, other non-200: {results['unexpected_statuses']}"
    )
    for line, count in results["app_logged_5xx"].items():
        print(f"  {count:5d}  {line}")
    for failure in results["failures"][:10]:
        print(f"        {failure}")
    print("latency ms          kind          n      p50      p99      max")
    for kind, values in results["latency_ms"].items():
        print(
            f"                    {kind:<10} {values['n']:6d} {values['p50']:8.2f}"
            f" {values['p99']:8.2f} {values['max']:8.1f}"
        )
    cores = results["cpu_cores_used"]
    print(
        "cpu                 "
        + ", ".join(f"{name} {used:.2f} cores" for name, used in cores.items())
        + f" (of {os.cpu_count()}, shared)"
    )
    base = memory["baseline_t"]
    print(f"memory MB           start    at {base:.0f}s      end")
    for name, label in (("app", "app"), ("db", "embedded database")):
        values = memory[name]
        print(
            f"  {label:<17} {values['start'] or 0:7.1f}  {values['baseline'] or 0:9.1f}"
            f"  {values['end'] or 0:7.1f}"
        )
    growth = memory["db_growth_after_baseline"]
    shown = "?" if growth is None else f"{growth:+.1%}"
    print(f"db growth after {base:.0f}s {shown} (limit {memory['db_growth_limit']:+.0%})")
    samples = results["samples"]
    stride = max(1, math.ceil(len(samples) / rows))
    picked = samples[::stride] + ([samples[-1]] if (len(samples) - 1) % stride else [])
    print("memory curve        t(s)  requests   app MB    db MB")
    for s in picked:
        db = "-" if s["db_mb"] is None else f"{s['db_mb']:.1f}"
        print(f"                  {s['t']:6.0f}  {s['requests']:8d}  {s['app_mb']:7.1f}  {db:>7}")
    print(f"RESULT              {results['result']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak.py", description=__doc__.splitlines()[0])
    env = os.environ.get
    parser.add_argument("--seconds", type=float, default=float(env("SOAK_SECONDS", "180")))
    parser.add_argument("--clients", type=int, default=int(env("SOAK_CLIENTS", "8")))
    parser.add_argument("--max-requests", type=int, default=int(env("SOAK_MAX_REQUESTS", "500000")))
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--max-growth", type=float, default=0.20)
    parser.add_argument("--seed", type=int, default=int(env("SOAK_SEED", "1912")))
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--rows", type=int, default=20, help="rows of the printed memory curve")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 3600 or not 0 < args.clients <= 64:
        parser.error("SOAK_SECONDS must be in (0, 3600] and SOAK_CLIENTS in 1..64")

    # SIGTERM (CI cancelling the job) unwinds like Ctrl-C, so the finally below stops the app.
    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)

    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        app = App(Path(workdir))
        db_pids: set[int] = set()
        try:
            token = app.token()
            app.start()
            print(
                f"soak: app on http://127.0.0.1:{app.port} (pid {app.pid}, DATA_DIR in {workdir})"
            )
            print(f"soak: ready in {app.wait_ready(args.ready_timeout):.1f}s", flush=True)
            print(
                f"soak: {args.clients} clients for {args.seconds:.0f}s"
                f" (at most {args.max_requests} requests), memory every {args.sample_seconds:.0f}s",
                flush=True,
            )
            run = soak(app, args, db_pids, token)
            results, code = report(app, run, args)
        except RuntimeError as error:
            print(f"soak: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("soak: interrupted", file=sys.stderr)
            return 130
        finally:
            app.stop()
            # Nothing of ours may outlive the soak: the database child included.
            leftovers = [pid for pid in sorted(db_pids) if rss_mb(pid) is not None]
            if leftovers:
                print(f"soak: still running after stop: {leftovers}", file=sys.stderr)
    args.results.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_report(results, args.rows)
    shown = args.results.relative_to(ROOT) if args.results.is_relative_to(ROOT) else args.results
    print(f"results             {shown}")
    return code


if __name__ == "__main__":
    sys.exit(main())
