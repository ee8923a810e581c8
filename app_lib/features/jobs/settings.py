"""The jobs feature's own settings (read from the environment and `.env`, like the app's)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app_lib.common.config import load_settings


class JobsSettings(BaseSettings):
    """Every variable of the jobs feature; `.env.example` documents each one."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # The SQS queue; empty with the embedded server = one is created on it.
    jobs_queue_url: str = ""
    # One worker thread inside the API process (dev and `make run`).
    run_worker: bool = True
    jobs_max_attempts: int = Field(default=3, ge=1, le=100)
    jobs_visibility_timeout: int = Field(default=30, ge=2, le=43200)
    jobs_wait_seconds: int = Field(default=20, ge=0, le=20)
    jobs_ttl_days: int = Field(default=7, ge=1, le=3650)


@lru_cache
def get_jobs_settings() -> JobsSettings:
    """The process's jobs settings, read once (a bad value stops start-up with one line)."""
    return load_settings(JobsSettings)
