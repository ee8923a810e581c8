"""Table naming shared by every model and by the CloudFormation templates."""

from __future__ import annotations


class TableName(str):
    """A table name that remembers its base, so the table registry can re-point it later."""

    base: str

    def __new__(cls, name: str, base: str) -> TableName:
        obj = super().__new__(cls, name)
        obj.base = base
        return obj


class PynamodbUtil:
    @staticmethod
    def table_name(base: str, namespace: str, env: str) -> TableName:
        env = env or "dev"
        name = f"{namespace}_{env}_{base}" if namespace else f"{env}_{base}"
        return TableName(name, base)

    @staticmethod
    def env_table_name(base: str) -> TableName:
        """`{APP_NAMESPACE}_{APP_ENV}_{base}`, or `{APP_ENV}_{base}` with no namespace."""
        from app_lib.common.config import get_settings

        settings = get_settings()
        return PynamodbUtil.table_name(base, settings.app_namespace, settings.app_env)
