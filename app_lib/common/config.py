"""Typed settings: one `Settings` class read from the environment and `.env` (python-dotenv)."""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED = "embedded"
_NAME_PART = re.compile(r"^[A-Za-z0-9.-]*$")


class Settings(BaseSettings):
    """Every variable the service reads; `.env.example` documents each one."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    app_namespace: str = ""
    app_env: str = "dev"
    aws_region: str = "us-east-1"
    dynamodb_host: str = EMBEDDED
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "console", "json"] = "auto"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    dynamodb_connect_timeout: float = Field(default=2.0, gt=0, le=60)
    dynamodb_read_timeout: float = Field(default=5.0, gt=0, le=120)
    dynamodb_max_retries: int = Field(default=2, ge=0, le=10)
    dynamodb_request_timeout: float = Field(default=5.0, gt=0, le=300)
    data_dir: str = ".data"
    # Set by `make dev` for the app processes it reloads: the embedded database they share.
    embedded_url: str = ""
    cursor_secret: str = ""
    require_if_match: bool = False
    seed_on_start: bool = True
    # The process is the Lambda worker behind the Lambda Web Adapter: mount POST /events.
    lambda_worker: bool = False
    # Bearer tokens (common/auth.py): jwt | dev | off; empty = dev with the embedded database,
    # jwt otherwise.
    auth_mode: Literal["", "jwt", "dev", "off"] = ""
    auth_issuer: str = ""
    auth_audience: str = ""
    auth_jwks_url: str = ""
    # Origins allowed to call the API from a browser, comma-separated (empty: none).
    cors_origins: str = ""

    @field_validator("app_namespace", "app_env")
    @classmethod
    def _table_name_part(cls, value: str) -> str:
        # Table names allow [A-Za-z0-9_.-]; "_" separates the parts, so no part may contain it.
        if not _NAME_PART.match(value):
            raise ValueError("only letters, digits, '.' and '-' are allowed")
        return value

    @field_validator("app_env")
    @classmethod
    def _env_not_empty(cls, value: str) -> str:
        return value or "dev"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("dynamodb_host")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        value = value.strip()
        if value in ("", EMBEDDED) or re.match(r"^https?://[^\s/]+(/.*)?$", value):
            return value.rstrip("/")
        raise ValueError("must be 'embedded', empty (AWS) or an http(s):// URL")

    @field_validator("auth_mode", mode="before")
    @classmethod
    def _lower_mode(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _auth_is_possible(self) -> Settings:
        if self.effective_auth_mode == "off" and self.app_env == "prod":
            raise ValueError("AUTH_MODE=off is refused with APP_ENV=prod")
        # The worker Lambda serves only POST /events (no API route is reachable there).
        jwt = self.effective_auth_mode == "jwt" and not self.lambda_worker
        if jwt and not (self.auth_issuer and self.auth_audience):
            raise ValueError("AUTH_MODE=jwt needs AUTH_ISSUER and AUTH_AUDIENCE")
        return self

    @property
    def embedded(self) -> bool:
        return self.dynamodb_host == EMBEDDED

    @property
    def effective_auth_mode(self) -> str:
        return self.auth_mode or ("dev" if self.embedded else "jwt")

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]


def describe_error(error: ValidationError) -> str:
    """One line naming every offending variable, e.g. `PORT: Input should be ... (got 'abc')`."""
    parts = []
    for item in error.errors():
        if not item["loc"]:  # a rule across settings: its message names them (no values)
            parts.append(str(item["msg"]).removeprefix("Value error, "))
            continue
        name = str(item["loc"][0]).upper()
        parts.append(f"{name}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(parts)


_SettingsT = TypeVar("_SettingsT", bound=BaseSettings)


def load_settings(cls: type[_SettingsT]) -> _SettingsT:
    """Read a settings class (the common one, or a feature's) from the environment and `.env`.
    A bad value stops start-up with one clear line (exit code 2)."""
    try:
        return cls()
    except ValidationError as error:
        print(f"invalid configuration: {describe_error(error)}", file=sys.stderr)
        raise SystemExit(2) from None


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings(Settings)
