"""The README's examples (and those of docs/*.md) work as printed: every shell block that talks
to `localhost:8000` runs,
as written, against a served app (`python -m app_lib serve` on the embedded database, seeded,
auth on), and every request in it succeeds (curl fails the block on an HTTP error)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from served_app import ServedApp  # noqa: E402

BLOCK = re.compile(r"```(?:sh|bash)\n(.*?)```", re.S)
# Every curl of a block fails it on an HTTP error (>= 400), and none waits forever.
PREAMBLE = 'set -euo pipefail\ncurl() { command curl --fail-with-body -sS -m 60 "$@"; }\n'


def readme_blocks() -> list[str]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages)
    return [block for block in BLOCK.findall(text) if "localhost:8000" in block]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    workdir = tmp_path_factory.mktemp("readme")
    app = ServedApp(workdir / "app.log", workdir / "data")
    app.token()  # the dev key exists before the app reads it
    app.start()
    try:
        app.wait_ready(120)
        yield app
    finally:
        app.stop()


def test_the_readme_has_runnable_examples() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 3
    assert all(
        "<" not in line
        for block in blocks
        for line in block.splitlines()
        if not line.lstrip().startswith("#")
    )  # no placeholders left to fill in


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_a_readme_block_runs_as_printed(served: ServedApp, index: int) -> None:
    block = readme_blocks()[index]
    script = PREAMBLE + block.replace("localhost:8000", f"127.0.0.1:{served.port}")
    env = {**os.environ, "DATA_DIR": str(served.data_dir), "AUTH_MODE": "dev"}
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, (
        f"{block}\n--- stdout\n{done.stdout[-2000:]}\n--- stderr\n{done.stderr[-2000:]}"
    )
