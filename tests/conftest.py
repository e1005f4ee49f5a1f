"""Shared test setup: the JSON codec, the aioresponses shim, and the suite's fixtures.

Fixtures: `clock` (one `FakeClock`), `org` (a `StubOrg`: a scripted org implementing
`Transport`), `client` (a DevinClient on `org` and `clock`), `server` (a running
`FakeDevinServer` on `clock`), `served` (a DevinClient bound to `server`, on `clock`) and
`cli_clock` (the CLI's clients, run in-process through `amain`, get `clock`: their poll and
retry sleeps move it at once; a FakeDevinServer given `clock=clock` then lives on it too).

The JSON codec: the suite runs on the standard library's (what a plain install uses) unless
DEVIN_ASYNC_JSON says otherwise; `tests/test_codec.py` runs its cases on both codecs.

Child interpreters (the CLI, README examples, crash and plugin runs): where this environment
forbids writing bytecode next to the sources (PYTHONDONTWRITEBYTECODE), each child would compile
the whole package again (~0.5 s each); for the session they share a bytecode cache in a temporary
directory instead (PYTHONPYCACHEPREFIX), so the tree stays free of .pyc files either way.

aioresponses 0.7.9 builds `ClientResponse` without the `stream_writer` argument that aiohttp 3.14
made required (aioresponses issue #289). We keep `aiohttp>=3.9` for users and give aioresponses a
response class that fills the argument in, only when the installed aiohttp needs it.
"""

from __future__ import annotations

import inspect
import os
import sys
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioresponses.core
import pytest
from aiohttp import ClientResponse

from devin_async import DevinClient, PollPolicy
from devin_async.testing import FakeDevinServer

from .helpers import FakeClock, StubOrg, stub_client

if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:

    class _CompatClientResponse(ClientResponse):
        def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
            # A request that is "already sent" only reads output_size from its writer.
            kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
            super().__init__(method, url, **kwargs)

    aioresponses.core.ClientResponse = _CompatClientResponse  # type: ignore[misc]


# The default codec is chosen once, on first use: make it the stdlib's unless asked otherwise.
os.environ.setdefault("DEVIN_ASYNC_JSON", "json")


@pytest.fixture(scope="session", autouse=True)
def child_bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if not sys.dont_write_bytecode or "PYTHONPYCACHEPREFIX" in os.environ:
        yield
        return
    mp = pytest.MonkeyPatch()
    mp.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    mp.setenv("PYTHONPYCACHEPREFIX", str(tmp_path_factory.mktemp("pycache")))
    try:
        yield
    finally:
        mp.undo()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def org(clock: FakeClock) -> StubOrg:
    return StubOrg(clock)


@pytest.fixture
async def client(clock: FakeClock, org: StubOrg) -> AsyncIterator[DevinClient]:
    async with stub_client(clock, org) as c:
        yield c


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(clock=clock, seed=7) as s:
        yield s


@pytest.fixture
async def served(clock: FakeClock, server: FakeDevinServer) -> AsyncIterator[DevinClient]:
    policy = PollPolicy(initial=1.0, max=4.0, multiplier=2.0, jitter=0.1)
    async with DevinClient(server.api_key, org_id=server.org_id, base_url=server.url,
                           poll=policy, clock=clock, sleep=clock.sleep) as c:
        yield c


@pytest.fixture
def cli_clock(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    from devin_async._cli import _commands

    make_client = _commands.make_client  # every command gets its client here, at call time
    monkeypatch.setattr(_commands, "make_client", lambda args, **kw: make_client(
        args, **{"clock": clock, "sleep": clock.sleep, **kw}))
    return clock
