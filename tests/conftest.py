"""Shared test setup.

The JSON codec: the suite runs on the standard library's (what a plain install uses) unless
DEVIN_ASYNC_JSON says otherwise; `tests/test_codec.py` runs its cases on both codecs.

aioresponses 0.7.9 builds `ClientResponse` without the `stream_writer` argument that aiohttp 3.14
made required (aioresponses issue #289). We keep `aiohttp>=3.9` for users and give aioresponses a
response class that fills the argument in, only when the installed aiohttp needs it.
"""

from __future__ import annotations

import inspect
import os
import types
from typing import Any

import aioresponses.core
from aiohttp import ClientResponse

if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:

    class _CompatClientResponse(ClientResponse):
        def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
            # A request that is "already sent" only reads output_size from its writer.
            kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
            super().__init__(method, url, **kwargs)

    aioresponses.core.ClientResponse = _CompatClientResponse  # type: ignore[misc]


# The default codec is chosen once, on first use: make it the stdlib's unless asked otherwise.
os.environ.setdefault("DEVIN_ASYNC_JSON", "json")
