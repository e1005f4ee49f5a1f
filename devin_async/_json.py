"""The JSON codec: the standard library's, or orjson when it is installed (`devin-async[speedups]`).

Why optional orjson: JSON is the largest single cost of a request the SDK controls. Decoding one
session's answer (690 bytes) takes 60k instructions with the stdlib and 22k with orjson; encoding a
create body 40k and 5k (`perf stat`; `benchmarks`). A 200-item list page saves about 5M.

What a user can observe does not depend on the codec, because what would tell them apart is
settled here or before a request is built:
- decoding: both refuse NaN, Infinity and numbers that overflow to infinity (`1e400`; the stdlib
  alone would read them), and both accept a UTF-8 byte-order mark (orjson alone would refuse it).
- encoding: request builders hand over only plain JSON data (`CreateSessionRequest.validate`
  refuses anything else in `extra`, NaN included); what orjson refuses to encode (a non-string
  key, an integer beyond 64 bits) is encoded by the stdlib instead.
Left different, on inputs no real answer has: an integer beyond 64 bits in a response (orjson
reads it as a float), a lone surrogate escape (orjson refuses it), nesting between about 990 and
1024 levels (only orjson reads it), the wording of the decoder's error message, and `dumps` of a
NaN that skipped validation (orjson writes null, the stdlib raises ValueError).

The default codec is chosen once, the first time a client needs it: orjson when installed, unless
`DEVIN_ASYNC_JSON=json`. Nothing rebinds it afterwards; a client built with
`DevinClient(json_codec="json")` (or "orjson") uses that codec instead, for itself only.
"""

from __future__ import annotations

import json
import json.scanner
import math
import os
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["CODECS", "Codec", "codec", "default", "get"]

_BOM = b"\xef\xbb\xbf"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} overflows")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


#: The C scanner that `decode` wraps (typeshed's stub wants a scanner, not the decoder it reads).
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    _DECODER)  # type: ignore[arg-type]


def _std_loads(data: bytes) -> Any:
    # json.loads(bytes) also sniffs UTF-16/32; a JSON API speaks UTF-8 (RFC 8259), BOM or not.
    text = data.decode("utf-8-sig")
    try:  # the scanner straight away: `decode` adds two regex matches and two calls
        value, end = _scan(text, 0)
    except StopIteration:  # leading whitespace, or not JSON: `decode` tells which
        end = -1
    if end == len(text):
        return value
    return _DECODER.decode(text)  # whitespace around it, extra data, or the error to raise


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


class Codec(NamedTuple):
    """A JSON codec: its name, `loads(bytes) -> data` and `dumps(data) -> bytes`."""

    name: str
    #: Decode a response body; ValueError or UnicodeDecodeError if it is not JSON.
    loads: Callable[[bytes], Any]
    #: Encode request data to compact JSON bytes; TypeError or ValueError if it is not JSON.
    dumps: Callable[[Any], bytes]


CODECS: dict[str, Codec] = {"json": Codec("json", _std_loads, _std_dumps)}
if (_fast := _orjson_codec()) is not None:
    CODECS["orjson"] = Codec("orjson", *_fast)

_default: Codec | None = None


def _default_name() -> str:
    asked = os.environ.get("DEVIN_ASYNC_JSON", "").strip().lower()
    if asked in ("json", "stdlib"):
        return "json"
    if asked not in ("", "orjson"):
        warnings.warn(f"DEVIN_ASYNC_JSON={asked!r} is not 'json' or 'orjson'; ignored",
                      RuntimeWarning, stacklevel=3)
    return "orjson" if "orjson" in CODECS else "json"


def default() -> Codec:
    """Return the process's default codec (chosen on first use, then fixed)."""
    global _default
    if _default is None:
        _default = CODECS[_default_name()]
    return _default


def get(name: str | None = None) -> Codec:
    """Return the codec called `name` ("json" or "orjson"), or the default for None.

    Raises:
        ValueError: no such codec is installed.
    """
    if name is None:
        return default()
    if name not in CODECS:
        raise ValueError(f"JSON codec {name!r} is not available; have: {', '.join(CODECS)}")
    return CODECS[name]


def codec() -> str:
    """Return the name of the default codec."""
    return default().name
