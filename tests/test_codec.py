"""The two JSON codecs (stdlib and orjson) accept, refuse and produce the same things.

`devin_async._json` picks orjson when it is installed (a client may pick either with
`DevinClient(json_codec=)`). Everything a user can observe must be the same either way, so each
case here runs on both; the rest of the suite runs on the stdlib's (see conftest). orjson comes
with the `test` extra, so both are always here.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import math
import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devin_async import (
    CreateSessionRequest,
    DevinClient,
    MalformedResponseError,
    NotFoundError,
    _json,
)
from devin_async._protocol import decode_error, decode_json
from devin_async.testing import FakeDevinServer

from .properties import examples

CODECS = ["json", "orjson"]


def test_both_codecs_are_installed_for_the_tests() -> None:
    assert set(_json.CODECS) == set(CODECS)
    assert _json.get("json").name == "json" and _json.get("orjson").name == "orjson"
    with pytest.raises(ValueError, match="not available"):
        _json.get("simdjson")
    with pytest.raises(ValueError, match="not available"):
        DevinClient("cog_" + "k" * 20, org_id="org-1", json_codec="simdjson")


@pytest.fixture(params=CODECS)
def codec(request: pytest.FixtureRequest) -> _json.Codec:
    return _json.get(request.param)


# JSON data as both codecs can carry it exactly: ints within 64 bits, finite floats.
_leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
_values = st.recursive(_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20)


@settings(max_examples=examples(300), deadline=None, derandomize=True)
@given(_values)
def test_codecs_read_and_write_the_same_data(value: Any) -> None:
    text = json.dumps(value)
    for name in CODECS:
        _, loads, dumps = _json.CODECS[name]
        assert loads(text.encode()) == value
        assert loads(dumps(value)) == value
        assert json.loads(dumps(value)) == value  # what the other side's parser reads


@pytest.mark.parametrize("body", [
    b'{"a": NaN}', b'{"a": Infinity}', b"[-Infinity]", b'{"a": 1', b"", b"   ", b"{'a': 1}",
    b'{"a": "\xff"}', b"\x00", b'{"a": 1} x', b"[1,]", b'{"a" 1}', b"[1e400]",
    b'{"acus_consumed": -1E999}',
])
def test_codecs_refuse_the_same_bodies(codec: _json.Codec, body: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        decode_json(200, body, codec.loads)


@pytest.mark.parametrize("body, value", [
    (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),  # a UTF-8 byte-order mark
    (b' \n{"a": [1, 2.5, "\\u00e9", null, true]}\r\n', {"a": [1, 2.5, "é", None, True]}),
    (b'{"a": 1, "a": 2}', {"a": 2}),
    ('{"k": "Zürich ✓"}'.encode(), {"k": "Zürich ✓"}),
])
def test_codecs_accept_the_same_bodies(codec: _json.Codec, body: bytes, value: Any) -> None:
    assert decode_json(200, body, codec.loads) == value


@pytest.mark.parametrize("status, body", [
    (404, b'{"title": "Not Found", "detail": {"id": "x"}}'),
    (422, b'{"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]}'),
    (429, b'{"detail": "slow down", "retry": NaN}'),  # not JSON: read as text by both
    (500, b"<html>oops</html>"),
    (503, b'\xef\xbb\xbf{"message": "maintenance"}'),
    (422, b'{"detail": ' + b"[" * 1000 + b"]" * 1000 + b"}"),  # orjson reads it, the stdlib not
])
def test_error_bodies_read_the_same(status: int, body: bytes) -> None:
    seen = []
    for name in CODECS:
        error = decode_error(status, {}, body, loads=_json.get(name).loads)
        seen.append((type(error), error.status, error.detail, str(error)))
    assert seen[0] == seen[1] and seen[0][2]


@pytest.mark.parametrize("value, body", [
    ({1: "a"}, b'{"1":"a"}'),  # orjson refuses non-string keys: the stdlib encodes them
    ({"n": 2**70}, b'{"n":1180591620717411303424}'),  # beyond 64 bits: the stdlib again
    ({"t": (1, "x")}, b'{"t":[1,"x"]}'),
    ({"e": "é"}, None),  # the bytes differ (escaped or not); the text is the same
])
def test_codecs_encode_the_same(codec: _json.Codec, value: Any, body: bytes | None) -> None:
    encoded = codec.dumps(value)
    assert isinstance(encoded, bytes)
    if body is not None:
        assert encoded == body
    assert json.loads(encoded) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", [dt.datetime(2026, 1, 1), {1, 2}, object()])
def test_codecs_refuse_the_same_objects(codec: _json.Codec, value: Any) -> None:
    with pytest.raises(TypeError):
        codec.dumps({"x": value})


def test_dumps_of_a_nan_is_the_one_documented_difference() -> None:
    # No request builder hands a NaN over (validate() refuses it); the codecs alone differ.
    with pytest.raises(ValueError):
        _json.get("json").dumps({"x": math.nan})
    assert _json.get("orjson").dumps({"x": math.nan}) == b'{"x":null}'
    with pytest.raises(ValueError, match="JSON cannot carry"):
        CreateSessionRequest("p", extra={"x": math.nan}).validate()


# -- what a create body may carry is checked before the codec sees it ------------------------

@pytest.mark.parametrize("extra, where", [
    ({"x": math.nan}, r"extra\['x'\] is nan"),
    ({"x": [1, math.inf]}, r"extra\['x'\]\[1\]"),
    ({"x": {"y": -math.inf}}, r"extra\['x'\]\['y'\]"),
    ({"x": dt.datetime(2026, 1, 1)}, "datetime"),
    ({"x": {1, 2}}, "set"),
    ({"x": {3: "a"}}, "not a string: 3"),
    ({"x": b"raw"}, "bytes"),
    ({"x": [types.MappingProxyType({"a": 1})]}, r"extra\['x'\]\[0\] is a mappingproxy"),
    ({"x": collections.UserDict(a=1)}, "UserDict"),
])
def test_create_refuses_extra_that_is_not_json_data(extra: dict[str, Any], where: str) -> None:
    with pytest.raises(ValueError, match=where):
        CreateSessionRequest("p", extra=extra).validate()


def test_create_refuses_extra_nested_too_deep() -> None:
    value: Any = 1
    for _ in range(127):
        value = [value]
    CreateSessionRequest("p", extra={"x": value}).validate()  # 128 levels with extra itself
    with pytest.raises(ValueError, match="deeper than 128"):
        CreateSessionRequest("p", extra={"x": [value]}).validate()


def test_create_accepts_any_mapping_as_extra_itself() -> None:
    request = CreateSessionRequest("p", extra=types.MappingProxyType({"brand_new": "fast"}))
    request.validate()
    for name in CODECS:
        assert _json.get(name).dumps(request.to_body()) == b'{"prompt":"p","brand_new":"fast"}'


def test_create_accepts_plain_json_data_in_extra() -> None:
    CreateSessionRequest("p", extra={
        "schema": {"type": "object", "properties": {"a": {"type": ["string", "null"]}}},
        "ratio": 0.5, "n": 2**70, "flag": False, "none": None, "pair": ("a", 1),
    }).validate()


# -- end to end, on the fake server -----------------------------------------------------------

async def test_client_round_trips_on_the_fake_server(codec: _json.Codec) -> None:
    schema = {"type": "object", "properties": {"done": {"type": "boolean"}}, "ratio": 0.25}
    async with FakeDevinServer() as server, DevinClient(
        server.api_key, org_id=server.org_id, base_url=server.url, json_codec=codec.name
    ) as client:
        created = await client.sessions.create("Zürich ✓", tags=["t"],
                                               structured_output_schema=schema)
        assert created.tags == ["t"] and created.client_token is not None
        body = server.create_request(created.session_id)
        assert body["prompt"] == "Zürich ✓" and body["structured_output_schema"] == schema
        fetched = await client.sessions.get(created.session_id)
        assert fetched.session_id == created.session_id
        listed = [s async for s in client.sessions.list(tags=["t"])]
        assert [s.session_id for s in listed] == [created.session_id]
        await client.sessions.send_message(created.session_id, "naïve ✓")
        with pytest.raises(NotFoundError):
            await client.sessions.get("devin-missing")
        with pytest.raises(ValueError, match="JSON cannot carry"):
            await client.sessions.create("p", extra_body={"ratio": math.nan})
    assert server.session_count == 1
