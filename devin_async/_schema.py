"""Turn a structured-output spec (a JSON Schema dict or a class) into the schema the API takes.

Rules of this file:
- The API wants JSON Schema draft 7, at most 64 KB, self-contained (no external `$ref`). Every
  schema leaving `schema_for` passes those checks, whether the user wrote it or we generated it.
- A class is an attrs class, a dataclass, or (duck-typed, never imported) a pydantic model.
  attrs/dataclass fields map through the tables below; anything not in them is a ValueError
  naming `Class.field` and the type, so a schema never silently promises less than the class.
- The schema describes exactly what `_output.structure_output` accepts: field names as keys,
  `additionalProperties: false`, fields with a default (or factory) not `required`.
- Nested classes go to `definitions` and are referenced as `#/definitions/Name`; the root class
  is inline and a reference back to it is `#`, so recursive classes terminate.
- Unions: `Optional[T]` / `T | None` only (`anyOf: [T, null]`). A union of several non-None
  types is refused: it cannot be structured back without guessing.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import math
import types
import typing
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["DRAFT_7", "MAX_SCHEMA_BYTES", "is_pydantic_model", "is_record_class", "schema_for"]

DRAFT_7 = "http://json-schema.org/draft-07/schema#"
MAX_SCHEMA_BYTES = 65536

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}
#: The JSON type of a Literal/Enum value (`type(v)` exactly: True is not an integer here).
_JSON_TYPE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def is_pydantic_model(cls: Any) -> bool:
    """Return whether `cls` looks like a pydantic model class (duck typing; no import)."""
    return (isinstance(cls, type) and callable(getattr(cls, "model_json_schema", None))
            and callable(getattr(cls, "model_validate", None)))


def is_record_class(cls: Any) -> bool:
    """Return whether `cls` is an attrs class or a dataclass."""
    return isinstance(cls, type) and (attrs.has(cls) or dataclasses.is_dataclass(cls))


def schema_for(spec: type | dict[str, Any]) -> dict[str, Any]:
    """Return the JSON Schema (draft 7) for a structured-output spec.

    Args:
        spec: A JSON Schema dict (returned as is, after the checks), or an attrs class, a
            dataclass or a pydantic model class (turned into a self-contained schema).

    Raises:
        ValueError: The dict is not JSON, is over 64 KB, or has a `$ref` that is not local or
            does not resolve; or the class has a field of a type that has no schema here.
    """
    if isinstance(spec, dict):
        schema = spec
    elif is_pydantic_model(spec):
        schema = _pydantic_schema(spec)
    elif is_record_class(spec):
        schema = _ClassSchema(spec).build()
    else:
        got = (_type_name(spec) if isinstance(spec, type)
               else f"a value of type {_type_name(type(spec))}")
        raise ValueError("a structured output schema must be a JSON Schema dict, an attrs class, "
                         f"a dataclass or a pydantic model, got {got}")
    _check(schema)
    return schema


def _pydantic_schema(model: Any) -> dict[str, Any]:
    try:
        schema = model.model_json_schema()
    except Exception as exc:  # pydantic's own errors: we do not import pydantic to name them
        raise ValueError(f"{model.__qualname__}: pydantic could not build a JSON Schema: {exc}"
                         ) from exc
    if not isinstance(schema, dict):
        raise ValueError(f"{model.__qualname__}.model_json_schema() did not return a dict")
    return {"$schema": DRAFT_7, **schema} if "$schema" not in schema else schema


# --- checks on any schema -------------------------------------------------------------------

def _check(schema: dict[str, Any]) -> None:
    refs: list[tuple[str, str]] = []
    try:
        _walk(schema, "", refs)
    except RecursionError:
        raise ValueError("JSON Schema is not JSON: it contains itself") from None
    size = len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_SCHEMA_BYTES:
        raise ValueError(f"JSON Schema is too large: {size} bytes of compact JSON "
                         f"(the API takes at most {MAX_SCHEMA_BYTES})")
    for where, ref in refs:
        if not ref.startswith("#"):
            raise ValueError(f"JSON Schema has an external $ref at {where or '/'}: {ref!r} "
                             "(the schema must be self-contained: only refs starting with '#')")
        if (ref == "#" or ref.startswith("#/")) and not _resolves(schema, ref):
            raise ValueError(f"JSON Schema has a $ref that does not resolve at {where or '/'}: "
                             f"{ref!r}")


def _walk(node: Any, where: str, refs: list[tuple[str, str]]) -> None:
    """Check that `node` is plain JSON, collecting every string `$ref` with its location."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise ValueError(f"JSON Schema is not JSON: a non-string key {key!r} at "
                                 f"{where or '/'}")
            if key == "$ref" and isinstance(value, str):
                refs.append((where, value))
            _walk(value, f"{where}/{key}", refs)
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            _walk(value, f"{where}/{i}", refs)
    elif isinstance(node, float) and not math.isfinite(node):
        raise ValueError(f"JSON Schema is not JSON: {node} at {where or '/'}")
    elif not isinstance(node, str | int | float | bool | type(None)):
        raise ValueError(f"JSON Schema is not JSON: a {type(node).__name__} at {where or '/'}")


def _resolves(schema: dict[str, Any], ref: str) -> bool:
    node: Any = schema
    for raw in ref[2:].split("/") if ref != "#" else ():
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


# --- attrs classes and dataclasses ----------------------------------------------------------

class _ClassSchema:
    """One schema build: the root class inline, every other class once in `definitions`."""

    def __init__(self, root: type) -> None:
        self.root = root
        self.names: dict[type, str] = {}
        self.definitions: dict[str, dict[str, Any]] = {}

    def build(self) -> dict[str, Any]:
        body = self.object_schema(self.root)
        schema: dict[str, Any] = {"$schema": DRAFT_7, **body}
        if self.definitions:
            schema["definitions"] = self.definitions
        return schema

    def ref(self, cls: type) -> dict[str, Any]:
        if cls is self.root:
            return {"$ref": "#"}
        if cls not in self.names:
            name, n = cls.__name__, 1
            while name in self.definitions:
                n += 1
                name = f"{cls.__name__}_{n}"
            self.names[cls] = name
            self.definitions[name] = {}  # reserved first: a recursive reference stops here
            self.definitions[name] = self.object_schema(cls)
        return {"$ref": f"#/definitions/{self.names[cls]}"}

    def object_schema(self, cls: type) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for name, tp, default, meta in _fields(cls):
            where = f"{cls.__qualname__}.{name}"
            prop = self.type_schema(tp, where)
            if "description" in meta:
                prop = {**prop, "description": str(meta["description"])}
            if default is _REQUIRED:
                required.append(name)
            elif _is_json_default(default):
                prop = {**prop, "default": default.value if isinstance(default, enum.Enum)
                        else default}
            properties[name] = prop
        schema: dict[str, Any] = {"type": "object", "properties": properties,
                                  "required": required, "additionalProperties": False}
        if (doc := _doc(cls)) is not None:
            schema = {"description": doc, **schema}
        return {"title": cls.__name__, **schema}

    def type_schema(self, tp: Any, where: str) -> dict[str, Any]:
        origin = typing.get_origin(tp)
        if origin is not None:
            handler = _GENERIC.get(origin)
            if handler is None:
                raise _unsupported(where, tp)
            return handler(self, typing.get_args(tp), where, tp)
        if tp is Any:
            return {}
        if isinstance(tp, type):
            if tp in _SCALARS:
                return dict(_SCALARS[tp])
            if issubclass(tp, enum.Enum):
                return _values_schema([m.value for m in tp], where, tp)
            if is_record_class(tp):
                return self.ref(tp)
        raise _unsupported(where, tp)


def _list(b: _ClassSchema, args: tuple[Any, ...], where: str, tp: Any) -> dict[str, Any]:
    if len(args) != 1:
        raise _unsupported(where, tp, "give the item type: list[T]")
    return {"type": "array", "items": b.type_schema(args[0], where)}


def _dict(b: _ClassSchema, args: tuple[Any, ...], where: str, tp: Any) -> dict[str, Any]:
    if len(args) != 2 or args[0] is not str:
        raise _unsupported(where, tp, "JSON object keys are strings: dict[str, T]")
    return {"type": "object", "additionalProperties": b.type_schema(args[1], where)}


def _union(b: _ClassSchema, args: tuple[Any, ...], where: str, tp: Any) -> dict[str, Any]:
    others = [a for a in args if a is not type(None)]
    if len(others) != 1:
        raise _unsupported(where, tp, "only Optional[T] unions are supported")
    return {"anyOf": [b.type_schema(others[0], where), {"type": "null"}]}


def _literal(_b: _ClassSchema, args: tuple[Any, ...], where: str, tp: Any) -> dict[str, Any]:
    return _values_schema(list(args), where, tp)


def _annotated(b: _ClassSchema, args: tuple[Any, ...], where: str, _tp: Any) -> dict[str, Any]:
    return b.type_schema(args[0], where)


_GenericHandler = Callable[[_ClassSchema, tuple[Any, ...], str, Any], dict[str, Any]]
_GENERIC: dict[Any, _GenericHandler] = {
    list: _list,
    dict: _dict,
    typing.Union: _union,
    types.UnionType: _union,
    typing.Literal: _literal,
    typing.Annotated: _annotated,
}


def _values_schema(values: list[Any], where: str, tp: Any) -> dict[str, Any]:
    """Schema of a Literal or an Enum: its values, typed when they share one JSON type."""
    kinds = {_JSON_TYPE.get(type(v)) for v in values}
    if not values or None in kinds or any(isinstance(v, float) and not math.isfinite(v)
                                          for v in values):
        raise _unsupported(where, tp, "values must be str, int, float, bool or None")
    schema: dict[str, Any] = {"enum": values}
    if len(kinds) == 1:
        schema = {"type": kinds.pop(), **schema}
    return schema


_REQUIRED = object()  # a field without a default
_FACTORY = object()  # a field whose default is made per instance (not written in the schema)


def _fields(cls: type) -> list[tuple[str, Any, Any, Any]]:
    """Return (name, type, default, metadata) of each field the structurer sets."""
    try:
        if attrs.has(cls):
            attrs.resolve_types(cls)
            return [(a.name, a.type, _attrs_default(a.default), a.metadata)
                    for a in attrs.fields(cls) if a.init]
        hints = typing.get_type_hints(cls, include_extras=True)
    except NameError as exc:
        raise ValueError(f"{cls.__qualname__}: cannot resolve a type annotation ({exc})") from exc
    out = []
    for f in dataclasses.fields(cls):
        if f.init:
            default = (f.default if f.default is not dataclasses.MISSING
                       else _REQUIRED if f.default_factory is dataclasses.MISSING else _FACTORY)
            out.append((f.name, hints[f.name], default, f.metadata))
    return out


def _attrs_default(default: Any) -> Any:
    if default is attrs.NOTHING:
        return _REQUIRED
    return _FACTORY if isinstance(default, attrs.Factory) else default  # type: ignore[arg-type]


def _is_json_default(value: Any) -> bool:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool | None)


def _doc(cls: type) -> str | None:
    doc = cls.__dict__.get("__doc__")
    if not doc:
        return None
    text = inspect.cleandoc(doc)
    if dataclasses.is_dataclass(cls) and text.startswith(f"{cls.__name__}("):
        return None  # the signature dataclasses writes when the class has no docstring
    return " ".join(text.split("\n\n", 1)[0].split())


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))  # the same on 3.11-3.14
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        if tp.__module__ == "builtins":
            return tp.__qualname__
        return f"{tp.__module__}.{tp.__qualname__}"
    return repr(tp).replace("typing.", "")


def _unsupported(where: str, tp: Any, hint: str = "") -> ValueError:
    return ValueError(f"{where}: unsupported type {_type_name(tp)}" + (f" ({hint})" if hint
                                                                        else ""))
