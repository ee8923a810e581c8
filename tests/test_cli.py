"""`python -m app_lib dev` and `reset`: a reloading app keeps its embedded database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.common.test_database_faults import DEADLINE, children, free_port


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app_lib", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cli_env(tmp_path: Path, port: int = 8000) -> dict[str, str]:
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "APP_ENV": "cli",
        "DYNAMODB_HOST": "embedded",
        "DATA_DIR": str(tmp_path / "data"),
        "SEED_ON_START": "true",
        "RUN_WORKER": "false",
        "LOG_LEVEL": "WARNING",
        "AUTH_MODE": "dev",
    }
    env.pop("EMBEDDED_URL", None)
    return env


def database_pid(dev_pid: int) -> int:
    for pid in children(dev_pid):
        if "app_lib.common.embedded" in Path(f"/proc/{pid}/cmdline").read_text():
            return pid
    raise AssertionError("no embedded database under the dev process")


def wait_for(check: object, what: str) -> None:
    started = time.monotonic()
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() - started < DEADLINE, what
        time.sleep(0.1)


def test_dev_keeps_the_database_across_code_reloads(tmp_path: Path) -> None:
    port = free_port()
    watched = tmp_path / "src"
    watched.mkdir()
    (watched / "module.py").write_text("VALUE = 1\n")
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen(
        [sys.executable, "-m", "app_lib", "dev", "--reload-dir", str(watched)],
        env=cli_env(tmp_path, port),
        stdout=log,
        stderr=log,
    )
    # The dev issuer's key is in DATA_DIR: a token made now stays valid across reloads.
    made = run_cli("token", "--sub", "dev", "--scope", "passengers:write", env=cli_env(tmp_path))
    token = made.stdout.strip()
    try:
        wait_for(lambda: httpx.get(url + "/ready").status_code == 200, "dev server not ready")
        database = database_pid(dev.pid)
        apps = set(children(dev.pid)) - {database}
        etag = httpx.get(url + "/api/v1/passengers/1").headers["etag"]
        changed = httpx.patch(
            url + "/api/v1/passengers/1",
            json={"name": "Before, Mr. Reload"},
            headers={"If-Match": etag, "Authorization": f"Bearer {token}"},
        )
        assert changed.status_code == 200

        time.sleep(1.1)  # file times have a resolution; the reloader compares them
        (watched / "module.py").write_text("VALUE = 2\n")
        wait_for(lambda: set(children(dev.pid)) - {database} - apps, "no reload happened")
        wait_for(lambda: httpx.get(url + "/ready").status_code == 200, "not ready after reload")

        assert database_pid(dev.pid) == database  # the same database process
        assert httpx.get(url + "/api/v1/passengers/1").json()["name"] == "Before, Mr. Reload"
    finally:
        dev.terminate()
        dev.wait(timeout=60)
        log.close()
    # The database went with the dev process.
    assert (
        not Path(f"/proc/{database}").exists()
        or "Z" in Path(f"/proc/{database}/stat").read_text().split()[2]
    )


def test_reset_wipes_the_data_and_refuses_while_it_is_used(tmp_path: Path) -> None:
    from app_lib.common.embedded import EmbeddedServer

    env = cli_env(tmp_path)
    with EmbeddedServer(tmp_path / "data"):
        refused = run_cli("reset", env=env)
        assert refused.returncode == 1
        assert "in use" in refused.stderr
        assert (tmp_path / "data").exists()
    done = run_cli("reset", env=env)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "data").exists()
    again = run_cli("reset", env=env)
    assert again.returncode == 0
    assert "nothing to wipe" in again.stderr


def test_an_unreachable_database_is_one_line_naming_it(tmp_path: Path) -> None:
    env = {
        **cli_env(tmp_path),
        "DYNAMODB_HOST": "http://127.0.0.1:9",  # nothing listens on the discard port
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "DYNAMODB_REQUEST_TIMEOUT": "2",
    }
    for command in (["seed", "passengers"], ["worker"]):
        result = run_cli(*command, env=env)
        assert result.returncode == 1, result.stderr
        lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
        assert lines == [
            f"{command[0]}: the database refused the connection (is it running?) "
            "(http://127.0.0.1:9)"
        ], result.stderr
        assert "Traceback" not in result.stderr


def test_a_csv_that_is_not_utf8_is_one_clear_refusal(tmp_path: Path) -> None:
    from app_lib.common.embedded import EmbeddedServer

    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(
        b"PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"
        b'1,0,3,"M\xfcller, Mr. J",male,22,1,0,A/5,7.25,,S\n'
    )
    with EmbeddedServer() as database:
        env = {**cli_env(tmp_path), "DYNAMODB_HOST": database.url}
        result = run_cli("seed", "passengers", "--file", str(latin1), env=env)
    assert result.returncode == 1
    assert "the file is not UTF-8 (byte 88)" in result.stderr
    assert "Traceback" not in result.stderr
