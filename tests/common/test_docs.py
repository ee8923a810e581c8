"""/docs and /redoc work offline: local assets, no external URL, operations rendered in a real
browser (Debian's headless Chromium; `make test` installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.concurrency.conftest import live_url  # noqa: F401 (a fixture)

EXTERNAL = re.compile(r"https?://", re.IGNORECASE)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_pages_name_no_external_url(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert not EXTERNAL.findall(response.text), EXTERNAL.findall(response.text)
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert assets
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 100, asset


def test_the_pages_are_not_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("headless Chromium is needed: `make chromium` installs Debian's package")
    return found


def render(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, with the network limited to this machine."""
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_swagger_ui_renders_the_operations_in_chromium(
    live_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    dom = render(f"{live_url}/docs", tmp_path / "profile")
    operations = re.findall(r'class="opblock opblock-(get|post|put|patch|delete)', dom)
    assert len(operations) >= 10, dom[:2000]
    assert "/api/v1/passengers/{passenger_id}" in dom
    assert "/api/v1/jobs" in dom


def test_redoc_renders_the_operations_in_chromium(
    live_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    dom = render(f"{live_url}/redoc", tmp_path / "profile")
    assert "/api/v1/passengers/{passenger_id}" in dom, dom[:2000]
    assert "passengers" in dom
