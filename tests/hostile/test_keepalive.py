"""Class 8: keep-alive connections the server closed a millisecond after answering.

The org closes every connection ~1 ms after each answer, without `Connection: close`, so a
pooled connection is often dead when the client reuses it. With the client's defaults, every
create and get must still succeed, and no create may make two sessions.

The client's backoff and a create's settle window (3 s of token look-ups after an ambiguous
failure, 3 s more before the duplicate check) run on a `FakeClock`: the requests are real, the
waits between them are not (6 s less per run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from devin_async import DevinError, Session

from ..helpers import FakeClock
from .org import Org
from .servers import RawServer, client_for


async def attempt(call: Awaitable[Session]) -> Session | DevinError:
    try:
        return await call
    except DevinError as exc:
        return exc


@pytest.mark.parametrize(("how", "n"), [("sequential", 100), ("concurrent", 20)])
async def test_creates_and_gets_survive_connections_closed_after_answering(
    how: str, n: int
) -> None:
    org = Org(close_after=0.001)
    prompts = [f"keep-alive {i}" for i in range(n)]
    retries: list[object] = []
    created: list[Session | DevinError] = []
    got: list[Session | DevinError] = []
    clock = FakeClock()
    async with RawServer(org) as server, client_for(server, on_retry=retries.append, clock=clock,
                                                    sleep=clock.sleep) as client:
        try:
            async with asyncio.timeout(8.0):
                if how == "sequential":
                    for p in prompts:
                        created.append(await attempt(client.sessions.create(p)))
                else:
                    created += await asyncio.gather(*(attempt(client.sessions.create(p))
                                                      for p in prompts))
                ids = [s.session_id for s in created if isinstance(s, Session)]
                if how == "sequential":
                    for sid in ids:
                        got.append(await attempt(client.sessions.get(sid)))
                else:
                    got += await asyncio.gather(*(attempt(client.sessions.get(sid))
                                                  for sid in ids))
        except TimeoutError:
            pytest.fail(f"8 s passed with {len(created)} of {n} creates and {len(got)} gets "
                        f"done, after {len(retries)} retries (first: {retries[:1]!r})")
    failed = [r for r in created + got if not isinstance(r, Session)]
    assert not failed, f"{len(failed)} calls failed, the first with {failed[0]!r}"
    assert [s.session_id for s in got] == ids  # type: ignore[union-attr]
    assert len(org.records) == n, f"{len(org.records)} sessions for {n} creates"
    assert org.prompts(list(org.records.values())) == sorted(prompts)
    assert server.connections > 1, "the server did close connections"
