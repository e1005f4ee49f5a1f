"""structure_output: strict structuring of a session's structured_output; RunResult; the error."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Literal

import attrs
import cattrs
import pydantic
import pytest

from devin_async import DevinError, Session, SessionStatus
from devin_async._errors import StructuredOutputError
from devin_async._output import RunResult, describe_error, structure_output


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Place:
    city: str
    zip: int | None = None


@dataclasses.dataclass(frozen=True)
class Report:
    title: str
    count: int
    ratio: float
    done: bool
    color: Color
    level: Level
    mode: Literal["fast", 1]
    place: Place
    tags: list[str] = dataclasses.field(default_factory=list)
    scores: dict[str, int] = dataclasses.field(default_factory=dict)
    extra: Any = None
    places: list[Place] = dataclasses.field(default_factory=list)


GOOD = {"title": "t", "count": 2, "ratio": 0.5, "done": False, "color": "red", "level": 2,
        "mode": "fast", "place": {"city": "Wellington"}}


def good(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


EXPECTED = Report(title="t", count=2, ratio=0.5, done=False, color=Color.RED, level=Level.HIGH,
                  mode="fast", place=Place("Wellington"))


class PydanticPlace(pydantic.BaseModel):
    city: str
    zip: int | None = None


SUCCESS: list[tuple[str, Any, type | None, Any]] = [
    ("all fields", GOOD, Report, EXPECTED),
    ("defaults filled", good(), Report, dataclasses.replace(EXPECTED, tags=[], scores={})),
    ("optional given", good(place={"city": "c", "zip": 6011}), Report,
     dataclasses.replace(EXPECTED, place=Place("c", 6011))),
    ("optional null", good(place={"city": "c", "zip": None}), Report,
     dataclasses.replace(EXPECTED, place=Place("c"))),
    ("integral float is an int", good(count=2.0), Report, EXPECTED),
    ("int is a float", good(ratio=1), Report, dataclasses.replace(EXPECTED, ratio=1.0)),
    ("Literal int", good(mode=1), Report, dataclasses.replace(EXPECTED, mode=1)),
    ("lists and dicts", good(tags=["a"], scores={"x": 1}, places=[{"city": "p"}]), Report,
     dataclasses.replace(EXPECTED, tags=["a"], scores={"x": 1}, places=[Place("p")])),
    ("Any passes through", good(extra={"deep": [1, None]}), Report,
     dataclasses.replace(EXPECTED, extra={"deep": [1, None]})),
    ("attrs at the top", {"city": "c"}, Place, Place("c")),
    ("pydantic", {"city": "c", "zip": 1}, PydanticPlace, PydanticPlace(city="c", zip=1)),
]


@pytest.mark.parametrize(("raw", "output_type", "expected"), [c[1:] for c in SUCCESS],
                         ids=[c[0] for c in SUCCESS])
def test_structures(raw: Any, output_type: type, expected: Any) -> None:
    value = structure_output(raw, output_type)
    assert value == expected
    assert type(value) is output_type


class Shade(enum.StrEnum):
    DARK = "dark"


class Mixin(str, enum.Enum):  # noqa: UP042  (the pre-StrEnum idiom, still common)
    ON = "on"


@attrs.frozen
class Typed:
    count: int
    ratio: float
    level: Level
    shade: Shade
    mixin: Mixin
    color: Color


def test_values_have_the_field_types() -> None:
    value = structure_output({"count": 2.0, "ratio": 1, "level": 1, "shade": "dark",
                              "mixin": "on", "color": "blue"}, Typed)
    assert [type(v) for v in attrs.astuple(value)] == [int, float, Level, Shade, Mixin, Color]


class Name(str):
    __slots__ = ()


@attrs.frozen
class Named:
    name: Name


def test_a_str_subclass_field_is_refused() -> None:
    with pytest.raises(cattrs.ClassValidationError) as info:
        structure_output({"name": "n"}, Named)
    assert "unsupported output type" in describe_error(info.value)


@pytest.mark.parametrize("raw", [{"a": 1}, [1, 2], "text", 3, None])
def test_no_output_type_returns_raw_unchanged(raw: Any) -> None:
    assert structure_output(raw, None) is raw


FAILURE: list[tuple[str, Any, type, str]] = [
    # (id, raw, output_type, describe_error(exc): what was wrong, and where)
    ("int for str", good(title=1), Report, "expected a string, got int @ $.title"),
    ("str for int", good(count="2"), Report, "expected an integer, got str @ $.count"),
    ("bool for int", good(count=True), Report, "expected an integer, got bool @ $.count"),
    ("fraction for int", good(count=2.5), Report, "expected an integer, got float @ $.count"),
    ("bool for float", good(ratio=False), Report, "expected a number, got bool @ $.ratio"),
    ("str for float", good(ratio="0.5"), Report, "expected a number, got str @ $.ratio"),
    ("int for bool", good(done=1), Report, "expected a boolean, got int @ $.done"),
    ("str for bool", good(done="false"), Report, "expected a boolean, got str @ $.done"),
    ("null for str", good(title=None), Report, "expected a string, got NoneType @ $.title"),
    ("missing field", {k: v for k, v in GOOD.items() if k != "count"}, Report,
     "required field missing @ $.count"),
    ("two problems", good(title=1, count=None), Report,
     "expected a string, got int @ $.title; expected an integer, got NoneType @ $.count"),
    ("extra key", good(surprise=1), Report, "extra fields found (surprise) @ $"),
    ("nested extra key", good(place={"city": "c", "state": "x"}), Report,
     "extra fields found (state) @ $.place"),
    ("nested wrong type", good(place={"city": "c", "zip": "6011"}), Report,
     "expected an integer, got str @ $.place.zip"),
    ("nested missing", good(place={}), Report, "required field missing @ $.place.city"),
    ("enum value", good(color="green"), Report,
     "expected a Color value ['red', 'blue'], got 'green' @ $.color"),
    ("enum name", good(color="RED"), Report,
     "expected a Color value ['red', 'blue'], got 'RED' @ $.color"),
    ("IntEnum given a bool", good(level=True), Report,
     "expected a Level value [1, 2], got True @ $.level"),
    ("IntEnum given a str", good(level="2"), Report,
     "expected a Level value [1, 2], got '2' @ $.level"),
    ("literal value", good(mode="slow"), Report,
     "expected one of ['fast', 1], got 'slow' @ $.mode"),
    ("literal 1 given True", good(mode=True), Report,
     "expected one of ['fast', 1], got True @ $.mode"),
    ("long value cut", good(mode="z" * 100), Report,
     f"expected one of ['fast', 1], got '{'z' * 56}... @ $.mode"),
    ("str for list", good(tags="abc"), Report, "expected a list, got str @ $.tags"),
    ("object for list", good(tags={"a": 1}), Report, "expected a list, got dict @ $.tags"),
    ("list item", good(tags=["a", 2]), Report, "expected a string, got int @ $.tags[1]"),
    ("list for dict", good(scores=[["a", 1]]), Report, "expected an object, got list @ $.scores"),
    ("dict value", good(scores={"a": "1"}), Report,
     "expected an integer, got str @ $.scores['a']"),
    ("object in list", good(places=[{"city": "p"}, "q"]), Report,
     "expected an object, got str @ $.places[1]"),
    ("a list, not an object", [GOOD], Report, "TypeError: expected an object, got list"),
    ("a string, not an object", "abc", Report, "TypeError: expected an object, got str"),
    ("null, not an object", None, Place, "TypeError: expected an object, got NoneType"),
]


@pytest.mark.parametrize(("raw", "output_type", "reason"), [c[1:] for c in FAILURE],
                         ids=[c[0] for c in FAILURE])
def test_refuses(raw: Any, output_type: type, reason: str) -> None:
    with pytest.raises((cattrs.BaseValidationError, TypeError)) as info:
        structure_output(raw, output_type)
    assert describe_error(info.value) == reason


PYDANTIC_FAILURE: list[tuple[str, Any, str]] = [
    ("missing", {}, "city"),
    ("wrong type", {"city": "c", "zip": "not a number"}, "zip"),
    ("not an object", [1], "PydanticPlace"),
]


@pytest.mark.parametrize(("raw", "field"), [c[1:] for c in PYDANTIC_FAILURE],
                         ids=[c[0] for c in PYDANTIC_FAILURE])
def test_pydantic_refuses(raw: Any, field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        structure_output(raw, PydanticPlace)
    assert field in describe_error(info.value)
    assert describe_error(info.value).startswith("ValidationError: ")


@pytest.mark.parametrize("output_type", [dict, int, list[int], "Report"])
def test_an_output_type_that_is_no_class_of_ours_is_a_value_error(output_type: Any) -> None:
    with pytest.raises(ValueError, match="output_type must be an attrs class, a dataclass, a "
                                         "pydantic model or None, got"):
        structure_output({}, output_type)


def session() -> Session:
    return Session(session_id="devin-1", status=SessionStatus("exit"), url="u", org_id="o",
                   created_at=1, updated_at=2, structured_output={"city": 3})


def test_run_result_is_a_frozen_pair() -> None:
    result = RunResult(session(), output=Place("c"))
    assert (result.session.session_id, result.output) == ("devin-1", Place("c"))
    assert RunResult(session(), Place("c")) == result
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.output = None  # type: ignore[misc]
    assert not hasattr(result, "__dict__")  # slotted


def test_structured_output_error_carries_the_session_raw_and_cause() -> None:
    s = session()
    raw = s.structured_output
    try:
        try:
            structure_output(raw, Place)
        except Exception as exc:
            raise StructuredOutputError(f"output does not fit Place: {describe_error(exc)}",
                                        session=s, raw=raw) from exc
    except StructuredOutputError as err:
        assert isinstance(err, DevinError)
        assert (err.session, err.raw) == (s, {"city": 3})
        assert isinstance(err.__cause__, cattrs.ClassValidationError)
        assert str(err) == "output does not fit Place: expected a string, got int @ $.city"
