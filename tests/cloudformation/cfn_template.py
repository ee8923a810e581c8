"""CloudFormation templates for tests: a PyYAML loader for the short tags, a small resolver.

The loader turns `!Sub x` into `{"Fn::Sub": x}` (the JSON form CloudFormation itself uses), so
a template loads into plain dicts and lists. The resolver evaluates the intrinsic functions the
table definitions use (Ref to parameters and pseudo parameters, Sub, If, Equals, Not, And, Or,
Join, Select, AWS::NoValue) for one set of parameter values, as CloudFormation would. Anything
else raises `UnresolvableError`, so a template that outgrows it fails loudly instead of silently.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "cloudformation"

PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "stack",
}

# Short tags whose long form is not "Fn::<Tag>".
_LONG_FORM = {"Ref": "Ref", "Condition": "Condition"}
_TAGS = [
    "Ref",
    "Condition",
    "Sub",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "GetAtt",
    "Join",
    "Select",
    "Split",
    "ImportValue",
    "FindInMap",
    "Base64",
    "Cidr",
    "GetAZs",
    "Transform",
    "Length",
    "ToJsonString",
]


class CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short tags."""


def _constructor(tag: str) -> Any:
    key = _LONG_FORM.get(tag, f"Fn::{tag}")

    def construct(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {key: value}

    return construct


for _tag in _TAGS:
    CfnLoader.add_constructor(f"!{_tag}", _constructor(_tag))


def load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.load(handle, Loader=CfnLoader)  # a SafeLoader subclass
    return loaded


def template_paths() -> list[Path]:
    return sorted(TEMPLATE_DIR.glob("*.yaml"))


class UnresolvableError(Exception):
    """An intrinsic function (or a reference) the resolver does not evaluate."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


@dataclass
class Resolver:
    """Evaluates a template's values for one set of parameter values."""

    template: dict[str, Any]
    overrides: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(init=False)
    _conditions: dict[str, bool] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        declared = self.template.get("Parameters", {})
        unknown = set(self.overrides) - set(declared)
        if unknown:
            raise KeyError(f"not parameters of this template: {sorted(unknown)}")
        self.parameters = {}
        for name, spec in declared.items():
            if name in self.overrides:
                value: Any = self.overrides[name]
            elif "Default" in spec:
                value = str(spec["Default"])
            else:
                continue  # required and not given: a Ref to it is UnresolvableError
            if spec.get("Type") == "CommaDelimitedList":
                value = [part.strip() for part in value.split(",")] if value else []
            self.parameters[name] = value

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions", {})
            if name not in conditions:
                raise UnresolvableError(f"no condition {name!r}")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                return self._function(key, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        if name == "Ref":
            return self._ref(argument)
        if name == "Condition":
            return self.condition(argument)
        if name == "Fn::If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        if name == "Fn::Equals":
            left, right = (self.resolve(item) for item in argument)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self.resolve(argument[0])
        if name == "Fn::And":
            return all(self.resolve(item) for item in argument)
        if name == "Fn::Or":
            return any(self.resolve(item) for item in argument)
        if name == "Fn::Sub":
            return self._sub(argument)
        if name == "Fn::Join":
            delimiter, items = argument
            return delimiter.join(str(item) for item in self.resolve(items))
        if name == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        raise UnresolvableError(f"{name} is not evaluated by this resolver")

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self.parameters:
            return self.parameters[name]
        raise UnresolvableError(f"Ref {name} (a resource, or a parameter with no value)")

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        else:
            text, raw = argument
            variables = {key: self.resolve(item) for key, item in raw.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", substitute, text)


@dataclass(frozen=True)
class TemplateTable:
    """One AWS::DynamoDB::Table of one template."""

    template_path: Path
    template: dict[str, Any]
    logical_id: str

    @property
    def resource(self) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][self.logical_id]
        return resource

    @property
    def label(self) -> str:
        return f"{self.template_path.name}:{self.logical_id}"

    def properties(self, overrides: dict[str, str] | None = None) -> dict[str, Any]:
        """The table's properties resolved for these parameter values."""
        resolved: dict[str, Any] = Resolver(self.template, overrides or {}).resolve(
            self.resource.get("Properties", {})
        )
        return resolved

    def table_name(self, namespace: str, environment: str) -> str:
        return str(
            self.properties({"Namespace": namespace, "Environment": environment})["TableName"]
        )


def tables_of(template_path: Path, template: dict[str, Any]) -> list[TemplateTable]:
    return [
        TemplateTable(template_path, template, logical_id)
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::DynamoDB::Table"
    ]


def all_tables(templates: dict[Path, dict[str, Any]] | None = None) -> list[TemplateTable]:
    if templates is None:
        templates = {path: load(path) for path in template_paths()}
    return [table for path, template in templates.items() for table in tables_of(path, template)]


def references(value: Any) -> set[str]:
    """Every logical id or parameter a value names (Ref, GetAtt, ${...} in Sub)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0] if isinstance(item, list) else str(item).split(".")[0])
            elif key == "Fn::Sub":
                text = item if isinstance(item, str) else item[0]
                names = re.findall(r"\$\{([^}!][^}]*)\}", text)
                found |= {name.split(".")[0] for name in names}
                if not isinstance(item, str):
                    found |= references(item[1])
            else:
                found |= references(item)
    return found


def without_resources(template: dict[str, Any], unwanted: set[str]) -> dict[str, Any]:
    """A copy without these resources, nor the resources and outputs that depend on them."""
    derived = copy.deepcopy(template)
    resources = derived["Resources"]
    removed = set(unwanted)
    while True:
        dependents = {
            logical_id
            for logical_id, resource in resources.items()
            if logical_id not in removed
            and (references(resource) | _depends_on(resource)) & removed
        }
        if not dependents:
            break
        removed |= dependents
    for logical_id in removed:
        resources.pop(logical_id, None)
    outputs = derived.get("Outputs", {})
    for name in [name for name, output in outputs.items() if references(output) & removed]:
        del outputs[name]
    return derived


def _depends_on(resource: dict[str, Any]) -> set[str]:
    depends = resource.get("DependsOn", [])
    return {depends} if isinstance(depends, str) else set(depends)
