"""The one place that touches PynamoDB's private API (names that start with an underscore).

PynamoDB keeps one connection per model class and exposes its botocore client and key schema
only through private methods. Everything else in the project goes through these functions, so a
PynamoDB upgrade that renames them is a change here alone.

Reading is made cheaper here too, without changing what is read or sent: `instantiate` builds
items (`VersionedTable.from_raw_data`) about six times as fast as PynamoDB; every PynamoDB
connection's botocore client parses DynamoDB's answers with `DynamoJSONParser`, the same output
as botocore's for a fraction of its work, and builds its User-Agent header once per set of
features instead of twice per call (`build_user_agent_once`).
tests/common/data/test_pynamodb_adapter.py compares each with PynamoDB's and botocore's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.context import get_context
from botocore.parsers import JSONParser, ResponseParser
from botocore.useragent import UserAgentString
from pynamodb.attributes import (
    Attribute,
    DiscriminatorAttribute,
    NumberAttribute,
    VersionAttribute,
)
from pynamodb.connection import TableConnection
from pynamodb.connection.base import Connection
from pynamodb.constants import NULL
from pynamodb.models import Model

_M = TypeVar("_M", bound=Model)


def table_connection(model: type[Model]) -> TableConnection:
    """The model's table connection (made on first use)."""
    connection: TableConnection = model._get_connection()
    return connection


def botocore_client(model: type[Model]) -> Any:
    """The botocore DynamoDB client the model's calls go through."""
    return table_connection(model).connection.client


def has_connection(model: type[Model]) -> bool:
    return model._connection is not None


def drop_connection(model: type[Model]) -> None:
    """Forget the cached connection, so the next call uses the model's current Meta."""
    model._connection = None


def hash_key_attribute(model: type[Model]) -> Attribute[Any]:
    attribute: Attribute[Any] = model._hash_key_attribute()  # type: ignore[no-untyped-call]
    return attribute


def hash_key_name(model: type[Model]) -> str:
    return str(hash_key_attribute(model).attr_name)


def describe_table(model: type[Model]) -> dict[str, Any]:
    description: dict[str, Any] = table_connection(model).describe_table()
    return description


def batch_write(model: type[Model], put_items: list[dict[str, Any]]) -> dict[str, Any]:
    """BatchWriteItem of already serialized items; the answer as botocore gives it."""
    answer: dict[str, Any] = table_connection(model).batch_write_item(put_items=put_items)
    return answer or {}


def _number(text: str) -> int | float:
    # NumberAttribute.deserialize is json.loads: int for integral text, float otherwise.
    try:
        return int(text)
    except ValueError:
        return float(text)


def _version(text: str) -> int:
    return int(_number(text))  # VersionAttribute.deserialize: int(json.loads(text))


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class _Plan:
    """How `instantiate` builds one model's items, worked out once per model class."""

    # PynamoDB's own path (a discriminator picks the class from the data).
    pynamodb: bool
    # (python name, default, set through the descriptor) of the attributes that have one.
    defaults: tuple[tuple[str, Any, bool], ...]
    # (python name, DynamoDB name, type key, attribute, deserialize, set through the
    # descriptor) of every attribute.
    fields: tuple[tuple[str, str, str, Attribute[Any], Callable[[Any], Any], bool], ...]


_PLANS: dict[type[Model], _Plan] = {}


def _plan(model: type[Model]) -> _Plan:
    attributes = model.get_attributes()
    defaults = []
    fields = []
    for name, attribute in attributes.items():
        # Attribute.__set__ stores the value as is; some (TTLAttribute) convert it first.
        # (VersionAttribute's int() is done by _version.)
        plain_set = type(attribute).__set__ in (Attribute.__set__, VersionAttribute.__set__)
        if attribute.default is not None:
            defaults.append((name, attribute.default, not plain_set))
        kind = type(attribute)
        if kind is NumberAttribute:
            deserialize: Callable[[Any], Any] = _number
        elif kind is VersionAttribute:
            deserialize = _version
        elif kind.deserialize is Attribute.deserialize:  # UnicodeAttribute and the like
            deserialize = _same
        else:
            deserialize = attribute.deserialize
        fields.append(
            (name, attribute.attr_name, attribute.attr_type, attribute, deserialize, not plain_set)
        )
    plan = _Plan(
        pynamodb=any(isinstance(a, DiscriminatorAttribute) for a in attributes.values()),
        defaults=tuple(defaults),
        fields=tuple(fields),
    )
    _PLANS[model] = plan
    return plan


def instantiate(model: type[_M], data: dict[str, Any]) -> _M:
    """`model.from_raw_data(data)` for a model without a discriminator, about three times as
    fast: PynamoDB sets each attribute through its descriptor and parses every number with
    json.loads; pages of items are read far more often than anything else is done."""
    plan = _PLANS.get(model) or _plan(model)
    if plan.pynamodb:
        return model._instantiate(data)
    instance = model.__new__(model)
    values: dict[str, Any] = {}
    instance.attribute_values = values
    # AttributeContainer._set_defaults(_user_instantiated=False).
    for name, default, through_descriptor in plan.defaults:
        value = default() if callable(default) else default
        if value is not None:
            if through_descriptor:
                setattr(instance, name, value)
            else:
                values[name] = value
    get = data.get
    for name, attr_name, attr_type, attribute, deserialize, through_descriptor in plan.fields:
        raw = get(attr_name)
        if not raw or NULL in raw:
            continue
        value = raw.get(attr_type)
        if value is None:
            value = attribute.get_value(raw)  # raises PynamoDB's own error
        if through_descriptor:
            setattr(instance, name, deserialize(value))
        else:
            values[name] = deserialize(value)
    return instance


# ----- parsing DynamoDB's answers ----------------------------------------------------------------
class DynamoJSONParser(JSONParser):
    """botocore's parser of JSON answers, with DynamoDB's attribute values (every attribute of
    every item read) taken by a direct walk: botocore looks up each value's shape and tries its
    ten members one by one, two thirds of a page's parsing. The output is the same: a value
    with one member set (S, N, BOOL, NULL, B, SS, NS, BS, L, M) becomes that member, parsed as
    botocore parses it; anything else (none or several members set, a null, an unknown member)
    is left to botocore."""

    def _attribute_value(self, value: Any, shape: Any) -> Any:
        if type(value) is not dict or len(value) != 1:
            return None
        ((tag, inner),) = value.items()
        if inner is None:
            return None
        if tag in _AS_IS:
            return {tag: inner}
        if tag == "B":
            return {"B": self._blob_parser(inner)}  # type: ignore[attr-defined]
        if tag == "M" and type(inner) is dict:
            return {"M": self._attribute_map(inner, shape)}
        if type(inner) is not list:
            return None
        if tag == "L":
            parse = self._attribute_value
            slow = self._parse_shape  # type: ignore[attr-defined]
            return {"L": [None if v is None else parse(v, shape) or slow(shape, v) for v in inner]}
        if tag == "SS" or tag == "NS":
            return {tag: list(inner)}
        if tag == "BS":
            blob = self._blob_parser  # type: ignore[attr-defined]
            return {"BS": [None if v is None else blob(v) for v in inner]}
        return None

    def _attribute_map(self, value: dict[str, Any], shape: Any) -> dict[str, Any]:
        parse = self._attribute_value
        slow = self._parse_shape  # type: ignore[attr-defined]
        return {key: parse(v, shape) or slow(shape, v) for key, v in value.items()}

    def _handle_structure(self, shape: Any, value: Any) -> Any:
        if shape.name == "AttributeValue":
            parsed = self._attribute_value(value, shape)
            if parsed is not None:
                return parsed
        return super()._handle_structure(shape, value)  # type: ignore[misc]

    def _handle_map(self, shape: Any, value: Any) -> Any:
        # An item (AttributeMap), a key, ExpressionAttributeValues: names are plain strings.
        if (
            shape.value.name == "AttributeValue"
            and shape.key.type_name == "string"
            and type(value) is dict
        ):
            return self._attribute_map(value, shape.value)
        return super()._handle_map(shape, value)  # type: ignore[misc]


# Members whose value botocore's JSON parser returns as it is (strings and booleans).
_AS_IS = frozenset({"S", "N", "BOOL", "NULL"})


def _parser_is_as_expected() -> bool:
    """DynamoJSONParser assumes botocore's JSON parser returns strings and booleans unchanged
    and parses lists item by item: true of every botocore so far; checked, not assumed."""
    unchanged = all(
        getattr(JSONParser, f"_handle_{k}", None) is None for k in ("string", "boolean")
    )
    lists: Any = vars(ResponseParser).get("_handle_list")
    return unchanged and lists is not None and getattr(JSONParser, "_handle_list", None) is lists


class _DynamoParserFactory:
    """The client's parser factory, handing out DynamoJSONParser for the JSON protocol."""

    def __init__(self, original: Any) -> None:
        self.original = original

    def create_parser(self, protocol_name: str) -> Any:
        parser = self.original.create_parser(protocol_name)
        if type(parser) is JSONParser:
            parser.__class__ = DynamoJSONParser  # same state (timestamp and blob parsers)
        return parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def parse_answers_directly(client: Any) -> Any:
    """Make a botocore DynamoDB client parse its answers with DynamoJSONParser (idempotent)."""
    endpoint = client._endpoint
    factory = endpoint._response_parser_factory
    if type(factory) is not _DynamoParserFactory and _PARSER_OK:
        endpoint._response_parser_factory = _DynamoParserFactory(factory)
    return client


_PARSER_OK = _parser_is_as_expected()


# ----- the User-Agent header ---------------------------------------------------------------------
class _UserAgentOnce(UserAgentString):
    """botocore builds a call's User-Agent header twice (when it prepares the request, then again
    once signing may have added credential features), each time sanitizing every component
    character by character: ~60 us a build, about 3% of a GetItem's CPU. What varies between
    calls is only the set of features used (retry mode, credential source, ...); the rest is
    fixed when the client is made. So a header is built once per set of features and kept."""

    _app_lib_built: dict[frozenset[str], str]

    def to_string(self) -> str:
        context = get_context()
        client_features = self._client_features  # type: ignore[attr-defined]
        features = frozenset(client_features or ()).union(
            () if context is None else context.features
        )
        built = self._app_lib_built.get(features)
        if built is None:
            built = super().to_string()
            if len(self._app_lib_built) < 64:  # a handful in practice; bounded all the same
                self._app_lib_built[features] = built
        return built


def build_user_agent_once(client: Any) -> Any:
    """Make a botocore client build each distinct User-Agent header once (idempotent)."""
    creator = getattr(client, "_user_agent_creator", None)
    if type(creator) is UserAgentString and _USER_AGENT_OK:
        vars(creator)["_app_lib_built"] = {}  # before the class: another thread may be using it
        creator.__class__ = _UserAgentOnce
    return client


def _user_agent_is_as_expected() -> bool:
    """_UserAgentOnce reads the client's features (`_client_features`) and assumes, as botocore
    builds the header, that between calls it varies by its features alone (which botocore adds in
    `_build_feature_metadata`): checked by name against this botocore, not assumed."""
    probe = UserAgentString.from_environment()
    return hasattr(probe, "_client_features") and hasattr(
        UserAgentString, "_build_feature_metadata"
    )


_USER_AGENT_OK = _user_agent_is_as_expected()
_connection_client = Connection.client


def _client(self: Connection) -> Any:
    client = _connection_client.fget(self)  # type: ignore[attr-defined]
    return build_user_agent_once(parse_answers_directly(client))


# Every PynamoDB connection's client (made lazily, and again when its credentials expire).
Connection.client = property(_client)  # type: ignore[assignment,method-assign]
