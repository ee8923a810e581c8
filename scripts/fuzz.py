"""`make fuzz`: schemathesis against the running app, the way `make run` starts it.

Starts `python -m app_lib serve` on 127.0.0.1 and a free port (the embedded database, fresh and
seeded, its DATA_DIR inside the report folder), waits for /ready (bounded), runs `schemathesis run
.../openapi.json` with every check and all four phases (examples, coverage, fuzzing, stateful), a
fixed seed and bounded examples, prints totals and writes the reports to fuzz-report/
(git-ignored). The app, and with it its embedded database, is stopped whatever happens.
Exit status: 0 only when no check failed, no request errored, the app answered no 5xx, and the
stateful phase ran.

Settings that are not per run live in schemathesis.toml, with the reason for each exception.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from served_app import ROOT, ServedApp, die_with_parent, stop_group

CONFIG = ROOT / "schemathesis.toml"
PHASES = "examples,coverage,fuzzing,stateful"
# Checks that compare a response with the document: any failure means the response breaks it.
SCHEMA_CHECKS = (
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
)


App = ServedApp


def run_schemathesis(
    args: argparse.Namespace, url: str, report_dir: Path, token: str
) -> int | None:
    """schemathesis run, its output both on the terminal and in report_dir; None on timeout."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        url,
        # Every check runs: schemathesis.toml has `[checks] enabled = true`. Not `--checks all`: a
        # check named on the command line overrides the per-operation `enabled = false` there.
        "--phases",
        PHASES,
        "--seed",
        str(args.seed),
        # An admin's token: every operation is reachable (schemathesis' `ignored_auth` check
        # still sends requests without it, which must be refused).
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(args.max_examples),
        "--report",
        "json,ndjson,junit",
        "--report-dir",
        str(report_dir),
        "--report-json-path",
        str(report_dir / "schemathesis.json"),
        "--report-ndjson-path",
        str(report_dir / "events.ndjson"),
        "--report-junit-path",
        str(report_dir / "junit.xml"),
    ]
    print("+ " + " ".join(command[1:]).replace(token, "<token>"), flush=True)
    deadline = time.monotonic() + args.timeout
    with (report_dir / "schemathesis.txt").open("wb") as transcript:
        process = subprocess.Popen(  # noqa: S603 (our interpreter, our arguments)
            command,
            cwd=report_dir,  # anything it writes by default lands in the git-ignored folder
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        assert process.stdout is not None
        try:
            os.set_blocking(process.stdout.fileno(), False)
            while True:
                chunk = process.stdout.read(65536)
                if chunk:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
                    transcript.write(chunk)
                elif process.poll() is not None:
                    return process.returncode
                elif time.monotonic() > deadline:
                    print(f"\nfuzz: schemathesis still running after {args.timeout}s: stopped")
                    return None
                else:
                    time.sleep(0.1)
        finally:
            stop_group(process, grace=5)


def _root_cause(traceback: str) -> str:
    """The first exception line of a logged traceback chain: the root cause."""
    for line in traceback.splitlines():
        if line and not line[0].isspace() and ": " in line and not line.startswith("Traceback"):
            return line[:300]
    return ""


def summarize(report_dir: Path, app_log: Path) -> dict[str, Any]:
    """Totals from schemathesis's reports and from the app's own access log."""
    report: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        report = json.loads((report_dir / "schemathesis.json").read_text(encoding="utf-8"))
    requests = 0
    statuses: collections.Counter[int] = collections.Counter()
    failed_checks: collections.Counter[str] = collections.Counter()
    stateful: dict[str, Any] = {}
    scenarios: collections.Counter[str] = collections.Counter()
    server_errors: set[str] = set()
    checks_run: set[str] = set()
    with (
        contextlib.suppress(OSError),
        (report_dir / "events.ndjson").open(encoding="utf-8") as events,
    ):
        for line in events:
            event = json.loads(line)
            if "PhaseStarted" in event:
                phase = event["PhaseStarted"]
                if phase["phase"]["name"] == "stateful":
                    stateful = phase.get("payload") or {}
            elif "ScenarioFinished" in event:
                finished = event["ScenarioFinished"]
                scenarios[finished.get("phase") or "?"] += 1
                recorder = finished.get("recorder") or {}
                for interaction in (recorder.get("interactions") or {}).values():
                    requests += 1
                    response = interaction.get("response")
                    if response:
                        statuses[int(response["status_code"])] += 1
                        if int(response["status_code"]) >= 500:
                            request = interaction["request"]
                            server_errors.add(f"{request['method']} {request['uri']}"[:300])
                for checks in (recorder.get("checks") or {}).values():
                    for check in checks:
                        checks_run.add(check["name"])
                        if check.get("status") == "failure":
                            failed_checks[check["name"]] += 1
    # The app's side: every request it answered, and what its 5xx were.
    app_requests = 0
    app_5xx: collections.Counter[str] = collections.Counter()
    errors: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in app_log.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("logger") != "app_lib.access":
                continue
            if "exception" in record:
                errors[str(record.get("request_id"))] = _root_cause(str(record["exception"]))
            elif "status" in record:
                app_requests += 1
                if int(record["status"]) >= 500:
                    cause = errors.get(str(record.get("request_id")), "")
                    app_5xx[f"{record.get('message')}  {cause}".rstrip()] += 1
    operations = report.get("operations", {})
    return {
        "seed": report.get("seed"),
        "exit_code": report.get("exit_code"),
        "operations": {key: operations.get(key) for key in ("selected", "tested", "errored")},
        "phases": {name: value.get("status") for name, value in report.get("phases", {}).items()},
        "requests": requests,
        "requests_seen_by_app": app_requests,
        "statuses": dict(sorted(statuses.items())),
        "responses_5xx": sum(count for status, count in statuses.items() if status >= 500),
        "app_5xx": dict(app_5xx),
        "requests_5xx": sorted(server_errors),
        "checks_run": sorted(checks_run),
        "failed_checks": dict(failed_checks.most_common()),
        "failures_by_code": {
            f"{failure['code']} {failure['title']}": failure["count"]
            for failure in report.get("failures", [])
        },
        "errors": len(report.get("errors", [])),
        "scenarios": dict(scenarios),
        "stateful": stateful,
    }


def print_totals(totals: dict[str, Any], report_dir: Path) -> None:
    ops = totals["operations"]
    print("\n== make fuzz: totals ==")
    print(f"seed                {totals['seed']}")
    print(
        f"operations          {ops['tested']} tested / {ops['selected']} selected"
        f" ({ops['errored'] or 0} errored)"
    )
    print(f"phases              {', '.join(f'{k}={v}' for k, v in totals['phases'].items())}")
    links = totals["stateful"]
    print(
        f"stateful links      {links.get('transitions_selected', 0)} used"
        f" ({links.get('inferred_transitions', 0)} inferred);"
        f" {totals['scenarios'].get('stateful', 0)} stateful scenarios"
    )
    print(
        f"requests            {totals['requests']} recorded by schemathesis"
        f" ({totals['requests_seen_by_app']} answered by the app, readiness polls included)"
    )
    print(f"statuses            {totals['statuses']}")
    app_5xx = sum(totals["app_5xx"].values())
    print(f"5xx responses       {totals['responses_5xx']} (the app logged {app_5xx})")
    for line, count in totals["app_5xx"].items():
        print(f"  {count:4d}  {line}")
    for request in totals["requests_5xx"]:
        print(f"        {request}")
    print(f"checks run          {len(totals['checks_run'])}: {', '.join(totals['checks_run'])}")
    print("failures by check   " + ("none" if not totals["failed_checks"] else ""))
    for name, count in totals["failed_checks"].items():
        marker = "  (breaks the document)" if name in SCHEMA_CHECKS else ""
        print(f"  {count:4d}  {name}{marker}")
    if totals["failures_by_code"]:
        codes = ", ".join(f"{code}: {count}" for code, count in totals["failures_by_code"].items())
        print(f"unique failures     {codes}")
    print(f"errors              {totals['errors']}")
    shown = report_dir.relative_to(ROOT) if report_dir.is_relative_to(ROOT) else report_dir
    print(f"reports             {shown}/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fuzz.py", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "20240601")))
    parser.add_argument(
        "--max-examples",
        type=int,
        default=int(os.environ.get("FUZZ_MAX_EXAMPLES", "100")),
        help="test cases per operation and phase (stateful: scenarios)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("FUZZ_TIMEOUT", "900")),
        help="seconds schemathesis may run before it is stopped (a failure)",
    )
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    parser.add_argument("--report-dir", type=Path, default=ROOT / "fuzz-report")
    args = parser.parse_args(argv)

    report_dir: Path = args.report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("schemathesis.json", "events.ndjson", "junit.xml", "summary.json"):
        (report_dir / stale).unlink(missing_ok=True)

    # SIGTERM (CI cancelling the job) unwinds like Ctrl-C, so the finally below stops the app.
    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)

    shutil.rmtree(report_dir / "data", ignore_errors=True)
    app = App(report_dir / "app.log", report_dir / "data")
    code: int | None = None
    try:
        token = app.token()
        app.start()
        print(f"fuzz: app on http://127.0.0.1:{app.port} (log: {app.log_path})", flush=True)
        print(f"fuzz: ready in {app.wait_ready(args.ready_timeout):.1f}s", flush=True)
        url = f"http://127.0.0.1:{app.port}/openapi.json"
        code = run_schemathesis(args, url, report_dir, token)
    except RuntimeError as error:
        print(f"fuzz: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fuzz: interrupted", file=sys.stderr)
        return 130
    finally:
        app.stop()

    totals = summarize(report_dir, app.log_path)
    totals["schemathesis_exit_code"] = code
    (report_dir / "summary.json").write_text(json.dumps(totals, indent=2) + "\n", encoding="utf-8")
    print_totals(totals, report_dir)

    problems = []
    if code is None:
        problems.append("schemathesis did not finish in time")
    if totals["responses_5xx"] or totals["app_5xx"]:
        problems.append("server errors (5xx)")
    broken = sum(totals["failed_checks"].get(name, 0) for name in SCHEMA_CHECKS)
    if broken:
        problems.append(f"{broken} responses that break the document")
    others = sum(totals["failed_checks"].values()) - broken
    if others:
        problems.append(f"{others} other check failures")
    if totals["errors"]:
        problems.append(f"{totals['errors']} errors")
    if not totals["stateful"].get("transitions_selected") or not totals["scenarios"].get(
        "stateful"
    ):
        problems.append("the stateful phase did not run (no links)")
    if code not in (0, None) and not problems:
        problems.append(f"schemathesis exited with {code}")
    print("RESULT              " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
