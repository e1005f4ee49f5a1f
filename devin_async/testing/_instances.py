"""A small, deterministic instance of a JSON Schema: the fake server's `structured_output`.

Rules of this file:
- Minimal: only `required` properties (plus what `minProperties` asks), `minItems` items.
- Deterministic: every choice comes from one `random.Random(seed)`, walked in schema order.
- Precedence in one node: `const`, then `enum`, then `default`, then `$ref`, `allOf` (merged),
  `anyOf`/`oneOf` (the first branch), then `type` (the first listed; inferred from the
  keywords when absent).
- Recursion: past `_DEEP` nested schemas a union takes its null (or scalar) branch, so a
  recursive `Optional` ends; past `_TOO_DEEP` the schema has no finite instance: ValueError.
- Not covered: `pattern`, `uniqueItems`, `multipleOf`, `not`, `if`/`then`, `dependencies`.
"""

from __future__ import annotations

import copy
import math
import random
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["instance_for"]

_DEEP = 8
_TOO_DEEP = 64
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


def instance_for(schema: dict[str, Any], *, seed: int = 0) -> Any:
    """Return a minimal instance valid against a draft-7 `schema`, the same for the same seed.

    Args:
        schema: A JSON Schema (draft 7, or the subset of 2020-12 pydantic emits: `$defs`).
        seed: Picks the values (enum members, numbers, words); the shape stays minimal.

    Raises:
        ValueError: The schema has no instance this generator can build (`false`, an empty
            range, a `$ref` that does not resolve, recursion without a way out).
    """
    return _Generator(schema, random.Random(seed)).value(schema, 0)


class _Generator:
    def __init__(self, root: Any, rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def value(self, schema: Any, depth: int) -> Any:
        if depth > _TOO_DEEP:
            raise ValueError("schema is recursive with no finite instance")
        if schema is True or schema == {}:
            return None
        if schema is False:
            raise ValueError("schema `false` has no instance")
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if "enum" in schema:
            return copy.deepcopy(self.rng.choice(schema["enum"]))
        if "default" in schema:
            return copy.deepcopy(schema["default"])
        if "$ref" in schema:
            return self.value(self.resolve(schema["$ref"]), depth + 1)
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged.update(self.resolve(part["$ref"]) if "$ref" in part else part)
            return self.value(merged, depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.value(self.branch(schema[key], depth), depth + 1)
        kind = _kind(schema)
        if kind not in _BY_TYPE:
            raise ValueError(f"unknown JSON Schema type {kind!r}")
        return _BY_TYPE[kind](self, schema, depth)

    def branch(self, branches: list[Any], depth: int) -> Any:
        if depth > _DEEP:
            for b in branches:
                if isinstance(b, dict) and _kind(b) not in ("object", "array") and "$ref" not in b:
                    return b
        return branches[0]

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ValueError(f"cannot follow the external $ref {ref!r}")
        node = self.root
        for raw in ref[2:].split("/") if ref not in ("#", "#/") else ():
            part = raw.replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise ValueError(f"the $ref {ref!r} does not resolve") from None
        return node

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        names = list(schema.get("required", []))
        wanted = schema.get("minProperties", 0)
        names += [n for n in props if n not in names][: max(0, wanted - len(names))]
        out = {}
        for name in names:
            sub = props.get(name, extra)
            out[name] = self.value({} if sub is True else sub, depth + 1)
        i = 0
        while len(out) < wanted and extra is not False:
            if f"key{i}" not in out:
                out[f"key{i}"] = self.value({} if extra is True else extra, depth + 1)
            i += 1
        return out

    def array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        items = schema.get("items", {})
        count = schema.get("minItems", 0)
        if isinstance(items, list):  # the tuple form: every position is filled
            extra = schema.get("additionalItems", {})
            return [self.value(items[i] if i < len(items) else extra, depth + 1)
                    for i in range(max(count, len(items)))]
        return [self.value(items, depth + 1) for _ in range(count)]

    def string(self, schema: dict[str, Any], _depth: int) -> str:
        n = self.rng.randrange(1000)
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return _FORMATS[fmt](n, self.rng)
        text = f"{self.rng.choice(_WORDS)}-{n}"
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if high is not None and low > high:
            raise ValueError(f"no string has {low} <= length <= {high}")
        text = text.ljust(low, "x")
        return text if high is None else text[:high]

    def integer(self, schema: dict[str, Any], _depth: int) -> int:
        low, high = _bounds(schema)
        lo = None if low is None else (math.floor(low[0]) + 1 if low[1] else math.ceil(low[0]))
        hi = None if high is None else (math.ceil(high[0]) - 1 if high[1] else math.floor(high[0]))
        n = self.rng.randrange(100)
        if lo is not None and hi is not None:
            if lo > hi:
                raise ValueError(f"no integer in [{lo}, {hi}]")
            return lo + n % (hi - lo + 1)
        if lo is not None:
            return lo + n
        return n if hi is None else hi - n

    def number(self, schema: dict[str, Any], _depth: int) -> float:
        low, high = _bounds(schema)
        n = self.rng.randrange(100)
        if low is not None and high is not None:
            if low[0] > high[0] or (low[0] == high[0] and (low[1] or high[1])):
                raise ValueError(f"no number between {low[0]} and {high[0]}")
            if low[0] == high[0]:
                return float(low[0])
            return low[0] + (high[0] - low[0]) * (n + 1) / 101
        if low is not None:
            return float(low[0] + n + (0.5 if low[1] else 0.0))
        return n + 0.5 if high is None else float(high[0] - n - (0.5 if high[1] else 0.0))

    def boolean(self, _schema: dict[str, Any], _depth: int) -> bool:
        return self.rng.random() < 0.5

    def null(self, _schema: dict[str, Any], _depth: int) -> None:
        return None


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if isinstance(kind, str):
        return kind
    for keys, inferred in _INFERRED:
        if any(k in schema for k in keys):
            return inferred
    return "null"


def _bounds(schema: dict[str, Any]) -> tuple[tuple[float, bool] | None, tuple[float, bool] | None]:
    """Return the (value, exclusive) lower and upper bounds, the tighter of each pair."""
    def pick(inclusive: str, exclusive: str, tighter: Any) -> tuple[float, bool] | None:
        options = [(schema[inclusive], False)] if inclusive in schema else []
        if type(schema.get(exclusive)) in (int, float):  # draft 4's booleans do not count
            options.append((schema[exclusive], True))
        best: tuple[float, bool] | None = tighter(
            options, key=lambda o: (o[0], o[1] if tighter is max else not o[1]), default=None)
        return best

    return pick("minimum", "exclusiveMinimum", max), pick("maximum", "exclusiveMaximum", min)


_INFERRED = (
    (("properties", "required", "additionalProperties", "minProperties"), "object"),
    (("items", "minItems", "maxItems"), "array"),
    (("minLength", "maxLength", "format", "pattern"), "string"),
    (("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"), "number"),
)

_BY_TYPE = {
    "object": _Generator.object,
    "array": _Generator.array,
    "string": _Generator.string,
    "integer": _Generator.integer,
    "number": _Generator.number,
    "boolean": _Generator.boolean,
    "null": _Generator.null,
}

_FORMATS: dict[str, Callable[[int, random.Random], str]] = {
    "date-time": lambda n, _r: f"2026-{n % 12 + 1:02d}-{n % 28 + 1:02d}T12:{n % 60:02d}:00Z",
    "date": lambda n, _r: f"2026-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
    "time": lambda n, _r: f"12:{n % 60:02d}:00Z",
    "email": lambda n, _r: f"user{n}@example.com",
    "uri": lambda n, _r: f"https://example.com/item/{n}",
    "url": lambda n, _r: f"https://example.com/item/{n}",
    "uuid": lambda _n, r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
    "hostname": lambda n, _r: f"host{n}.example.com",
    "ipv4": lambda n, _r: f"192.0.2.{n % 254 + 1}",
}
