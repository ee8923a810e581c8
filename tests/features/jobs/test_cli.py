"""The jobs feature's `worker` command, added to `python -m app_lib` through Feature.commands."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

import app_lib.__main__ as main_module
from app_lib.common.config import Settings
from app_lib.features import jobs
from app_lib.features.jobs import cli


def test_the_worker_command_is_the_jobs_features() -> None:
    assert jobs.FEATURE.commands is cli.commands
    assert not hasattr(main_module, "_worker")
    parser = argparse.ArgumentParser()
    cli.commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["worker", "--threads", "4"])
    assert args.run is cli.worker_command and args.threads == 4
    assert parser.parse_args(["worker"]).threads == 1


def test_worker_help_is_served_by_the_app_cli() -> None:
    env = {**os.environ, "DYNAMODB_HOST": "embedded", "LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [sys.executable, "-m", "app_lib", "worker", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--threads" in result.stdout and "jobs run in parallel" in result.stdout


def test_worker_command_refuses_the_embedded_database(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The embedded server lives inside `make run` (which has its own worker thread).
    embedded = settings.model_copy(update={"dynamodb_host": "embedded"})
    monkeypatch.setattr(cli, "get_settings", lambda: embedded)
    assert cli.worker_command(argparse.Namespace(threads=1)) == 2
    assert "DYNAMODB_HOST is 'embedded'" in capsys.readouterr().err
