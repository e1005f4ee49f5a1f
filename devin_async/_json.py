"""The JSON codec: the standard library's, or orjson when it is installed (`devin-async[speedups]`).

Why optional orjson: JSON is the largest single cost of a request the SDK controls. Decoding one
session's answer takes 44k instructions with `json.loads` and 14k with `orjson.loads`; encoding
a create body 40k with `json` and 5k with `orjson` (`perf stat`, see `benchmarks`). A 200-item
list page saves about 6M instructions. Nothing else changes: both codecs accept and refuse the
same documents, because what could tell them apart is settled here or before the request is built:

- decoding: both refuse NaN and Infinity (not JSON; the stdlib would accept them) and both accept
  a UTF-8 byte-order mark (orjson alone would refuse it). Left different: an integer beyond 64
  bits (orjson reads it as a float) and a lone surrogate escape (orjson refuses it).
- encoding: request builders only hand over JSON data (`CreateSessionRequest.validate` refuses
  anything else in `extra`); whatever orjson refuses to encode (a non-string key, an integer beyond
  64 bits) is encoded by the stdlib instead, so the result never depends on the codec.

`DEVIN_ASYNC_JSON=json` keeps the stdlib's even with orjson installed; `use()` switches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

__all__ = ["CODECS", "codec", "dumps", "loads", "use"]

_BOM = b"\xef\xbb\xbf"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _std_loads(data: bytes) -> Any:
    # json.loads(bytes) also sniffs UTF-16/32; a JSON API speaks UTF-8 (RFC 8259), BOM or not.
    return _DECODER.decode(data.decode("utf-8-sig"))


def _std_dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode()


def _orjson_codec() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]] | None:
    try:
        import orjson
    except ImportError:
        return None
    fast_loads = orjson.loads
    fast_dumps = orjson.dumps
    # Types orjson would encode but the stdlib refuses go back to the stdlib, which refuses them.
    options = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
               | orjson.OPT_PASSTHROUGH_SUBCLASS)

    def orjson_loads(data: bytes) -> Any:
        if data[:3] == _BOM:
            data = data[3:]
        return fast_loads(data)

    def orjson_dumps(obj: Any) -> bytes:
        try:
            return fast_dumps(obj, option=options)
        except TypeError:  # a non-string key, an int beyond 64 bits, a passed-through type
            return _std_dumps(obj)

    return orjson_loads, orjson_dumps


CODECS: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes]]] = {
    "json": (_std_loads, _std_dumps),
}
if (_fast := _orjson_codec()) is not None:
    CODECS["orjson"] = _fast

#: Decode a response body to Python data; ValueError or UnicodeDecodeError if it is not JSON.
loads: Callable[[bytes], Any]
#: Encode request data to compact JSON bytes; TypeError or ValueError if it is not JSON data.
dumps: Callable[[Any], bytes]
_name = ""


def use(name: str) -> None:
    """Switch the codec: "json" or "orjson" (ValueError if it is not installed)."""
    global loads, dumps, _name
    if name not in CODECS:
        raise ValueError(f"JSON codec {name!r} is not available; have: {', '.join(CODECS)}")
    loads, dumps = CODECS[name]
    _name = name


def codec() -> str:
    """Return the name of the codec in use."""
    return _name


use("json" if os.environ.get("DEVIN_ASYNC_JSON") == "json" or "orjson" not in CODECS else "orjson")
