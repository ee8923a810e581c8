"""`python -m app_lib new-feature NAME --field name:type[:index] ...`: a working CRUD feature.

Writes `app_lib/features/NAME/` (table, data service, DTOs, routes, `FEATURE`), its route tests
under `tests/features/NAME/`, and its table, flag, grant, output and public-read routes in
`cloudformation/backend.yaml` (above the `# new-feature:` markers). The templates sit beside
this module (`*.tmpl`, `string.Template` syntax); what depends on the fields is built here.
With ruff installed (`make test` installs it) the Python files are formatted and their imports
sorted, so the result passes `make lint` as written.
"""

from __future__ import annotations

import keyword
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).parent
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Kind:
    """A field type of the command line: its Python types (body, read), its PynamoDB attribute,
    its DynamoDB key type (None: cannot be a key), and sample values for the tests."""

    body: str
    read: str
    attribute: str
    key_type: str | None
    sample: str  # an expression of `n` (1, 2, 3...) and `name`, the field's name


KINDS = {
    "str": Kind("Text", "str", "UnicodeAttribute", "S", 'f"{name} {n}"'),
    "int": Kind("Annotated[int, DynamoStorable()]", "int", "NumberAttribute", "N", "n"),
    "float": Kind("DynamoNumber", "float", "NumberAttribute", "N", "n + 0.5"),
    "bool": Kind("JsonBool", "bool", "BooleanAttribute", None, "n % 2 == 0"),
    "list[int]": Kind(
        "list[Annotated[int, DynamoStorable()]]",
        "list[int]",
        "ListAttribute(of=NumberAttribute)",
        None,
        "[n, n + 1]",
    ),
    "list[float]": Kind(
        "list[DynamoNumber]", "list[float]", "ListAttribute(of=NumberAttribute)", None, "[n + 0.5]"
    ),
    "list[str]": Kind(
        "list[Text]", "list[str]", "ListAttribute(of=UnicodeAttribute)", None, '[f"{name} {n}"]'
    ),
}
# Lists hold at most this many entries (a bound that keeps an item under DynamoDB's 400 KB).
MAX_LIST = 1000


class ScaffoldError(ValueError):
    """A field spec or name the command cannot use (the message says why)."""


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    index: bool = False
    optional: bool = False

    @property
    def is_list(self) -> bool:
        return self.kind.startswith("list[")

    @classmethod
    def parse(cls, spec: str) -> Field:
        """`name:type[:index]`; a type ending in `?` may be null (e.g. `age:int?`)."""
        parts = spec.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "index"):
            raise ScaffoldError(f"field {spec!r}: expected name:type or name:type:index")
        name, kind = parts[0], parts[1]
        optional = kind.endswith("?")
        kind = kind.rstrip("?")
        _check_name(name, "field")
        if kind not in KINDS:
            raise ScaffoldError(f"field {name}: type {kind!r} is not one of {', '.join(KINDS)}")
        field = cls(name, kind, index=len(parts) == 3, optional=optional)
        if field.index and (KINDS[kind].key_type is None or optional):
            raise ScaffoldError(f"field {name}: only a required str, int or float can be indexed")
        if field.is_list and optional:
            raise ScaffoldError(f"field {name}: a list is never null (it defaults to [])")
        return field


@dataclass(frozen=True)
class Spec:
    plural: str
    singular: str
    id_name: str
    id_kind: str  # "str" or "int"
    fields: tuple[Field, ...]

    @property
    def Singular(self) -> str:  # noqa: N802 - the template variable's name
        return _camel(self.singular)

    @property
    def Plural(self) -> str:  # noqa: N802
        return _camel(self.plural)


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name) or keyword.iskeyword(name) or name in ("version", "id"):
        raise ScaffoldError(
            f"{what} name {name!r}: use lower_snake_case, not a Python keyword, not 'version'"
        )


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def singular_of(plural: str) -> str:
    if plural.endswith("ies"):
        return plural[:-3] + "y"
    if plural.endswith("s") and not plural.endswith("ss"):
        return plural[:-1]
    return plural


def make_spec(
    plural: str, fields: list[str], id_spec: str | None = None, singular: str | None = None
) -> Spec:
    _check_name(plural, "feature")
    singular = singular or singular_of(plural)
    _check_name(singular, "singular")
    if singular == plural:
        raise ScaffoldError(f"{plural!r}: give --singular (the name of one item)")
    id_name, _, id_kind = (id_spec or f"{singular}_id:str").partition(":")
    _check_name(id_name, "id")
    if id_kind not in ("str", "int"):
        raise ScaffoldError(f"id {id_name}: its type is str or int, not {id_kind!r}")
    parsed = tuple(Field.parse(spec) for spec in fields)
    names = [id_name, *(field.name for field in parsed)]
    if len(set(names)) != len(names):
        raise ScaffoldError("every field needs a name of its own (the id's included)")
    if not parsed or all(field.optional for field in parsed):
        raise ScaffoldError("give at least one required --field")
    return Spec(plural, singular, id_name, id_kind, parsed)


# ----- what goes into the templates ---------------------------------------------------------------


def _table_values(spec: Spec) -> dict[str, str]:
    imports = {"NumberAttribute" if spec.id_kind == "int" else "UnicodeAttribute"}
    lines = []
    for field in spec.fields:
        attribute = KINDS[field.kind].attribute
        imports.update(re.findall(r"\w+Attribute", attribute))
        if field.is_list:
            call = attribute[:-1] + ", default=list)"
        else:
            call = f"{attribute}({'null=True' if field.optional else ''})"
        lines.append(f"    {field.name} = {call}\n")
    indexed = [field for field in spec.fields if field.index]
    classes, attributes = [], []
    id_attribute = "NumberAttribute" if spec.id_kind == "int" else "UnicodeAttribute"
    for field in indexed:
        key = KINDS[field.kind].attribute
        base = f'GlobalSecondaryIndex["{spec.Singular}Table"]'
        classes.append(
            f"\n\nclass By{_camel(field.name)}Index({base}):\n"
            f'    """Serves `?{field.name}=` as a Query, in {spec.id_name} order."""\n\n'
            "    class Meta:\n"
            f'        index_name = "{index_name(field)}"\n'
            "        projection = AllProjection()\n\n"
            f"    {field.name} = {key}(hash_key=True)\n"
            f"    {spec.id_name} = {id_attribute}(range_key=True)\n"
        )
        attributes.append(f"    by_{field.name} = By{_camel(field.name)}Index()\n")
    return {
        "attribute_imports": ", ".join(sorted(imports)),
        "index_imports": (
            "from pynamodb.indexes import AllProjection, GlobalSecondaryIndex\n" if indexed else ""
        ),
        "index_classes": "".join(classes),
        "index_doc": (
            "\n\n"
            + textwrap.fill(
                f"Each indexed field has a GSI (hash key: the field, range key: {spec.id_name}), "
                "so that filtering on it is a Query, not a Scan.",
                width=96,
            )
            + "\n"
            if indexed
            else ""
        ),
        "id_attribute": id_attribute,
        "attributes": "".join(lines),
        "index_attributes": ("\n" + "".join(attributes)) if attributes else "",
    }


def index_name(field: Field) -> str:
    return "by-" + field.name.replace("_", "-")


def _service_values(spec: Spec) -> dict[str, str]:
    indexed = [field for field in spec.fields if field.index]
    plans = ", ".join(
        f'IndexPlan({spec.Singular}Table.by_{field.name}, "{field.name}")' for field in indexed
    )
    return {
        "service_imports": "IndexPlan, PynamoDataService" if indexed else "PynamoDataService",
        "plans_doc": ", told which index serves which filter" if indexed else "",
        "index_plans": (
            "    # Each filter is a Query on the index named for it (no filter: a Scan).\n"
            f"    index_plans = ({plans},)\n"
            if indexed
            else ""
        ),
    }


def _dto_values(spec: Spec) -> dict[str, str]:
    body_lines, read_lines = [], []
    used = {"Patch", "StrictModel"}
    for field in spec.fields:
        kind = KINDS[field.kind]
        used.update(re.findall(r"Text|DynamoStorable|DynamoNumber|JsonBool", kind.body))
        if field.is_list:
            body = f"{kind.body} = Field(default_factory=list, max_length={MAX_LIST})"
        elif field.optional:
            body = f"{kind.body} | None = None"
        else:
            body = kind.body
        body_lines.append(f"    {field.name}: {body}")
        read_lines.append(f"    {field.name}: {kind.read}{' | None' if field.optional else ''}")
    if spec.id_kind == "int":
        used.add("IntId")
        id_type, id_python, create_id = "IntId", "int", f"{spec.Singular}Id"
        create_doc, new_id = "", f"body.{spec.id_name}"
    else:
        used.add("StrId")
        id_type, id_python, create_id = "StrId", "str", f"{spec.Singular}Id | None = None"
        create_doc = "; the server makes an id when none is given"
        new_id = f"body.{spec.id_name} or service.new_id()"
    nullable = [field.name for field in spec.fields if field.optional]
    return {
        "dto_imports": ", ".join(sorted(used)),
        "id_type": id_type,
        "id_python": id_python,
        "create_id": create_id,
        "create_doc": create_doc,
        "new_id": new_id,
        "field_lines": "\n".join(body_lines),
        "read_lines": "\n".join(read_lines),
        "null_doc": (f"; null clears {', '.join(nullable)}" if nullable else ""),
    }


def _route_values(spec: Spec) -> dict[str, str]:
    indexed = [field for field in spec.fields if field.index]
    # No trailing comma: ruff then keeps the signature on one line when it fits.
    params = "".join(
        f", {field.name}: Annotated[{KINDS[field.kind].read} | None, Query()] = None"
        for field in indexed
    )
    own_id = f"{spec.singular}.{spec.id_name}"
    return {
        # PynamoDB types a NumberAttribute as float; the id is an int.
        "id_value": f"int({own_id})" if spec.id_kind == "int" else own_id,
        "filter_params": params,
        "filter_args": "".join(f", {field.name}={field.name}" for field in indexed),
        "filter_doc": (
            "\n\n"
            + textwrap.fill(
                "Filters, each a Query on its index: "
                + ", ".join(f"`{f.name}`" for f in indexed)
                + ".",
                width=96,
                initial_indent="    ",
                subsequent_indent="    ",
            )
            + "\n    "
            if indexed
            else ""
        ),
    }


def _test_values(spec: Spec) -> dict[str, str]:
    id_sample = "n" if spec.id_kind == "int" else 'f"id-{n}"'
    samples = [f'"{spec.id_name}": {id_sample}']
    for field in spec.fields:
        sample = KINDS[field.kind].sample.replace("{name}", field.name)
        samples.append(f'"{field.name}": {sample}')
    required = next(f for f in spec.fields if not f.optional and not f.is_list)
    patch = next((f for f in spec.fields if not f.is_list), spec.fields[0])
    filters = "".join(
        f"\n\ndef test_list_filters_by_{field.name}(client: TestClient) -> None:\n"
        "    wanted = create(client, 1)\n"
        "    create(client, 2)\n"
        f'    page = client.get(BASE, params={{"{field.name}": wanted["{field.name}"]}}).json()\n'
        f'    found = [item["{spec.id_name}"] for item in page["items"]]\n'
        f'    assert found == [wanted["{spec.id_name}"]]\n'
        for field in spec.fields
        if field.index
    )
    return {
        "sample": ", ".join(samples),
        "required_field": required.name,
        "patch_field": patch.name,
        "missing_id": "987654321" if spec.id_kind == "int" else "no-such-id",
        "bad_id": "not-a-number" if spec.id_kind == "int" else "bad%20id",
        "filter_tests": filters,
    }


def _cfn_values(spec: Spec) -> dict[str, str]:
    id_type = "N" if spec.id_kind == "int" else "S"
    definitions = [f"        - {{ AttributeName: {spec.id_name}, AttributeType: {id_type} }}"]
    indexes = []
    for field in spec.fields:
        if not field.index:
            continue
        key_type = KINDS[field.kind].key_type
        definitions.append(
            f"        - {{ AttributeName: {field.name}, AttributeType: {key_type} }}"
        )
        indexes.append(
            f"        - IndexName: {index_name(field)}\n"
            "          KeySchema:\n"
            f"            - {{ AttributeName: {field.name}, KeyType: HASH }}\n"
            f"            - {{ AttributeName: {spec.id_name}, KeyType: RANGE }}\n"
            "          Projection: { ProjectionType: ALL }\n"
        )
    return {
        "attribute_definitions": "\n".join(definitions),
        "gsi_block": ("      GlobalSecondaryIndexes:\n" + "".join(indexes)) if indexes else "",
    }


# ----- writing -----------------------------------------------------------------------------------

CFN_MARKERS = {
    "cfn_parameter.yaml.tmpl": "  # new-feature: table parameters",
    "cfn_table.yaml.tmpl": "  # new-feature: tables",
    "cfn_grant.yaml.tmpl": "        # new-feature: table grants",
    "cfn_output.yaml.tmpl": "  # new-feature: table outputs",
    "cfn_public_reads.yaml.tmpl": "  # new-feature: public reads",
}


def _render(template: str, values: dict[str, str]) -> str:
    return Template((TEMPLATES / template).read_text()).substitute(values)


def generate(spec: Spec, root: Path, description: str = "") -> list[Path]:
    """Write the feature into the project at `root`; returns the files written or changed."""
    feature_dir = root / "app_lib" / "features" / spec.plural
    tests_dir = root / "tests" / "features" / spec.plural
    template_path = root / "cloudformation" / "backend.yaml"
    if feature_dir.exists() or tests_dir.exists():
        raise ScaffoldError(f"{feature_dir} or {tests_dir} exists already")
    backend = template_path.read_text()
    if f"  {spec.Plural}Table:\n" in backend:
        raise ScaffoldError(f"cloudformation/backend.yaml has a {spec.Plural}Table already")
    values = {
        "plural": spec.plural,
        "singular": spec.singular,
        "Singular": spec.Singular,
        "Plural": spec.Plural,
        "id_name": spec.id_name,
        "description": description or f"the {spec.plural} feature (generated by new-feature).",
        **_table_values(spec),
        **_service_values(spec),
        **_dto_values(spec),
        **_route_values(spec),
        **_test_values(spec),
        **_cfn_values(spec),
    }
    files = {
        feature_dir / "__init__.py": "feature_init.py.tmpl",
        feature_dir / "table.py": "table.py.tmpl",
        feature_dir / "data_service.py": "data_service.py.tmpl",
        feature_dir / "dto.py": "dto.py.tmpl",
        feature_dir / "routes.py": "routes.py.tmpl",
        tests_dir / "test_routes.py": "test_routes.py.tmpl",
    }
    feature_dir.mkdir(parents=True)
    tests_dir.mkdir(parents=True)
    (tests_dir / "__init__.py").write_text("")
    for path, template in files.items():
        path.write_text(_render(template, values))
    flag = "          # new-feature: table flags"
    backend = _insert(backend, flag, f"          - Enable{spec.Plural}Table\n")
    condition = f'  {spec.Plural}TableEnabled: !Equals [!Ref Enable{spec.Plural}Table, "true"]\n'
    backend = _insert(backend, "  # new-feature: table conditions", condition)
    for template, marker in CFN_MARKERS.items():
        backend = _insert(backend, marker, _render(template, values))
    template_path.write_text(backend)
    written = [*files, tests_dir / "__init__.py", template_path]
    _format([path for path in written if path.suffix == ".py"], root)
    return written


def _insert(text: str, marker: str, block: str) -> str:
    """`block` on the lines above the line that starts with `marker`."""
    at = text.find("\n" + marker)
    if at < 0:
        raise ScaffoldError(f"cloudformation/backend.yaml lost its marker {marker.strip()!r}")
    return text[: at + 1] + block + text[at + 1 :]


def _format(paths: list[Path], root: Path) -> None:
    """ruff (when installed): sorted imports, wrapped lines."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        return
    names = [str(path) for path in paths]
    subprocess.run(  # noqa: S603 - our own tool on files we just wrote
        [str(ruff), "check", "--fix", "--quiet", "--select", "I,F401", *names],
        cwd=root,
        check=False,
    )
    subprocess.run([str(ruff), "format", "--quiet", *names], cwd=root, check=False)  # noqa: S603
