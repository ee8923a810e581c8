"""A Python client generated from the live document with openapi-python-client (as client teams
do): it generates without a warning, drives the API (list, get, create, PATCH with If-Match, PUT
of a read sent back, delete), parses every error into its problem model, and a script that reads
a passenger and PUTs it back passes mypy --strict."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PACKAGE = "app_lib_client"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
TIMEOUT = 300

# Typed use of the generated client, checked by mypy --strict and run against the server: a read
# goes back as a PUT with every field as read (the PUT body has no id), with its ETag.
READ_THEN_PUT = '''\
"""Read a passenger, send it back unchanged as a PUT (If-Match: the read's ETag)."""

from __future__ import annotations

from app_lib_client import AuthenticatedClient
from app_lib_client.api.passengers import get_passenger, replace_passenger
from app_lib_client.models import PassengerRead, PassengerReplace, Problem


def replace_body(read: PassengerRead) -> PassengerReplace:
    """Every field of the read, as the PUT takes it: the same types, enums included."""
    return PassengerReplace(
        survived=read.survived,
        pclass=read.pclass,
        name=read.name,
        sex=read.sex,
        age=read.age,
        sibsp=read.sibsp,
        parch=read.parch,
        ticket=read.ticket,
        fare=read.fare,
        cabin=read.cabin,
        embarked=read.embarked,
    )


def read_then_put(client: AuthenticatedClient, passenger_id: str) -> tuple[PassengerRead, str]:
    """The passenger as the PUT returned it, and its new ETag."""
    got = get_passenger.sync_detailed(passenger_id, client=client)
    read = got.parsed
    if not isinstance(read, PassengerRead):
        raise RuntimeError(f"GET answered {got.status_code}")
    put = replace_passenger.sync_detailed(
        passenger_id, client=client, body=replace_body(read), if_match=got.headers["ETag"]
    )
    if isinstance(put.parsed, Problem):
        raise RuntimeError(put.parsed.detail)
    if not isinstance(put.parsed, PassengerRead):
        raise RuntimeError(f"PUT answered {put.status_code}")
    return put.parsed, put.headers["ETag"]
'''


WRONG_ENUM = """\
from app_lib_client.models import PassengerRead, Port


def port_of(read: PassengerRead) -> Port:
    port: Port = read.sex
    return port
"""
# Checked as a client team's code would be: mypy --strict on the script and the generated
# package it imports, with no configuration of ours, but for one module of the generator's own.
MYPY_INI = """\
[mypy]

[mypy-app_lib_client.client]
# openapi-python-client 0.29.1's client.py calls httpx's __exit__ with *args: object, which
# mypy --strict refuses: the generator's template, the same for any document.
ignore_errors = True
"""


def mypy_strict(folder: Path, script: str) -> subprocess.CompletedProcess[str]:
    (folder / "mypy.ini").write_text(MYPY_INI, encoding="utf-8")
    command = [sys.executable, "-m", "mypy", "--strict", "--config-file", "mypy.ini"]
    command += ["--cache-dir", str(folder / ".mypy_cache"), script]
    return run(command, cwd=folder)


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def generated(live_document: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client package generated from the live document; the folder that holds it."""
    root = tmp_path_factory.mktemp("python-client")
    config = root / "config.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\n", encoding="utf-8")
    result = run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(live_document),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(root / PACKAGE),
        ],
        cwd=root,
        # The generator formats its output with ruff (the venv's).
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    (root / "generator-output.txt").write_text(output, encoding="utf-8")
    (root / "read_then_put.py").write_text(READ_THEN_PUT, encoding="utf-8")
    return root


class Generated:
    """The generated package, imported from its folder: `.module("api.passengers.get_job")`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def module(self, name: str = "") -> Any:
        return importlib.import_module(f"{PACKAGE}.{name}" if name else PACKAGE)


@pytest.fixture(scope="module")
def client_package(generated: Path) -> Iterator[Generated]:
    sys.path.insert(0, str(generated))
    try:
        yield Generated(generated)
    finally:
        sys.path.remove(str(generated))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture
def api(client_package: Generated, live_url: str, bearer_token: str, tables: str) -> Iterator[Any]:
    """A client of the generated package for the live server, over this test's tables."""
    package = client_package.module()
    with package.AuthenticatedClient(
        base_url=live_url, token=bearer_token, raise_on_unexpected_status=True, timeout=60.0
    ) as client:
        yield client


def test_the_generator_prints_no_warning(generated: Path) -> None:
    output = (generated / "generator-output.txt").read_text(encoding="utf-8")
    lines = [line for line in output.splitlines() if line.strip()]
    # All it prints on success: the folder it generates into.
    assert lines == [f"Generating {generated / PACKAGE}"], output


def test_list_get_create_patch_put_delete(client_package: Generated, api: Any) -> None:
    models = client_package.module("models")
    passengers = "api.passengers."
    create = client_package.module(passengers + "create_passenger")
    listing = client_package.module(passengers + "list_passengers")
    get = client_package.module(passengers + "get_passenger")
    update = client_package.module(passengers + "update_passenger")
    replace = client_package.module(passengers + "replace_passenger")
    delete = client_package.module(passengers + "delete_passenger")

    body = models.PassengerCreate(
        survived=True, pclass=1, name="Cumings, Mrs. John Bradley", sex=models.Sex.FEMALE, age=38.0
    )
    created = create.sync_detailed(client=api, body=body)
    assert created.status_code == 201
    read = created.parsed
    assert isinstance(read, models.PassengerRead)
    assert (read.name, read.sex, read.embarked, read.sibsp) == (
        body.name,
        models.Sex.FEMALE,
        None,
        0,
    )
    assert created.headers["Location"] == f"/api/v1/passengers/{read.passenger_id}"
    assert created.headers["ETag"] == '"1"'

    page = listing.sync(client=api, sex=models.Sex.FEMALE)
    assert isinstance(page, models.PagePassengerRead)
    assert [p.passenger_id for p in page.items] == [read.passenger_id]
    assert page.next_cursor is None

    got = get.sync_detailed(read.passenger_id, client=api)
    assert got.parsed == read
    etag = got.headers["ETag"]

    patched = update.sync_detailed(
        read.passenger_id,
        client=api,
        body=models.PassengerUpdate(embarked=models.Port.C, age=39.0),
        if_match=etag,
    )
    assert patched.status_code == 200, patched.content
    assert (patched.parsed.embarked, patched.parsed.age) == (models.Port.C, 39.0)
    assert patched.headers["ETag"] == '"2"'

    # A PATCH without If-Match: the header is left out (not sent as "None"), any version will do.
    unguarded = update.sync_detailed(
        read.passenger_id, client=api, body=models.PassengerUpdate(cabin="C85")
    )
    assert unguarded.status_code == 200, unguarded.content
    assert unguarded.parsed.cabin == "C85"

    # The read goes back unchanged as the PUT's body: every field but the id (in the path).
    current = unguarded.parsed
    fields = {key: value for key, value in current.to_dict().items() if key != "passenger_id"}
    put = replace.sync_detailed(
        read.passenger_id,
        client=api,
        body=models.PassengerReplace.from_dict(fields),
        if_match=unguarded.headers["ETag"],
    )
    assert put.status_code == 200, put.content
    assert put.parsed == current
    assert put.headers["ETag"] == '"4"'

    deleted = delete.sync_detailed(read.passenger_id, client=api, if_match=put.headers["ETag"])
    assert deleted.status_code == 204
    gone = get.sync_detailed(read.passenger_id, client=api)
    assert gone.status_code == 404
    assert isinstance(gone.parsed, models.Problem)


def test_errors_are_parsed_into_their_problem_models(client_package: Generated, api: Any) -> None:
    models = client_package.module("models")
    passengers = "api.passengers."
    create = client_package.module(passengers + "create_passenger")
    get = client_package.module(passengers + "get_passenger")
    update = client_package.module(passengers + "update_passenger")

    not_found = get.sync_detailed("nobody", client=api)
    assert not_found.status_code == 404
    assert isinstance(not_found.parsed, models.Problem)
    assert (not_found.parsed.status, not_found.parsed.detail) == (404, "no passenger nobody")
    assert not_found.parsed.request_id == not_found.headers["X-Request-ID"]

    body = models.PassengerCreate(
        survived=False,
        pclass=3,
        name="Braund, Mr. Owen Harris",
        sex=models.Sex.MALE,
        passenger_id="1",
    )
    assert create.sync_detailed(client=api, body=body).status_code == 201
    conflict = create.sync_detailed(client=api, body=body)
    assert conflict.status_code == 409
    assert isinstance(conflict.parsed, models.Problem)
    assert (conflict.parsed.status, conflict.parsed.detail) == (409, "an item with id 1 exists")

    stale = update.sync_detailed(
        "1", client=api, body=models.PassengerUpdate(age=23.0), if_match='"99"'
    )
    assert stale.status_code == 412
    assert isinstance(stale.parsed, models.Problem)
    assert stale.parsed.status == 412
    assert isinstance(stale.parsed.detail, str) and stale.parsed.detail  # its wording may change

    invalid = create.sync_detailed(
        client=api,
        body=models.PassengerCreate(survived=True, pclass=9, name="X", sex=models.Sex.MALE),
    )
    assert invalid.status_code == 422
    assert isinstance(invalid.parsed, models.ValidationProblem)
    assert invalid.parsed.detail == "invalid input: body.pclass"
    [error] = invalid.parsed.errors
    assert isinstance(error, models.FieldProblem)
    assert (error.field, error.type_) == ("body.pclass", "less_than_equal")


def test_a_typed_read_then_put_passes_mypy_strict_and_runs(
    client_package: Generated, api: Any, generated: Path
) -> None:
    result = mypy_strict(generated, "read_then_put.py")
    assert result.returncode == 0, result.stdout + result.stderr
    # The check has teeth: a read's enum where another is expected is refused.
    (generated / "wrong_enum.py").write_text(WRONG_ENUM, encoding="utf-8")
    refused = mypy_strict(generated, "wrong_enum.py")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert 'Incompatible types in assignment (expression has type "Sex"' in refused.stdout

    models = client_package.module("models")
    create = client_package.module("api.passengers.create_passenger")
    created = create.sync(
        client=api,
        body=models.PassengerCreate(
            survived=True,
            pclass=2,
            name="Hewlett, Mrs. Mary D",
            sex=models.Sex.FEMALE,
            age=55.0,
            fare=16.0,
            embarked=models.Port.S,
            ticket="248706",
        ),
    )
    sys.path.insert(0, str(generated))
    try:
        script = importlib.import_module("read_then_put")
        put, etag = script.read_then_put(api, created.passenger_id)
    finally:
        sys.path.remove(str(generated))
        sys.modules.pop("read_then_put", None)
    assert put == created
    assert etag == '"2"'
