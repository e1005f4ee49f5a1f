"""Class 2: a Retry-After longer than `RetryPolicy.max_retry_after` means "come back later".

The call that got it fails fast with the hint in `.retry_after`; the client's other requests,
sent right after, are not held (they reach the server within a fraction of a second). A hint
under the cap pauses the others at most that long, and never past their own deadline.
"""

from __future__ import annotations

import asyncio

import pytest

from devin_async import InternalServerError, RateLimitError, RetryPolicy

from .servers import PREFIX, Answer, RawServer, Seen, client_for, session_json

THROTTLED = f"{PREFIX}/sessions/devin-throttled"


class Throttle:
    """Answer `status` with `headers` to the throttled session (the first `times` gets)."""

    def __init__(self, status: int, headers: tuple[tuple[str, str], ...],
                 times: int = 10**9) -> None:
        self.status = status
        self.headers = headers
        self.times = times
        self.throttled = asyncio.Event()

    def __call__(self, seen: Seen) -> Answer:
        sid = seen.path.rsplit("/", 1)[-1]
        if seen.path == THROTTLED and self.times > 0:
            self.times -= 1
            self.throttled.set()
            return Answer(self.status, {"detail": "slow down"}, headers=self.headers)
        return Answer(200, session_json(sid))


def arrivals(seen: list[Seen], sent: float) -> list[float]:
    """Return how long after `sent` each request for another session reached the server."""
    return [s.at - sent for s in seen if s.path != THROTTLED and s.at >= sent]


@pytest.mark.parametrize(
    ("status", "header", "error"),
    [
        (429, ("Retry-After", "30"), RateLimitError),
        (429, ("retry-after-ms", "30000"), RateLimitError),
        (503, ("Retry-After", "30"), InternalServerError),
        (503, ("retry-after-ms", "30000"), InternalServerError),
    ],
)
async def test_a_hint_over_the_cap_fails_fast_and_holds_no_one(
    status: int, header: tuple[str, str], error: type[Exception]
) -> None:
    loop = asyncio.get_running_loop()
    retry = RetryPolicy(max_retry_after=1.0)
    async with RawServer(Throttle(status, (header,))) as server, \
            client_for(server, retry=retry) as client:
        async with asyncio.timeout(2.0):
            start = loop.time()
            with pytest.raises(error) as info:
                await client.sessions.get("devin-throttled")
            assert loop.time() - start < 0.3, "the over-cap hint was waited for"
            assert info.value.retry_after == 30  # type: ignore[attr-defined]
            sent = loop.time()
            others = await asyncio.gather(
                *(client.sessions.get(f"devin-other{i}") for i in range(5)))
    assert [s.session_id for s in others] == [f"devin-other{i}" for i in range(5)]
    late = arrivals(server.seen, sent)
    assert len(late) == 5
    assert max(late) < 0.2, f"other requests were held {max(late):.2f} s by a hint over the cap"
    assert len(server.requests(path=THROTTLED)) == 1, "an over-cap hint is not retried"


@pytest.mark.parametrize("status", [429, 503])
async def test_a_hint_under_the_cap_pauses_others_at_most_that_long(status: int) -> None:
    loop = asyncio.get_running_loop()
    retry = RetryPolicy(max_retry_after=1.0)
    throttle = Throttle(status, (("Retry-After", "0.3"),), times=1)
    async with RawServer(throttle) as server, client_for(server, retry=retry) as client:
        async with asyncio.timeout(2.0):
            first = asyncio.create_task(client.sessions.get("devin-throttled"))
            await throttle.throttled.wait()
            await asyncio.sleep(0.02)  # the 429/503 is in
            sent = loop.time()
            others = await asyncio.gather(
                *(client.sessions.get(f"devin-other{i}") for i in range(5)))
            throttled = await first
    assert throttled.session_id == "devin-throttled"
    assert len(others) == 5
    tries = server.requests(path=THROTTLED)
    assert len(tries) == 2
    assert tries[1].at - tries[0].at >= 0.28, "the hint under the cap was honoured"
    late = arrivals(server.seen, sent)
    assert max(late) <= 0.3 + 0.1, f"others were held {max(late):.2f} s for a 0.3 s hint"


@pytest.mark.parametrize("status", [429, 503])
async def test_no_request_is_held_past_its_own_deadline(status: int) -> None:
    loop = asyncio.get_running_loop()
    retry = RetryPolicy(max_retry_after=5.0, deadline=0.5)
    throttle = Throttle(status, (("Retry-After", "3"),))
    async with RawServer(throttle) as server, client_for(server, retry=retry) as client:
        async with asyncio.timeout(1.2):
            start = loop.time()
            with pytest.raises((RateLimitError, InternalServerError)):
                await client.sessions.get("devin-throttled")
            assert loop.time() - start < 0.5 + 0.25, "a 3 s hint outlived a 0.5 s deadline"

            async def timed(i: int) -> float:
                begun = loop.time()
                try:
                    await client.sessions.get(f"devin-other{i}")
                except Exception:
                    pass  # failing is allowed; waiting past the deadline is not
                return loop.time() - begun

            took = await asyncio.gather(*(timed(i) for i in range(5)))
    assert max(took) < 0.5 + 0.25, f"a call was held {max(took):.2f} s past its 0.5 s deadline"
    assert server.requests(path=THROTTLED)
