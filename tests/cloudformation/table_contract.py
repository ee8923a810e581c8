"""The table contract: a PynamoDB model and a CloudFormation table (or a live DescribeTable)
reduced to the same normal form, and the differences between two such forms in plain words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pynamodb.attributes import TTLAttribute
from pynamodb.models import Model

from app_lib.common.data import table_registry
from app_lib.common.util.pynamodb_util import PynamodbUtil
from tests.cloudformation.cfn_template import TemplateTable, all_tables

# A normal form: {"key_schema": {"HASH": name, "RANGE": name}, "attributes": {name: "S"|"N"|"B"},
# "global_indexes": {name: {"key_schema": ..., "projection": ...}}, "local_indexes": ...,
# "ttl": attribute name or None, "billing_mode": "PAY_PER_REQUEST"|"PROVISIONED"}
Spec = dict[str, Any]
FIELDS = ("key_schema", "attributes", "global_indexes", "local_indexes", "ttl", "billing_mode")

# (namespace, environment) pairs the name pattern is checked with: with and without a namespace,
# and the characters a namespace may hold.
NAME_CASES = (("acme", "prod"), ("", "prod"), ("team.a-1", "dev"), ("", "staging"))
# Telling a model's table apart from the others: resolved with these, names differ by base only.
# Two probes, so that a table whose pattern broke on one branch of HasNamespace is still found
# (by the other) and its name problems reported precisely.
PROBE = ("probe-ns", "probe-env")
PROBES = (PROBE, ("", "probe-env"))


def _keys(key_schema: list[dict[str, str]]) -> dict[str, str]:
    return {item["KeyType"]: item["AttributeName"] for item in key_schema}


def _projection(projection: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": projection.get("ProjectionType"),
        "non_key_attributes": sorted(projection.get("NonKeyAttributes", [])),
    }


def _indexes(indexes: list[dict[str, Any]], name: str, keys: str, projection: str) -> Spec:
    return {
        index[name]: {
            "key_schema": _keys(index[keys]),
            "projection": _projection(index.get(projection, {})),
        }
        for index in indexes
    }


def ttl_attribute(model: type[Model]) -> str | None:
    for attribute in model.get_attributes().values():
        if isinstance(attribute, TTLAttribute):
            return attribute.attr_name
    return None


def model_spec(model: type[Model]) -> Spec:
    """What the model declares (what `Model.create_table` would create)."""
    schema = model._get_schema()
    return {
        "key_schema": _keys(schema["key_schema"]),
        "attributes": {
            item["AttributeName"]: item["AttributeType"] for item in schema["attribute_definitions"]
        },
        "global_indexes": _indexes(
            schema["global_secondary_indexes"], "index_name", "key_schema", "projection"
        ),
        "local_indexes": _indexes(
            schema["local_secondary_indexes"], "index_name", "key_schema", "projection"
        ),
        "ttl": ttl_attribute(model),
        # table_registry.create_tables creates every table on demand, as the templates must.
        "billing_mode": "PAY_PER_REQUEST",
    }


def cfn_spec(properties: dict[str, Any]) -> Spec:
    """What an AWS::DynamoDB::Table's (resolved) properties declare."""
    ttl = properties.get("TimeToLiveSpecification") or {}
    enabled = ttl.get("Enabled") in (True, "true", "True")
    return {
        "key_schema": _keys(properties.get("KeySchema", [])),
        "attributes": {
            item["AttributeName"]: item["AttributeType"]
            for item in properties.get("AttributeDefinitions", [])
        },
        "global_indexes": _indexes(
            properties.get("GlobalSecondaryIndexes", []), "IndexName", "KeySchema", "Projection"
        ),
        "local_indexes": _indexes(
            properties.get("LocalSecondaryIndexes", []), "IndexName", "KeySchema", "Projection"
        ),
        "ttl": ttl.get("AttributeName") if enabled else None,
        "billing_mode": properties.get("BillingMode", "PROVISIONED"),
    }


def described_spec(table: dict[str, Any], ttl: dict[str, Any] | None = None) -> Spec:
    """What DescribeTable (and DescribeTimeToLive, when given) report for a live table."""
    spec = {
        "key_schema": _keys(table["KeySchema"]),
        "attributes": {
            item["AttributeName"]: item["AttributeType"] for item in table["AttributeDefinitions"]
        },
        "global_indexes": _indexes(
            table.get("GlobalSecondaryIndexes", []), "IndexName", "KeySchema", "Projection"
        ),
        "local_indexes": _indexes(
            table.get("LocalSecondaryIndexes", []), "IndexName", "KeySchema", "Projection"
        ),
        "billing_mode": table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"),
    }
    if ttl is not None:
        description = ttl.get("TimeToLiveDescription", {})
        enabled = description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
        spec["ttl"] = description.get("AttributeName") if enabled else None
    return spec


def diff(
    expected: Spec,
    actual: Spec,
    expected_label: str = "model",
    actual_label: str = "template",
    fields: tuple[str, ...] = FIELDS,
) -> list[str]:
    """Every difference, one line each; empty when the two agree on `fields`."""
    problems: list[str] = []
    for field in fields:
        want, got = expected.get(field), actual.get(field)
        if field == "attributes":
            problems += _attribute_problems(want or {}, got or {}, expected_label, actual_label)
        elif field in ("global_indexes", "local_indexes"):
            problems += _index_problems(field, want or {}, got or {}, expected_label, actual_label)
        elif want != got:
            problems.append(f"{field}: {expected_label} {want!r}, {actual_label} {got!r}")
    return problems


def _attribute_problems(
    want: dict[str, str], got: dict[str, str], ours: str, theirs: str
) -> list[str]:
    problems = []
    for name in sorted(want.keys() | got.keys()):
        if name not in got:
            problems.append(
                f"attribute {name!r}: a key attribute in the {ours}, not defined in the {theirs}"
            )
        elif name not in want:
            problems.append(
                f"attribute {name!r}: defined in the {theirs} but no key of the table or an index "
                f"in the {ours} (only key attributes belong in AttributeDefinitions)"
            )
        elif want[name] != got[name]:
            problems.append(
                f"attribute {name!r}: type {want[name]} in the {ours}, {got[name]} in the {theirs}"
            )
    return problems


def _index_problems(field: str, want: Spec, got: Spec, ours: str, theirs: str) -> list[str]:
    kind = "GSI" if field == "global_indexes" else "LSI"
    problems = []
    for name in sorted(want.keys() | got.keys()):
        if name not in got:
            problems.append(f"{kind} {name!r}: in the {ours}, missing from the {theirs}")
        elif name not in want:
            problems.append(f"{kind} {name!r}: in the {theirs}, not in the {ours}")
        else:
            for part in ("key_schema", "projection"):
                if want[name][part] != got[name][part]:
                    problems.append(
                        f"{kind} {name!r} {part}: {ours} {want[name][part]!r}, "
                        f"{theirs} {got[name][part]!r}"
                    )
    return problems


def find_table(model: type[Model], tables: list[TemplateTable]) -> TemplateTable | None:
    """The template table whose name resolves to the model's; None when there is none."""
    base = table_registry.base_name(model)
    matches = [
        table
        for table in tables
        if any(
            table.table_name(*probe) == PynamodbUtil.table_name(base, *probe) for probe in PROBES
        )
    ]
    if len(matches) > 1:
        labels = ", ".join(table.label for table in matches)
        raise AssertionError(f"{model.__name__}: defined more than once ({labels})")
    return matches[0] if matches else None


def name_problems(model: type[Model], table: TemplateTable) -> list[str]:
    base = table_registry.base_name(model)
    problems = []
    for namespace, environment in NAME_CASES:
        want = PynamodbUtil.table_name(base, namespace, environment)
        got = table.table_name(namespace, environment)
        if got != want:
            problems.append(
                f"table name with Namespace={namespace!r} Environment={environment!r}: "
                f"PynamodbUtil {want!r}, template {got!r}"
            )
    return problems


def contract_problems(
    model: type[Model], templates: dict[Path, dict[str, Any]] | None = None
) -> list[str]:
    """Everything on which the model and its table in the templates disagree."""
    tables = all_tables(templates)
    table = find_table(model, tables)
    if table is None:
        names = ", ".join(f"{t.label}={t.table_name(*PROBE)}" for t in tables) or "none"
        base = table_registry.base_name(model)
        return [
            f"{model.__name__} (base {base!r}): no table named "
            f"{PynamodbUtil.table_name(base, *PROBE)!r} with Namespace/Environment={PROBE} in "
            f"cloudformation/*.yaml (tables there: {names})"
        ]
    return name_problems(model, table) + diff(model_spec(model), cfn_spec(table.properties()))
