"""The jobs feature's sub-commands of `python -m app_lib` (through `Feature.commands`)."""

from __future__ import annotations

import argparse
import sys

from app_lib.common.config import get_settings


def commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`worker [--threads N]`: long-poll the jobs queue and run the jobs."""
    worker = subparsers.add_parser("worker", help="long-poll the jobs queue and run the jobs")
    worker.add_argument("--threads", type=int, default=1, help="jobs run in parallel")
    worker.set_defaults(run=worker_command)


def worker_command(args: argparse.Namespace) -> int:
    """Run worker threads until SIGINT/SIGTERM (2: refused, the database is embedded). A
    database or queue that does not answer raises an AppError: `__main__` prints one line."""
    from app_lib.features.jobs.runner import run_workers

    settings = get_settings()
    if settings.embedded:
        print(
            "worker: DYNAMODB_HOST is 'embedded', whose database and queue live inside `make run` "
            "(which runs a worker thread itself); point DYNAMODB_HOST at a server (or leave it "
            "empty for AWS) and set JOBS_QUEUE_URL",
            file=sys.stderr,
        )
        return 2
    return run_workers(settings, args.threads)
