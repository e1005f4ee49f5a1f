"""schema_for: classes to draft-7 schemas, dict schemas checked; instance_for round trips.

This module uses `from __future__ import annotations`, so every class below reaches schema_for
with string annotations that it has to resolve.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
from typing import Annotated, Any, Literal, Optional, Union

import attrs
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from devin_async._output import structure_output
from devin_async._schema import DRAFT_7, MAX_SCHEMA_BYTES, schema_for
from devin_async.testing._instances import instance_for

from .properties import examples


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mixed(enum.Enum):
    A = "a"
    ONE = 1


class Pairs(enum.Enum):
    P = (1, 2)


def one(tp: Any, name: str = "One") -> type:
    """A dataclass with the single required field `x: tp` (a real type: nothing to resolve)."""
    return dataclasses.make_dataclass(name, [("x", tp)])


SUPPORTED: list[tuple[str, Any, dict[str, Any]]] = [
    ("str", str, {"type": "string"}),
    ("int", int, {"type": "integer"}),
    ("float", float, {"type": "number"}),
    ("bool", bool, {"type": "boolean"}),
    ("None", None, {"type": "null"}),
    ("Any", Any, {}),
    ("Optional", Optional[int], {"anyOf": [{"type": "integer"}, {"type": "null"}]}),  # noqa: UP045
    ("T | None", str | None, {"anyOf": [{"type": "string"}, {"type": "null"}]}),
    ("list", list[str], {"type": "array", "items": {"type": "string"}}),
    ("list of lists", list[list[int]],
     {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}),
    ("dict", dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
    ("dict of lists", dict[str, list[bool]],
     {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "boolean"}}}),
    ("dict of Any", dict[str, Any], {"type": "object", "additionalProperties": {}}),
    ("Literal str", Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
    ("Literal int", Literal[1, 2], {"type": "integer", "enum": [1, 2]}),
    ("Literal bool", Literal[True], {"type": "boolean", "enum": [True]}),
    ("Literal mixed", Literal["a", 1, None], {"enum": ["a", 1, None]}),
    ("Enum", Color, {"type": "string", "enum": ["red", "green"]}),
    ("IntEnum", Level, {"type": "integer", "enum": [1, 2]}),
    ("mixed Enum", Mixed, {"enum": ["a", 1]}),
    ("Optional Enum", Color | None,
     {"anyOf": [{"type": "string", "enum": ["red", "green"]}, {"type": "null"}]}),
    ("Annotated", Annotated[int, "a note"], {"type": "integer"}),
]


@pytest.mark.parametrize(("tp", "expected"), [c[1:] for c in SUPPORTED],
                         ids=[c[0] for c in SUPPORTED])
def test_each_supported_type(tp: Any, expected: dict[str, Any]) -> None:
    schema = schema_for(one(tp))
    Draft7Validator.check_schema(schema)
    assert schema == {
        "$schema": DRAFT_7, "title": "One", "type": "object", "properties": {"x": expected},
        "required": ["x"], "additionalProperties": False,
    }


@attrs.frozen
class Place:
    """Where something happened.

    The second paragraph is not part of the description.
    """

    city: str = attrs.field(metadata={"description": "The city's name."})
    country: str = "NZ"


@dataclasses.dataclass
class Visit:
    """A visit,
    over two lines."""

    place: Place
    when: int = dataclasses.field(metadata={"description": "Unix seconds."})
    notes: list[str] = dataclasses.field(default_factory=list)
    color: Color = Color.GREEN
    level: Level | None = None
    ratio: float = 0.5
    computed: int = dataclasses.field(default=0, init=False)


@attrs.frozen
class Node:
    name: str
    children: list[Node] = attrs.Factory(list)
    parent: Node | None = None


@dataclasses.dataclass
class Tree:
    root: Branch
    spare: Branch | None = None


@dataclasses.dataclass
class Branch:
    label: str
    forks: list[Branch]
    tree: Tree | None


@dataclasses.dataclass
class NoDoc:
    a: int


@attrs.define
class Everything:
    """Every supported kind at once."""

    text: str
    count: int
    ratio: float
    flag: bool
    nothing: None
    maybe: int | None
    words: list[str]
    table: dict[str, float]
    mode: Literal["fast", "slow"]
    color: Color
    level: Level
    visit: Visit
    anything: Any
    nested: dict[str, list[Place | None]]
    private: int = attrs.field(default=1, init=False)


PLACE_SCHEMA = {
    "title": "Place", "description": "Where something happened.", "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city's name."},
        "country": {"type": "string", "default": "NZ"},
    },
    "required": ["city"], "additionalProperties": False,
}

CLASS_CASES: list[tuple[str, type, dict[str, Any]]] = [
    ("attrs, metadata description, docstring paragraph", Place,
     {"$schema": DRAFT_7, **PLACE_SCHEMA}),
    ("dataclass, nested, defaults, factory, init=False", Visit, {
        "$schema": DRAFT_7, "title": "Visit", "description": "A visit, over two lines.",
        "type": "object",
        "properties": {
            "place": {"$ref": "#/definitions/Place"},
            "when": {"type": "integer", "description": "Unix seconds."},
            "notes": {"type": "array", "items": {"type": "string"}},
            "color": {"type": "string", "enum": ["red", "green"], "default": "green"},
            "level": {"anyOf": [{"type": "integer", "enum": [1, 2]}, {"type": "null"}],
                      "default": None},
            "ratio": {"type": "number", "default": 0.5},
        },
        "required": ["place", "when"], "additionalProperties": False,
        "definitions": {"Place": PLACE_SCHEMA},
    }),
    ("recursion to the root", Node, {
        "$schema": DRAFT_7, "title": "Node", "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}},
            "parent": {"anyOf": [{"$ref": "#"}, {"type": "null"}], "default": None},
        },
        "required": ["name"], "additionalProperties": False,
    }),
    ("mutual recursion through definitions", Tree, {
        "$schema": DRAFT_7, "title": "Tree", "type": "object",
        "properties": {
            "root": {"$ref": "#/definitions/Branch"},
            "spare": {"anyOf": [{"$ref": "#/definitions/Branch"}, {"type": "null"}],
                      "default": None},
        },
        "required": ["root"], "additionalProperties": False,
        "definitions": {"Branch": {
            "title": "Branch", "type": "object",
            "properties": {
                "label": {"type": "string"},
                "forks": {"type": "array", "items": {"$ref": "#/definitions/Branch"}},
                "tree": {"anyOf": [{"$ref": "#"}, {"type": "null"}]},
            },
            "required": ["label", "forks", "tree"], "additionalProperties": False,
        }},
    }),
    ("a dataclass without a docstring has no description", NoDoc, {
        "$schema": DRAFT_7, "title": "NoDoc", "type": "object",
        "properties": {"a": {"type": "integer"}}, "required": ["a"],
        "additionalProperties": False,
    }),
]


@pytest.mark.parametrize(("cls", "expected"), [c[1:] for c in CLASS_CASES],
                         ids=[c[0] for c in CLASS_CASES])
def test_class_schemas(cls: type, expected: dict[str, Any]) -> None:
    schema = schema_for(cls)
    Draft7Validator.check_schema(schema)
    assert schema == expected


def test_two_classes_with_one_name_get_two_definitions() -> None:
    first, second = one(int, "Item"), one(str, "Item")
    outer = dataclasses.make_dataclass("Outer", [("a", first), ("b", second), ("c", first)])
    schema = schema_for(outer)
    assert schema["properties"] == {"a": {"$ref": "#/definitions/Item"},
                                    "b": {"$ref": "#/definitions/Item_2"},
                                    "c": {"$ref": "#/definitions/Item"}}
    assert schema["definitions"]["Item"]["properties"]["x"] == {"type": "integer"}
    assert schema["definitions"]["Item_2"]["properties"]["x"] == {"type": "string"}


class Shade(enum.Enum):
    DARK = "dark"
    LIGHT = "light"


class Part(pydantic.BaseModel):
    """A part."""

    name: str
    count: int = 1


class Order(pydantic.BaseModel):
    parts: list[Part]
    shade: Shade
    mode: Literal["a", "b"]
    note: str | None = None
    limit: int = pydantic.Field(ge=1, le=10)
    code: str = pydantic.Field(min_length=3, max_length=5)


def test_pydantic_model_uses_its_own_schema() -> None:
    schema = schema_for(Order)
    Draft7Validator.check_schema(schema)
    assert schema == {"$schema": DRAFT_7, **Order.model_json_schema()}
    assert schema["properties"]["parts"]["items"] == {"$ref": "#/$defs/Part"}


def test_pydantic_schema_over_the_limit_is_refused() -> None:
    class Big(pydantic.BaseModel):
        x: int = pydantic.Field(description="d" * MAX_SCHEMA_BYTES)

    with pytest.raises(ValueError, match="JSON Schema is too large"):
        schema_for(Big)


class Bad(enum.Enum):
    X = object()


@dataclasses.dataclass
class Inner:
    when: datetime.datetime


@dataclasses.dataclass
class Outer:
    ok: int
    inner: Inner


@dataclasses.dataclass
class Unresolvable:
    x: Missing  # type: ignore[name-defined]  # noqa: F821


UNSUPPORTED: list[tuple[str, Any, str]] = [
    ("set", one(set[int]), "One.x: unsupported type set[int]"),
    ("datetime", one(datetime.datetime), "One.x: unsupported type datetime.datetime"),
    ("object", one(object), "One.x: unsupported type object"),
    ("bare list", one(list), "One.x: unsupported type list"),
    ("bare dict", one(dict), "One.x: unsupported type dict"),
    ("tuple", one(tuple[int, int]), "One.x: unsupported type tuple[int, int]"),
    ("int keys", one(dict[int, str]),
     "One.x: unsupported type dict[int, str] (JSON object keys are strings: dict[str, T])"),
    ("union", one(int | str),
     "One.x: unsupported type int | str (only Optional[T] unions are supported)"),
    ("optional union", one(Union[int, str, None]),  # noqa: UP007
     "One.x: unsupported type int | str | None (only Optional[T] unions are supported)"),
    ("inside a list", one(list[datetime.date]), "One.x: unsupported type datetime.date"),
    ("Literal bytes", one(Literal[b"x"]),
     "One.x: unsupported type Literal[b'x'] (values must be str, int, float, bool or None)"),
    ("Enum of objects", one(Bad),
     f"One.x: unsupported type {__name__}.Bad (values must be str, int, float, bool or None)"),
    ("Enum of tuples", one(Pairs),
     f"One.x: unsupported type {__name__}.Pairs (values must be str, int, float, bool or None)"),
    ("nested class", Outer, "Inner.when: unsupported type datetime.datetime"),
    ("unresolvable annotation", Unresolvable,
     "Unresolvable: cannot resolve a type annotation (name 'Missing' is not defined)"),
    ("not a class", 5, "a structured output schema must be a JSON Schema dict, an attrs class, "
                       "a dataclass or a pydantic model, got a value of type int"),
    ("a plain class", datetime.date, "a structured output schema must be a JSON Schema dict, "
                                     "an attrs class, a dataclass or a pydantic model, got "
                                     "datetime.date"),
]


@pytest.mark.parametrize(("spec", "message"), [c[1:] for c in UNSUPPORTED],
                         ids=[c[0] for c in UNSUPPORTED])
def test_unsupported_types_name_the_field_and_type(spec: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        schema_for(spec)
    assert str(info.value) == message


def test_class_schema_over_the_limit_is_refused() -> None:
    big = dataclasses.make_dataclass(
        "Big", [("x", int, dataclasses.field(metadata={"description": "é" * 40000}))])
    with pytest.raises(ValueError, match=r"too large: 80\d\d\d bytes"):
        schema_for(big)


# --- dict schemas ---------------------------------------------------------------------------

def sized(n: int) -> dict[str, Any]:
    """A schema whose compact JSON is exactly `n` bytes."""
    schema = {"description": ""}
    schema["description"] = "x" * (n - len(json.dumps(schema, separators=(",", ":"))))
    return schema


GOOD_DICTS: list[tuple[str, dict[str, Any]]] = [
    ("empty", {}),
    ("exactly 64 KB", sized(MAX_SCHEMA_BYTES)),
    ("local refs", {"definitions": {"A": {"type": "string"}}, "type": "object",
                    "properties": {"a": {"$ref": "#/definitions/A"}, "me": {"$ref": "#"},
                                   "esc": {"$ref": "#/definitions/x~1y"}},
                    "$defs": {"B": {"type": "integer"}}}),
    ("$defs ref", {"$defs": {"B": {"type": "integer"}}, "items": {"$ref": "#/$defs/B"}}),
    ("anchor ref", {"definitions": {"A": {"$id": "#a"}}, "items": {"$ref": "#a"}}),
    ("a property named $ref", {"properties": {"$ref": {"type": "string"}}}),
]
GOOD_DICTS[2][1]["definitions"]["x/y"] = {"type": "null"}


@pytest.mark.parametrize("schema", [c[1] for c in GOOD_DICTS], ids=[c[0] for c in GOOD_DICTS])
def test_a_dict_schema_is_returned_as_is(schema: dict[str, Any]) -> None:
    before = json.dumps(schema)
    assert schema_for(schema) is schema
    assert json.dumps(schema) == before


BAD_DICTS: list[tuple[str, dict[str, Any], str]] = [
    ("one byte over", sized(MAX_SCHEMA_BYTES + 1),
     "JSON Schema is too large: 65537 bytes of compact JSON (the API takes at most 65536)"),
    ("bytes, not characters", {"description": "é" * 33000},
     "JSON Schema is too large: 66018 bytes of compact JSON (the API takes at most 65536)"),
    ("external URL", {"properties": {"a": {"$ref": "https://example.com/s.json"}}},
     "JSON Schema has an external $ref at /properties/a: 'https://example.com/s.json' "
     "(the schema must be self-contained: only refs starting with '#')"),
    ("relative file", {"items": {"anyOf": [{"$ref": "other.json#/A"}]}},
     "JSON Schema has an external $ref at /items/anyOf/0: 'other.json#/A' "
     "(the schema must be self-contained: only refs starting with '#')"),
    ("root ref", {"$ref": "defs.json"},
     "JSON Schema has an external $ref at /: 'defs.json' "
     "(the schema must be self-contained: only refs starting with '#')"),
    ("dangling local ref", {"items": {"$ref": "#/definitions/Nope"}},
     "JSON Schema has a $ref that does not resolve at /items: '#/definitions/Nope'"),
    ("a set", {"enum": {1, 2}}, "JSON Schema is not JSON: a set at /enum"),
    ("NaN", {"maximum": float("nan")}, "JSON Schema is not JSON: nan at /maximum"),
    ("int key", {"properties": {1: {}}}, "JSON Schema is not JSON: a non-string key 1 at "
                                         "/properties"),
]


@pytest.mark.parametrize(("schema", "message"), [c[1:] for c in BAD_DICTS],
                         ids=[c[0] for c in BAD_DICTS])
def test_bad_dict_schemas_are_refused(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        schema_for(schema)
    assert str(info.value) == message


def test_a_dict_that_contains_itself_is_refused() -> None:
    schema: dict[str, Any] = {"type": "object"}
    schema["properties"] = {"loop": schema}
    with pytest.raises(ValueError, match="it contains itself"):
        schema_for(schema)


# --- round trips: instance_for(schema_for(cls)) validates and structures back ---------------

ROUND_TRIP: list[type] = [Place, Visit, Node, Tree, NoDoc, Everything, Part, Order,
                          *(one(c[1]) for c in SUPPORTED)]
ROUND_TRIP_IDS = [c.__name__ for c in ROUND_TRIP[:8]] + [f"One[{c[0]}]" for c in SUPPORTED]


def round_trip(cls: type, seed: int) -> Any:
    schema = schema_for(cls)
    instance = instance_for(schema, seed=seed)
    Draft7Validator(schema).validate(instance)
    value = structure_output(instance, cls)
    assert isinstance(value, cls)
    return value


@pytest.mark.parametrize("cls", ROUND_TRIP, ids=ROUND_TRIP_IDS)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_round_trip(cls: type, seed: int) -> None:
    round_trip(cls, seed)


def test_round_trip_keeps_values() -> None:
    visit = round_trip(Visit, 3)
    instance = instance_for(schema_for(Visit), seed=3)
    assert visit.place.city == instance["place"]["city"]
    assert visit.when == instance["when"]
    assert (visit.notes, visit.color, visit.level) == ([], Color.GREEN, None)  # the defaults


@settings(max_examples=examples(60), deadline=None)
@given(cls=st.sampled_from(ROUND_TRIP), seed=st.integers(0, 2**32))
def test_round_trip_any_seed(cls: type, seed: int) -> None:
    round_trip(cls, seed)


@dataclasses.dataclass(frozen=True)
class Flat:
    name: str
    tags: list[str]
    scores: dict[str, int]
    mode: Literal["a", "b", 3]
    color: Color
    level: Level | None
    flag: bool = False


@settings(max_examples=examples(80), deadline=None)
@given(value=st.from_type(Flat))
def test_every_instance_of_the_class_fits_its_schema(value: Flat) -> None:
    raw = {**dataclasses.asdict(value), "color": value.color.value,
           "level": None if value.level is None else value.level.value}
    Draft7Validator(schema_for(Flat)).validate(raw)
    assert structure_output(json.loads(json.dumps(raw)), Flat) == value


# --- instance_for on hand-written schemas ---------------------------------------------------

INSTANCE_CASES: list[tuple[str, Any, Any]] = [
    # (id, schema, a check on the instance beyond validity: a value, a type, or a predicate)
    ("true", True, None),
    ("empty", {}, None),
    ("const", {"const": {"a": [1]}}, {"a": [1]}),
    ("enum", {"enum": ["x"]}, "x"),
    ("default", {"type": "integer", "default": 42}, 42),
    ("type list", {"type": ["string", "null"], "minLength": 2}, str),
    ("null", {"type": "null"}, None),
    ("boolean", {"type": "boolean"}, bool),
    ("minLength", {"type": "string", "minLength": 30}, lambda v: len(v) == 30),
    ("maxLength", {"type": "string", "maxLength": 3}, lambda v: len(v) <= 3),
    ("length range", {"type": "string", "minLength": 2, "maxLength": 2}, lambda v: len(v) == 2),
    ("date-time", {"type": "string", "format": "date-time"},
     lambda v: datetime.datetime.fromisoformat(v).tzinfo is not None),
    ("date", {"type": "string", "format": "date"}, lambda v: datetime.date.fromisoformat(v)),
    ("email", {"type": "string", "format": "email"}, lambda v: v.endswith("@example.com")),
    ("uri", {"type": "string", "format": "uri"}, lambda v: v.startswith("https://")),
    ("uuid", {"type": "string", "format": "uuid"}, lambda v: len(v) == 36),
    ("integer range", {"type": "integer", "minimum": 5, "maximum": 5}, 5),
    ("exclusive integer", {"type": "integer", "exclusiveMinimum": 4, "exclusiveMaximum": 6}, 5),
    ("exclusive float bounds", {"type": "integer", "exclusiveMinimum": 4.5,
                                "exclusiveMaximum": 5.5}, 5),
    ("only a maximum", {"type": "integer", "maximum": -1000}, lambda v: v <= -1000),
    ("only a minimum", {"type": "integer", "minimum": 10**6}, lambda v: v >= 10**6),
    ("number range", {"type": "number", "minimum": 0.25, "maximum": 0.5}, float),
    ("exclusive number", {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1e-9},
     lambda v: 0 < v < 1e-9),
    ("number at a point", {"type": "number", "minimum": 2, "maximum": 2}, 2.0),
    ("tighter bound wins", {"type": "integer", "minimum": 3, "exclusiveMinimum": 3,
                            "maximum": 4}, 4),
    ("minItems", {"type": "array", "items": {"type": "integer"}, "minItems": 3},
     lambda v: len(v) == 3),
    ("tuple items", {"type": "array", "items": [{"type": "string"}, {"type": "null"}]},
     lambda v: len(v) == 2 and v[1] is None),
    ("required only", {"type": "object", "properties": {"a": {"type": "string"},
                                                        "b": {"type": "string"}},
                       "required": ["b"], "additionalProperties": False},
     lambda v: list(v) == ["b"]),
    ("minProperties", {"type": "object", "properties": {"a": {"type": "integer"}},
                       "minProperties": 3, "additionalProperties": {"type": "boolean"}},
     lambda v: len(v) == 3 and type(v["a"]) is int),
    ("required, not in properties", {"type": "object", "required": ["z"],
                                     "additionalProperties": {"type": "integer"}},
     lambda v: type(v["z"]) is int),
    ("inferred object", {"properties": {"a": {"type": "string"}}, "required": ["a"]}, dict),
    ("inferred string", {"minLength": 4}, str),
    ("anyOf first", {"anyOf": [{"type": "string"}, {"type": "integer"}]}, str),
    ("oneOf first", {"oneOf": [{"type": "integer"}, {"type": "string"}]}, int),
    ("allOf merged", {"allOf": [{"type": "integer"}, {"minimum": 70, "maximum": 70}]}, 70),
    ("definitions ref", {"definitions": {"A": {"const": "a"}}, "$ref": "#/definitions/A"}, "a"),
    ("$defs ref", {"$defs": {"A": {"type": "integer", "minimum": 9, "maximum": 9}},
                   "type": "object", "properties": {"a": {"$ref": "#/$defs/A"}},
                   "required": ["a"]}, {"a": 9}),
    ("escaped pointer", {"definitions": {"a/b": {"const": 1}}, "$ref": "#/definitions/a~1b"}, 1),
    ("recursive optional ends", {"type": "object", "required": ["next"], "properties": {
        "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}},
     lambda v: 2 <= json.dumps(v).count("next") <= 10),
]


def satisfies(value: Any, check: Any) -> bool:
    if isinstance(check, type):
        return type(value) is check
    if callable(check):
        return bool(check(value))
    return bool(value == check and type(value) is type(check))


@pytest.mark.parametrize(("schema", "check"), [c[1:] for c in INSTANCE_CASES],
                         ids=[c[0] for c in INSTANCE_CASES])
@pytest.mark.parametrize("seed", [0, 5, 123456])
def test_instance_for(schema: Any, check: Any, seed: int) -> None:
    Draft7Validator.check_schema(schema)
    value = instance_for(schema, seed=seed)
    Draft7Validator(schema).validate(value)
    assert satisfies(value, check)
    assert instance_for(schema, seed=seed) == value  # deterministic


def test_seeds_vary_the_values() -> None:
    schema = schema_for(Everything)
    assert len({json.dumps(instance_for(schema, seed=s), sort_keys=True) for s in range(20)}) > 15


NO_INSTANCE: list[tuple[str, Any, str]] = [
    ("false", False, "schema `false` has no instance"),
    ("empty integer range", {"type": "integer", "minimum": 3, "maximum": 2},
     "no integer in [3, 2]"),
    ("empty open integer range", {"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 2},
     "no integer in [2, 1]"),
    ("empty number range", {"type": "number", "exclusiveMinimum": 1, "maximum": 1},
     "no number between 1 and 1"),
    ("length range", {"type": "string", "minLength": 3, "maxLength": 2},
     "no string has 3 <= length <= 2"),
    ("dangling ref", {"$ref": "#/definitions/Nope"},
     "the $ref '#/definitions/Nope' does not resolve"),
    ("external ref", {"$ref": "https://example.com/x"},
     "cannot follow the external $ref 'https://example.com/x'"),
    ("endless recursion",
     {"type": "object", "required": ["me"], "properties": {"me": {"$ref": "#"}}},
     "schema is recursive with no finite instance"),
    ("forbidden required", {"type": "object", "required": ["a"], "additionalProperties": False},
     "schema `false` has no instance"),
    ("unknown type", {"type": "decimal"}, "unknown JSON Schema type 'decimal'"),
]


@pytest.mark.parametrize(("schema", "message"), [c[1:] for c in NO_INSTANCE],
                         ids=[c[0] for c in NO_INSTANCE])
def test_schemas_without_an_instance(schema: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        instance_for(schema)
    assert str(info.value) == message
