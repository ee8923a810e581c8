"""The CloudFormation templates against the PynamoDB models: one contract, checked two ways.

1. Statically: for every model in the table registry, its table in cloudformation/*.yaml has the
   same name pattern (with and without a namespace), key schema, key attribute types, GSIs and
   LSIs (names, keys, projection), TTL attribute and billing mode. A registered model with no
   table fails; so does a template table with no model.
2. In moto's CloudFormation: the templates deploy (queue tier first, the backend importing its
   exports), and DescribeTable of every created table equals that of the table the model itself
   creates.

The models come from the registry, so a new feature's tables are covered as soon as its folder
registers them; its template table must exist by then.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

from app_lib.common import feature
from app_lib.common.config import Settings
from app_lib.common.data import table_registry
from app_lib.common.util.pynamodb_util import PynamodbUtil
from tests.cloudformation.cfn_template import (
    Resolver,
    TemplateTable,
    all_tables,
    load,
    template_paths,
    without_resources,
)
from tests.cloudformation.table_contract import (
    PROBE,
    cfn_spec,
    contract_problems,
    described_spec,
    diff,
    find_table,
    model_spec,
    name_problems,
)
from tests.conftest import new_namespace, point_models

feature.discover()  # registers every feature's tables
MODELS = table_registry.models()
TEMPLATES = {path: load(path) for path in template_paths()}
TABLES = all_tables(TEMPLATES)


def _model_id(model: type[Model]) -> str:
    return model.__name__


def _table_of(model: type[Model]) -> TemplateTable:
    table = find_table(model, TABLES)
    if table is None:
        pytest.fail("\n".join(contract_problems(model, TEMPLATES)))
    return table


def _report(problems: list[str]) -> str:
    return "drift between model and template:\n  " + "\n  ".join(problems)


# --- the static contract --------------------------------------------------------------------


def test_the_tier_templates_and_the_registry_are_there() -> None:
    assert {path.name for path in TEMPLATES} >= {"backend.yaml", "queue.yaml"}
    assert "passengers" in {table_registry.base_name(model) for model in MODELS}


@pytest.mark.parametrize("model", MODELS, ids=_model_id)
def test_every_registered_model_has_its_table_in_a_template(model: type[Model]) -> None:
    assert find_table(model, TABLES) is not None, "\n".join(contract_problems(model, TEMPLATES))


@pytest.mark.parametrize("model", MODELS, ids=_model_id)
def test_table_name_pattern_equals_pynamodb_util(model: type[Model], settings: Settings) -> None:
    table = _table_of(model)
    assert not name_problems(model, table), _report(name_problems(model, table))
    # And with this process's own settings, as the app names it at run time.
    assert table.table_name(settings.app_namespace, settings.app_env) == (
        PynamodbUtil.env_table_name(table_registry.base_name(model))
    )


@pytest.mark.parametrize("model", MODELS, ids=_model_id)
def test_table_schema_equals_the_model(model: type[Model]) -> None:
    problems = diff(model_spec(model), cfn_spec(_table_of(model).properties()))
    assert not problems, _report(problems)


def test_every_template_table_belongs_to_a_registered_model() -> None:
    owned = {table.label for model in MODELS if (table := find_table(model, TABLES))}
    orphans = [f"{t.label} ({t.table_name(*PROBE)})" for t in TABLES if t.label not in owned]
    assert not orphans, f"tables with no registered PynamoDB model: {orphans}"


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.label)
def test_every_table_is_protected_and_switchable(table: TemplateTable) -> None:
    resource, properties = table.resource, table.properties()
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"
    # Created only when its Enable<X>Table parameter says "true".
    condition = resource["Condition"]
    flag = table.template["Conditions"][condition]["Fn::Equals"][0]["Ref"]
    assert flag.startswith("Enable") and flag.endswith("Table")
    assert table.template["Parameters"][flag]["AllowedValues"] == ["true", "false"]
    assert Resolver(table.template, {flag: "true"}).condition(condition) is True
    assert Resolver(table.template, {flag: "false"}).condition(condition) is False


def _resources(kind: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, resource, its template) for every resource of this type."""
    return [
        (f"{path.name}:{logical_id}", resource, template)
        for path, template in TEMPLATES.items()
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == kind
    ]


def test_functions_run_the_image_behind_the_lambda_web_adapter() -> None:
    functions = _resources("AWS::Lambda::Function")
    assert len(functions) == 2  # the API (backend.yaml) and the worker (queue.yaml)
    for label, function, _ in functions:
        properties = function["Properties"]
        assert properties["PackageType"] == "Image", label
        assert properties["Code"] == {"ImageUri": {"Ref": "ImageUri"}}, label
        env = properties["Environment"]["Variables"]
        assert env["APP_NAMESPACE"] == {"Ref": "Namespace"}, label
        assert env["APP_ENV"] == {"Ref": "Environment"}, label
        expected = {
            "DYNAMODB_HOST": "",
            "AWS_LWA_PORT": "8080",
            "AWS_LWA_READINESS_CHECK_PATH": "/health",
            "RUN_WORKER": "false",
            "SEED_ON_START": "false",
        }
        assert {key: env.get(key) for key in expected} == expected, label
    ((_, mapping, _),) = _resources("AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def _statements() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found = []
    for kind in ("AWS::IAM::Role", "AWS::IAM::Policy"):
        for label, resource, template in _resources(kind):
            properties = resource["Properties"]
            documents = [properties["PolicyDocument"]] if "PolicyDocument" in properties else []
            documents += [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
            found += [
                (label, statement, template) for doc in documents for statement in doc["Statement"]
            ]
    return found


def test_roles_grant_named_actions_on_their_own_tables_and_queues() -> None:
    """No wildcard action; "*" only where AWS allows nothing else (X-Ray); every DynamoDB grant
    names a registered model's table, as the app names it, or that table's indexes (all, or
    one the model declares)."""
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/"
    allowed: set[str] = set()
    for model in MODELS:
        indexes = model_spec(model)["global_indexes"] or {}
        for namespace, environment in (("acme", "prod"), ("", "prod")):
            name = PynamodbUtil.table_name(table_registry.base_name(model), namespace, environment)
            allowed |= {arn + name, f"{arn}{name}/index/*"}
            allowed |= {f"{arn}{name}/index/{index}" for index in indexes}
    statements = _statements()
    assert statements
    for label, statement, template in statements:
        assert statement["Effect"] == "Allow", label
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        assert all("*" not in action for action in actions), (label, actions)
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        if "*" in resources:
            assert set(actions) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, label
        if any(action.startswith("dynamodb:") for action in actions):
            assert all(action.startswith("dynamodb:") for action in actions), label
            for namespace in ("acme", ""):
                resolver = Resolver(template, {"Namespace": namespace, "Environment": "prod"})
                for resource in resources:
                    assert resolver.resolve(resource) in allowed, (label, resource)


# --- the contract catches drift ---------------------------------------------------------------


class GhostTable(Model):
    """A model no template knows (never registered): the contract must report it."""

    class Meta:
        table_name = PynamodbUtil.table_name("ghosts", "", "test")

    ghost_id = UnicodeAttribute(hash_key=True)


def test_a_model_without_a_table_is_reported() -> None:
    problems = contract_problems(GhostTable, TEMPLATES)
    assert len(problems) == 1
    assert "GhostTable" in problems[0]
    assert "no table" in problems[0]


def _indexed_model() -> type[Model]:
    """A registered model with a GSI with a range key (passengers has five)."""
    return next(
        model
        for model in MODELS
        if any(
            "RANGE" in {key["KeyType"] for key in index["key_schema"]}
            for index in model._get_schema()["global_secondary_indexes"]
        )
    )


def _gsi(properties: dict[str, Any]) -> dict[str, Any]:
    index: dict[str, Any] = properties["GlobalSecondaryIndexes"][0]
    return index


def _flip_type(properties: dict[str, Any]) -> None:
    definition = properties["AttributeDefinitions"][0]
    definition["AttributeType"] = "N" if definition["AttributeType"] == "S" else "S"


def _toggle_ttl(properties: dict[str, Any]) -> None:
    if "TimeToLiveSpecification" in properties:
        properties["TimeToLiveSpecification"]["AttributeName"] = "gone_at"
    else:
        properties["TimeToLiveSpecification"] = {"AttributeName": "expires_at", "Enabled": True}


def _add_non_key_definition(properties: dict[str, Any]) -> None:
    properties["AttributeDefinitions"].append({"AttributeName": "version", "AttributeType": "N"})


def _drop_gsi_range_key(properties: dict[str, Any]) -> None:
    index = _gsi(properties)
    index["KeySchema"] = [key for key in index["KeySchema"] if key["KeyType"] == "HASH"]


def _rename_pattern(properties: dict[str, Any]) -> None:
    # e.g. someone "simplifies" the name to ${Environment}-<base>
    base = properties["TableName"]["Fn::If"][2]["Fn::Sub"].split("_", 1)[1]
    properties["TableName"]["Fn::If"][1] = {"Fn::Sub": f"${{Environment}}_${{Namespace}}_{base}"}


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "gsi projection ALL -> KEYS_ONLY": (
        lambda p: _gsi(p).__setitem__("Projection", {"ProjectionType": "KEYS_ONLY"}),
        "projection",
    ),
    "gsi projection INCLUDE with attributes": (
        lambda p: _gsi(p).__setitem__(
            "Projection", {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["name"]}
        ),
        "projection",
    ),
    "key attribute type": (_flip_type, "type"),
    "non-key attribute defined": (_add_non_key_definition, "only key attributes"),
    "hash key renamed": (
        lambda p: p["KeySchema"][0].__setitem__("AttributeName", "id"),
        "key_schema",
    ),
    "gsi renamed": (lambda p: _gsi(p).__setitem__("IndexName", "renamed"), "GSI 'renamed'"),
    "gsi dropped": (lambda p: p["GlobalSecondaryIndexes"].pop(0), "missing from the template"),
    "gsi range key dropped": (_drop_gsi_range_key, "key_schema"),
    "ttl attribute": (_toggle_ttl, "ttl"),
    "billing mode": (lambda p: p.__setitem__("BillingMode", "PROVISIONED"), "billing_mode"),
    "name pattern with a namespace": (_rename_pattern, "table name with Namespace='acme'"),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=str)
def test_the_contract_detects_drift(mutation: str) -> None:
    model = _indexed_model()
    assert contract_problems(model, TEMPLATES) == []
    table = _table_of(model)
    mutated = copy.deepcopy(TEMPLATES)
    change, expected = MUTATIONS[mutation]
    change(mutated[table.template_path]["Resources"][table.logical_id]["Properties"])

    problems = contract_problems(model, mutated)

    assert problems, f"{mutation}: not detected"
    assert any(expected in problem for problem in problems), problems


def test_a_renamed_base_is_a_missing_table() -> None:
    model = _indexed_model()
    table = _table_of(model)
    mutated = copy.deepcopy(TEMPLATES)
    properties = mutated[table.template_path]["Resources"][table.logical_id]["Properties"]
    properties["TableName"] = json.loads(json.dumps(properties["TableName"]).replace("_", "-"))

    problems = contract_problems(model, mutated)

    assert len(problems) == 1 and "no table" in problems[0]


# --- the templates in moto's CloudFormation ---------------------------------------------------

# moto's CloudFormation has no AWS::ApiGatewayV2 resources: the deployed copy of a template drops
# them (the HTTP API, its JWT authorizer, route, stage and invoke permission) and whatever names
# them; every table, queue, role, policy and function deploys as written.
MOTO_UNSUPPORTED = ("AWS::ApiGatewayV2::",)
DUMMY_PARAMETERS = {
    "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app-lib:contract-test",
    "JwtIssuer": "https://issuer.example.com/",
    "JwtAudience": "app-lib,app-lib-cli",
}


def _moto_template(template: dict[str, Any]) -> dict[str, Any]:
    unsupported = {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"].startswith(MOTO_UNSUPPORTED)
    }
    return without_resources(template, unsupported) if unsupported else template


def _required_tiers(template: dict[str, Any]) -> set[str]:
    """The other tiers a template imports from: a `<Tier>StackName` parameter each."""
    return {
        name.removesuffix("StackName").lower()
        for name in template.get("Parameters", {})
        if name.endswith("StackName")
    }


def _deploy_order() -> list[Path]:
    order: list[Path] = []
    pending = dict(TEMPLATES)
    while pending:
        ready = [
            path
            for path, template in pending.items()
            if _required_tiers(template) <= {done.stem for done in order}
        ]
        assert ready, f"the StackName parameters form a cycle or name a missing tier: {pending}"
        for path in sorted(ready):
            order.append(path)
            del pending[path]
    return order


def _parameters(
    path: Path, template: dict[str, Any], namespace: str, environment: str, stacks: dict[str, str]
) -> list[dict[str, str]]:
    values = {}
    for name, spec in template.get("Parameters", {}).items():
        if name == "Namespace":
            values[name] = namespace
        elif name == "Environment":
            values[name] = environment
        elif name.startswith("Enable") and name.endswith("Table"):
            values[name] = "true"
        elif name.endswith("StackName"):
            values[name] = stacks[name.removesuffix("StackName").lower()]
        elif name in DUMMY_PARAMETERS:
            values[name] = DUMMY_PARAMETERS[name]
        elif "Default" not in spec:
            pytest.fail(f"{path.name}: give the contract test a value for parameter {name}")
    return [{"ParameterKey": key, "ParameterValue": value} for key, value in values.items()]


class Deployment:
    """Every template deployed once into the moto server under a namespace of its own."""

    def __init__(self, settings: Settings, endpoint: str) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.namespace = new_namespace()
        self.environment = settings.app_env
        self.stacks: dict[str, str] = {}  # tier (template stem) -> stack name
        self.cloudformation = self.client("cloudformation")

    def client(self, service: str) -> Any:
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=self.settings.aws_region
        )

    def deploy_all(self) -> None:
        for path in _deploy_order():
            template = _moto_template(TEMPLATES[path])
            # The YAML as written when moto takes all of it, else the derived copy as JSON.
            body = path.read_text() if template is TEMPLATES[path] else json.dumps(template)
            stack = f"{self.namespace}-{path.stem}"
            self.cloudformation.create_stack(
                StackName=stack,
                TemplateBody=body,
                Parameters=_parameters(
                    path, template, self.namespace, self.environment, self.stacks
                ),
                Capabilities=["CAPABILITY_IAM"],
            )
            self.stacks[path.stem] = stack

    def stack(self, tier: str) -> dict[str, Any]:
        found: dict[str, Any] = self.cloudformation.describe_stacks(StackName=self.stacks[tier])[
            "Stacks"
        ][0]
        return found

    def outputs(self, tier: str) -> dict[str, str]:
        return {item["OutputKey"]: item["OutputValue"] for item in self.stack(tier)["Outputs"]}

    def physical_id(self, tier: str, logical_id: str) -> str:
        # (ListStackResources: moto's DescribeStackResource trips over the resources it skipped.)
        resources = self.cloudformation.list_stack_resources(StackName=self.stacks[tier])
        (physical,) = [
            item["PhysicalResourceId"]
            for item in resources["StackResourceSummaries"]
            if item["LogicalResourceId"] == logical_id
        ]
        return str(physical)


@pytest.fixture(scope="module")
def deployment(settings: Settings, dynamodb_endpoint: str) -> Iterator[Deployment]:
    deployed = Deployment(settings, dynamodb_endpoint)
    deployed.deploy_all()
    yield deployed
    # The tables are DeletionPolicy: Retain, so deleting the stacks leaves them: drop them too.
    dynamodb = deployed.client("dynamodb")
    for tier in reversed(list(deployed.stacks)):
        deployed.cloudformation.delete_stack(StackName=deployed.stacks[tier])
    for name in dynamodb.list_tables()["TableNames"]:
        if name.startswith(f"{deployed.namespace}_"):
            dynamodb.delete_table(TableName=name)


@pytest.mark.parametrize("path", list(TEMPLATES), ids=lambda path: path.name)
def test_moto_cloudformation_creates_the_stack(deployment: Deployment, path: Path) -> None:
    stack = deployment.stack(path.stem)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    resources = deployment.cloudformation.list_stack_resources(StackName=stack["StackName"])
    created = {item["LogicalResourceId"] for item in resources["StackResourceSummaries"]}
    tables = {table.logical_id for table in TABLES if table.template_path == path}
    assert tables <= created


@pytest.mark.parametrize("model", MODELS, ids=_model_id)
def test_moto_table_from_the_template_equals_the_models_table(
    deployment: Deployment, settings: Settings, dynamodb_endpoint: str, model: type[Model]
) -> None:
    table = _table_of(model)
    dynamodb = deployment.client("dynamodb")
    base = table_registry.base_name(model)

    from_template = dynamodb.describe_table(
        TableName=PynamodbUtil.table_name(base, deployment.namespace, deployment.environment)
    )["Table"]
    assert from_template["TableName"] == deployment.physical_id(
        table.template_path.stem, table.logical_id
    )

    # The table the model itself creates, on the same server, under a namespace of its own.
    point_models(settings, dynamodb_endpoint, new_namespace(), [model])
    model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    try:
        from_model = dynamodb.describe_table(TableName=model.Meta.table_name)["Table"]
        model_ttl = dynamodb.describe_time_to_live(TableName=model.Meta.table_name)
    finally:
        model.delete_table()

    problems = diff(
        described_spec(from_model),
        described_spec(from_template),
        "model's table",
        "template's table",
        fields=("key_schema", "attributes", "global_indexes", "local_indexes", "billing_mode"),
    )
    assert not problems, _report(problems)
    # moto's CloudFormation does not apply TimeToLiveSpecification: the live TTL of the model's
    # table is compared with the template's declaration instead.
    assert described_spec(from_model, model_ttl)["ttl"] == cfn_spec(table.properties())["ttl"]


def test_moto_stacks_are_wired_together(deployment: Deployment) -> None:
    """The API gets the queue tier's queue; the worker its queue, batch failures, grants."""
    functions = deployment.client("lambda")
    queue = deployment.outputs("queue")
    api = functions.get_function_configuration(
        FunctionName=deployment.physical_id("backend", "ApiFunction")
    )
    worker = functions.get_function_configuration(FunctionName=queue["WorkerFunctionName"])
    for function in (api, worker):
        env = function["Environment"]["Variables"]
        assert env["JOBS_QUEUE_URL"] == queue["JobsQueueUrl"]
        assert env["APP_NAMESPACE"] == deployment.namespace
        assert env["APP_ENV"] == deployment.environment
        assert env["DYNAMODB_HOST"] == ""
        assert env["RUN_WORKER"] == "false"
        assert env["AWS_LWA_PORT"] == "8080"
    assert worker["Environment"]["Variables"]["AWS_LWA_PASS_THROUGH_PATH"] == "/events"
    assert "AWS_LWA_PASS_THROUGH_PATH" not in api["Environment"]["Variables"]

    mappings = functions.list_event_source_mappings(FunctionName=queue["WorkerFunctionName"])
    (mapping,) = mappings["EventSourceMappings"]
    assert mapping["EventSourceArn"] == queue["JobsQueueArn"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    attributes = deployment.client("sqs").get_queue_attributes(
        QueueUrl=queue["JobsQueueUrl"], AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    default = TEMPLATES[next(p for p in TEMPLATES if p.stem == "queue")]["Parameters"]
    assert int(redrive["maxReceiveCount"]) == default["MaxReceiveCount"]["Default"]
    assert redrive["deadLetterTargetArn"].endswith(
        deployment.physical_id("queue", "JobsDeadLetterQueue").rsplit("/", 1)[-1]
    )

    # The backend grants the worker its own tables (the job handlers of its features).
    policies = deployment.client("iam").list_role_policies(RoleName=queue["WorkerRoleName"])
    assert f"{deployment.stacks['backend']}-worker-tables" in policies["PolicyNames"]


# ----- the gateway's public routes are the app's public reads ------------------------------------
# Served by the app to anyone but not in the document (docs pages and their assets, the document).
UNDOCUMENTED_PUBLIC = {"/docs", "/docs-assets/{proxy+}", "/redoc", "/openapi.json"}
# Only the dev issuer serves its keys; behind the gateway the app verifies tokens of JwtIssuer.
DEV_ONLY = {"/.well-known/jwks.json"}


def _covers(route_path: str, path: str) -> bool:
    if route_path.endswith("/{proxy+}"):
        return path.startswith(route_path.removesuffix("{proxy+}"))
    return route_path == path


def test_public_gateway_routes_are_exactly_the_apps_public_reads(app: Any) -> None:
    """A public read the gateway refuses without a token is a broken API; a gateway route that
    lets an anonymous request through to an operation that needs a token weakens the defence
    in depth (the app would still refuse it)."""
    document = app.openapi()
    public, protected = set(), set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "get":
                (protected if operation.get("security") else public).add(path)
    routes = [
        resource["Properties"]["RouteKey"].split(" ", 1)
        for _, resource, _ in _resources("AWS::ApiGatewayV2::Route")
        if resource["Properties"]["RouteKey"] != "$default"
    ]
    assert all(method == "GET" for method, _ in routes), routes
    route_paths = [path for _, path in routes]
    uncovered = sorted(
        path for path in public - DEV_ONLY if not any(_covers(route, path) for route in route_paths)
    )
    assert not uncovered, f"public reads the gateway refuses without a token: {uncovered}"
    leaks = sorted(
        f"{route} -> {path}" for route in route_paths for path in protected if _covers(route, path)
    )
    assert not leaks, f"gateway routes open to anyone that reach protected reads: {leaks}"
    unknown = sorted(
        route
        for route in route_paths
        if route not in UNDOCUMENTED_PUBLIC and not any(_covers(route, p) for p in public)
    )
    assert not unknown, f"public gateway routes that match no public read: {unknown}"
