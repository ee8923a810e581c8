"""`python -m app_lib new-feature`: the specs it refuses, and a generated feature that passes
lint, mypy, the import contracts, its own tests and the CloudFormation contract as written,
in a throwaway copy of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app_lib.common.scaffold import ScaffoldError, make_spec, singular_of

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A spec with every kind of field: a String id made by the server, two indexes (str and int),
# an optional float, a bool, and a list.
WIDGETS = [
    "widgets",
    "--field",
    "name:str:index",
    "--field",
    "size:int:index",
    "--field",
    "weight:float?",
    "--field",
    "active:bool",
    "--field",
    "tags:list[str]",
]


@pytest.mark.parametrize(
    ("name", "fields", "id_spec", "message"),
    [
        ("Widgets", ["a:str"], None, "lower_snake_case"),
        ("widgets", ["a:date"], None, "not one of"),
        ("widgets", ["a:bool:index"], None, "can be indexed"),
        ("widgets", ["a:str", "a:int"], None, "name of its own"),
        ("widgets", ["widget_id:str"], None, "name of its own"),
        ("widgets", [], None, "at least one required"),
        ("widgets", ["a:str"], "id:uuid", "id name"),
        ("widgets", ["a:str"], "key:float", "str or int"),
        ("widgets", ["version:int"], None, "not 'version'"),
        ("widgets", ["tags:list[str]?"], None, "never null"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(
    name: str, fields: list[str], id_spec: str | None, message: str
) -> None:
    with pytest.raises(ScaffoldError, match=message):
        make_spec(name, fields, id_spec)


def test_singular_names() -> None:
    assert [singular_of(n) for n in ("students", "categories", "boxes", "news")] == [
        "student",
        "category",
        "boxe",
        "new",
    ]
    assert make_spec("news", ["a:str"], singular="news_item").singular == "news_item"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project (code, templates, test fixtures, settings) with `widgets` added
    by the command line, as a user would."""
    copy = tmp_path_factory.mktemp("project")
    for name in ("app_lib", "cloudformation"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    (copy / "tests").mkdir()
    for name in ("__init__.py", "conftest.py", "factories.py"):
        shutil.copy(ROOT / "tests" / name, copy / "tests")
    shutil.copytree(ROOT / "tests" / "cloudformation", copy / "tests" / "cloudformation")
    (copy / "tests" / "features").mkdir()
    (copy / "tests" / "features" / "__init__.py").write_text("")
    done = _run([sys.executable, "-m", "app_lib", "new-feature", *WIDGETS], copy)
    assert done.returncode == 0, done.stderr
    return copy


def test_the_command_writes_the_feature_and_its_template_table(project: Path) -> None:
    feature = project / "app_lib" / "features" / "widgets"
    assert sorted(p.name for p in feature.iterdir() if p.suffix == ".py") == [
        "__init__.py",
        "data_service.py",
        "dto.py",
        "routes.py",
        "table.py",
    ]
    template = (project / "cloudformation" / "backend.yaml").read_text()
    for expected in (
        "EnableWidgetsTable:",
        "WidgetsTableEnabled:",
        "  WidgetsTable:\n",
        "PolicyName: widgets-table",
        "WidgetsTableName:",
        "IndexName: by-size",
    ):
        assert expected in template
    # Running it again refuses, and changes nothing.
    again = _run([sys.executable, "-m", "app_lib", "new-feature", *WIDGETS], project)
    assert again.returncode == 2 and "exists already" in again.stderr
    assert (project / "cloudformation" / "backend.yaml").read_text() == template


def test_the_generated_code_passes_lint_mypy_and_the_import_contracts(project: Path) -> None:
    files = ["app_lib/features/widgets", "tests/features/widgets"]
    assert _run([str(BIN / "ruff"), "check", *files], project).returncode == 0
    assert _run([str(BIN / "ruff"), "format", "--check", *files], project).returncode == 0
    mypy = _run(
        [str(BIN / "mypy"), "--strict", "--cache-dir", str(project / ".mypy"), *files[:1]],
        project,
    )
    assert mypy.returncode == 0, mypy.stdout
    contracts = _run([str(BIN / "lint-imports")], project)
    assert contracts.returncode == 0, contracts.stdout


def test_the_generated_tests_and_the_template_contract_pass(project: Path) -> None:
    done = _run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-v",
            "tests/features/widgets",
            "tests/cloudformation",
        ],
        project,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    # Every generated route test ran and passed (none skipped), the filters' included.
    assert "SKIPPED" not in done.stdout
    passed = [line for line in done.stdout.splitlines() if "widgets/test_routes.py::" in line]
    assert len(passed) == 11 and all("PASSED" in line for line in passed)
    for name in ("test_list_filters_by_name", "test_list_filters_by_size", "test_put_replaces"):
        assert any(name in line for line in passed)
