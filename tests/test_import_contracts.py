"""The import boundaries of pyproject.toml's [tool.importlinter], enforced by `make lint`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", "pyproject.toml"],
        cwd=project,
        env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the package and its contracts, to break on purpose."""
    shutil.copytree(ROOT / "app_lib", tmp_path / "app_lib", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold(project: Path) -> None:
    result = lint_imports(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "app_lib/features/passengers/routes.py",
            "from app_lib.features.jobs import table as _jobs_table  # noqa",
            "Features never import each other",
        ),
        (
            "app_lib/common/http.py",
            "from app_lib.features.passengers import dto as _passengers  # noqa",
            "The common layer does not import features",
        ),
        (
            "app_lib/common/errors.py",
            "import fastapi  # noqa",
            "Domain code does not import FastAPI",
        ),
        (
            "app_lib/features/passengers/data_service.py",
            "from app_lib.common import problems as _problems  # noqa",
            "Domain code does not import FastAPI",
        ),
    ],
)
def test_a_violating_import_fails_the_lint(
    project: Path, module: str, line: str, contract: str
) -> None:
    path = project / module
    path.write_text(path.read_text() + f"\n{line}\n")
    result = lint_imports(project)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout
    assert "BROKEN" in result.stdout
