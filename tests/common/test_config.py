"""Settings: every variable is documented, and values are checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from app_lib.common.config import Settings, describe_error
from app_lib.common.feature import discover

ROOT = Path(__file__).resolve().parents[2]


def _example_variables() -> list[tuple[str, str]]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    found = []
    for n, line in enumerate(lines):
        match = re.match(r"^([A-Z_]+)=", line)
        if match:
            # The comment above a variable (or above its group) explains it.
            comment = next((p for p in reversed(lines[:n]) if p.startswith("#")), "")
            found.append((match.group(1), comment))
    return found


def settings_classes() -> list[type[BaseSettings]]:
    """The app's settings and every feature's own (`Feature.settings`)."""
    return [Settings, *(f.settings for f in discover() if f.settings is not None)]


def test_features_bring_their_own_settings() -> None:
    names = {cls.__name__ for cls in settings_classes()}
    assert {"Settings", "JobsSettings"} <= names
    # A variable belongs to one class only: two would read the same environment variable.
    fields = [name for cls in settings_classes() for name in cls.model_fields]
    assert len(fields) == len(set(fields))


def test_every_setting_is_in_env_example_with_a_comment_and_in_the_readme() -> None:
    fields = {name.upper() for cls in settings_classes() for name in cls.model_fields}
    example = dict(_example_variables())
    assert set(example) == fields
    assert all(comment.strip("# ") for comment in example.values())
    readme = (ROOT / "README.md").read_text()
    assert [name for name in sorted(fields) if f"`{name}`" not in readme] == []


def test_env_example_values_are_valid_settings() -> None:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if re.match(r"^[A-Z_]+=", line):
            key, _, value = line.partition("=")
            values[key.lower()] = value
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert settings.embedded and settings.app_env == "dev"
    for cls in settings_classes():
        # Every variable of each class has a valid example value (a bad one raises here).
        assert set(cls.model_fields) <= set(values), cls.__name__
        cls(_env_file=None, **values)


@pytest.mark.parametrize(
    ("field", "value"),
    [("port", "0"), ("dynamodb_host", "not a url"), ("app_namespace", "has_underscore")],
)
def test_bad_values_are_named(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **{field: value})  # type: ignore[arg-type]
    assert describe_error(caught.value).startswith(field.upper())


def test_host_forms() -> None:
    aws = Settings(_env_file=None, dynamodb_host="", auth_mode="off")  # type: ignore[call-arg]
    assert aws.dynamodb_host == ""
    url = Settings(_env_file=None, dynamodb_host="http://localhost:8001/", auth_mode="dev")  # type: ignore[call-arg]
    assert url.dynamodb_host == "http://localhost:8001" and not url.embedded
