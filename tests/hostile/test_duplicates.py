"""Class 5: no duplicate sessions when the list index lags and create answers get lost.

The org acts on every create, then loses some answers (a close, a reset or a 502 *after* the
session was made, seeded random); its list endpoint, which the SDK uses to look a lost create's
token up, serves an index that lags writes. Whatever the SDK does (look again, wait, terminate a
duplicate it made, keeping the oldest), the org must end with exactly one live session per
prompt, and every create that returned a session returned that one.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from devin_async import CreateUnconfirmedError, RetryPolicy, Session

from .org import Org
from .servers import Answer, Drop, RawServer, Reply, Reset, Seen, client_for

LOSSES: dict[str, Reply] = {
    "close": Drop(),
    "reset": Reset(),
    "502": Answer(502, {"detail": "Bad Gateway"}),
}
RETRY = RetryPolicy(initial_backoff=0.05, max_backoff=0.2, deadline=2.0)


def loser(mode: str, rate: float, seed: int) -> Callable[[Seen], Reply | None]:
    rng = random.Random(seed)

    def lose(_seen: Seen) -> Reply | None:
        return LOSSES[mode] if rng.random() < rate else None

    return lose


async def create_all(client: object, prompts: list[str], how: str) -> list[object]:
    sessions = client.sessions  # type: ignore[attr-defined]
    if how == "gather":
        return list(await asyncio.gather(*(sessions.create(p) for p in prompts),
                                         return_exceptions=True))
    results: list[object] = [None] * len(prompts)
    async with sessions.create_many([{"prompt": p} for p in prompts], concurrency=8) as batch:
        async for result in batch:
            results[result.index] = result.session if result.error is None else result.error
    return results


@pytest.mark.parametrize(
    ("loss", "lag", "how", "n", "seed"),
    [
        ("close", 0.0, "gather", 30, 8),  # control: an index that keeps up
        ("close", 0.3, "gather", 30, 1),
        ("close", 1.0, "gather", 20, 2),
        ("reset", 0.3, "gather", 30, 3),
        ("502", 0.3, "gather", 30, 4),
        ("close", 0.3, "create_many", 30, 5),
        ("reset", 1.0, "create_many", 20, 6),
        ("502", 1.0, "create_many", 20, 7),
    ],
)
async def test_one_live_session_per_prompt_when_the_index_lags(
    loss: str, lag: float, how: str, n: int, seed: int
) -> None:
    org = Org(index_lag=lag, lose=loser(loss, 0.25, seed))
    prompts = [f"task number {i}" for i in range(n)]
    async with RawServer(org) as server, client_for(server, retry=RETRY) as client:
        async with asyncio.timeout(3.5):
            results = await create_all(client, prompts, how)
    assert org.lost > 0, "the seeded faults must have fired"
    live = org.live()
    extra = [r.prompt for r in live]
    count = len(live)
    assert count == n, (
        f"{count} live sessions for {n} prompts; duplicated: "
        f"{sorted({p for p in extra if extra.count(p) > 1})}")
    assert org.prompts(live) == sorted(prompts)
    for prompt, result in zip(prompts, results, strict=True):
        if isinstance(result, Session):
            record = org.records[result.session_id]
            assert record.prompt == prompt
            assert not record.terminated, "the SDK returned a session it terminated"
        else:
            assert isinstance(result, CreateUnconfirmedError), repr(result)
