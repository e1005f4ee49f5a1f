"""Structure a session's `structured_output` (plain JSON) into the caller's `output_type`.

Why a converter of its own: the SDK's response converter ignores unknown keys (the API grows);
here the schema we sent said `additionalProperties: false`, so an extra key, like a wrong type,
means the output is not what the caller asked for. Every hook is strict in the same way as the
schema: no coercion (`"5"` is not an int, `True` is not 1, a string is not a list), an integral
float is an int (JSON Schema draft 7 agrees), an int is a float. Literal and Enum values must
match in type and value. Errors are raised as they come; the caller wraps them.
"""

from __future__ import annotations

import enum
import json
from typing import Any, Generic, Literal, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import list_structure_factory, mapping_structure_factory
from cattrs.dispatch import StructureHook
from cattrs.gen import make_dict_structure_fn
from cattrs.v import format_exception

from ._models import Session
from ._schema import is_pydantic_model, is_record_class

__all__ = ["RunResult", "describe_error", "make_output_converter", "structure_output"]

T = TypeVar("T")


@attrs.frozen
class RunResult(Generic[T]):
    """The outcome of `sessions.run()`: the settled session and its structured output."""

    session: Session
    output: T


def _type_error(expected: str, value: Any) -> TypeError:
    return TypeError(f"expected {expected}, got {type(value).__name__}")


def _str(value: Any, _: Any) -> str:
    if type(value) is str:
        return value
    raise _type_error("a string", value)


def _int(value: Any, _: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise _type_error("an integer", value)


def _float(value: Any, _: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise _type_error("a number", value)


def _bool(value: Any, _: Any) -> bool:
    if type(value) is bool:
        return value
    raise _type_error("a boolean", value)


def _none(value: Any, _: Any) -> None:
    if value is not None:
        raise _type_error("null", value)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _literal(value: Any, tp: Any) -> Any:
    for allowed in get_args(tp):
        if _same(value, allowed):
            return allowed
    raise ValueError(f"expected one of {_short(list(get_args(tp)))}, got {_short(value)}")


def _enum(value: Any, tp: type[enum.Enum]) -> enum.Enum:
    for member in tp:
        if _same(value, member.value):
            return member
    raise ValueError(f"expected a {tp.__name__} value {_short([m.value for m in tp])}, "
                     f"got {_short(value)}")


def _checked(kind: type, expected: str, hook: StructureHook) -> StructureHook:
    """Wrap a cattrs hook so that a value of the wrong JSON kind fails before it runs."""

    def structure(value: Any, tp: Any) -> Any:
        if type(value) is not kind:
            raise _type_error(expected, value)
        return hook(value, tp)

    return structure


def _exactly(exact: type, hook: StructureHook) -> StructureHook:
    """Apply `hook` to `exact` only; route its enum subclasses (IntEnum, `str, Enum`) to _enum.

    cattrs dispatches classes by MRO before anything else, so the int hook is also what an
    IntEnum field finds first.
    """

    def structure(value: Any, tp: Any) -> Any:
        if tp is exact:
            return hook(value, tp)
        if issubclass(tp, enum.Enum):
            return _enum(value, tp)
        raise TypeError(f"unsupported output type {tp!r} (a subclass of {exact.__name__})")

    return structure


def _is_literal(tp: Any) -> bool:
    return get_origin(tp) is Literal


def _is_list(tp: Any) -> bool:
    return get_origin(tp) is list


def _is_dict(tp: Any) -> bool:
    return get_origin(tp) is dict


def _list_hook(tp: Any, conv: cattrs.Converter) -> StructureHook:
    return _checked(list, "a list", list_structure_factory(tp, conv))


def _dict_hook(tp: Any, conv: cattrs.Converter) -> StructureHook:
    return _checked(dict, "an object", mapping_structure_factory(tp, conv))


def _record_hook(tp: Any, conv: cattrs.Converter) -> StructureHook:
    return _checked(dict, "an object", make_dict_structure_fn(tp, conv))


def make_output_converter() -> cattrs.Converter:
    """Build the strict converter for structured output (no global state is changed)."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    for tp, hook in ((str, _str), (int, _int), (float, _float), (bool, _bool),
                     (type(None), _none)):
        conv.register_structure_hook(tp, _exactly(tp, hook))
    conv.register_structure_hook(enum.Enum, _enum)
    conv.register_structure_hook_func(_is_literal, _literal)
    conv.register_structure_hook_factory(_is_list, _list_hook)
    conv.register_structure_hook_factory(_is_dict, _dict_hook)
    conv.register_structure_hook_factory(is_record_class, _record_hook)
    return conv


_CONVERTER = make_output_converter()


def structure_output(raw: Any, output_type: type[Any] | None) -> Any:
    """Return `raw` structured into `output_type` (`raw` itself when it is None).

    Args:
        raw: The session's `structured_output`, as decoded from JSON.
        output_type: An attrs class, a dataclass, a pydantic model class, or None.

    Raises:
        ValueError: `output_type` is none of those.
        Exception: Whatever the structuring raised (a cattrs `ClassValidationError`, a
            pydantic `ValidationError`, ...) when `raw` does not fit `output_type`.
    """
    if output_type is None:
        return raw
    if is_pydantic_model(output_type):
        # Strict, and no unknown keys, as for attrs classes: checked on a subclass that forbids
        # extra fields, then the caller's own class is built.
        # JSON-mode strictness: what JSON carries (an enum's value, an int for a float) fits,
        # a string for a number does not.
        text = json.dumps(raw)
        _forbidding(output_type).model_validate_json(text, strict=True)
        return output_type.model_validate_json(text, strict=True)
    if is_record_class(output_type):
        return _CONVERTER.structure(raw, output_type)
    raise ValueError("output_type must be an attrs class, a dataclass, a pydantic model or "
                     f"None, got {output_type!r}")


_FORBIDDING: dict[type[Any], type[Any]] = {}


def _forbidding(model: type[Any]) -> type[Any]:
    """Return a subclass of the pydantic `model` that refuses unknown keys (cached)."""
    strict = _FORBIDDING.get(model)
    if strict is None:
        config = {**getattr(model, "model_config", {}), "extra": "forbid"}
        strict = type(model.__name__, (model,), {"model_config": config,
                                                 "__module__": model.__module__})
        _FORBIDDING[model] = strict
    return strict


def describe_error(exc: BaseException) -> str:
    """Return a one-line account of why structuring failed, with the JSON path of each problem."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, format_exception=_format))
    return f"{type(exc).__name__}: {exc}"


def _format(exc: BaseException, tp: Any) -> str:
    if isinstance(exc, TypeError | ValueError) and not isinstance(exc, KeyError):
        return str(exc)  # this module's hooks say what was expected and what came
    return format_exception(exc, tp)
