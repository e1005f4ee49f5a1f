"""create_many(batch_key=): resume after completion or interruption, mismatches, tag budget, lag."""

from __future__ import annotations

import asyncio
import collections
import math
from typing import Any

import pytest

from devin_async import BatchResult, CreateSessionRequest, DevinClient, PermissionDeniedError
from devin_async._batch import BatchMismatchError, batch_tag, prompt_tag
from devin_async._create import token_for_key

from .batch_support import Clock, StubApi, requests_of

TOKEN = "devin-async-token:"


async def _run(client: DevinClient, requests: Any, key: str | None = "b1", *,
               concurrency: int = 8) -> list[BatchResult]:
    async with client.sessions.create_many(requests, concurrency=concurrency,
                                           batch_key=key) as results:
        return sorted([r async for r in results], key=lambda r: r.index)


def _one_live_per_index(api: StubApi, key: str, n: int) -> None:
    tokens = api.tokens()
    assert sorted(tokens.values()) == [1] * n
    assert set(tokens) == {TOKEN + token_for_key(f"{key}/{i}") for i in range(n)}


@pytest.mark.parametrize("n", [1, 7, 450])
async def test_a_rerun_after_completion_creates_nothing(n: int) -> None:
    api = StubApi(Clock())
    async with api.client() as client:
        first = await _run(client, requests_of(n))
        api.counts.clear()
        again = await _run(client, requests_of(n))
    assert [r.existing for r in first] == [False] * n
    assert [r.existing for r in again] == [True] * n
    assert [r.session.session_id for r in again if r.session] == \
        [r.session.session_id for r in first if r.session]
    # one paged listing before, one after; no look-up, no create
    assert api.counts == {"listing": 2 * math.ceil(n / 200)}
    _one_live_per_index(api, "b1", n)


async def test_every_session_carries_one_batch_tag_and_its_prompt_tag() -> None:
    api = StubApi(Clock())
    async with api.client() as client:
        await _run(client, requests_of(3))
    for i, session in enumerate(api.sessions.values()):
        sdk = sorted(t for t in session["tags"] if t.startswith("devin-async-"))
        assert sdk == sorted([batch_tag("b1"), prompt_tag(f"task {i}"),
                              TOKEN + token_for_key(f"b1/{i}")])


@pytest.mark.parametrize("how", ["aclose", "break"])
async def test_interrupted_then_rerun_makes_exactly_n(how: str) -> None:
    n = 30
    api = StubApi(Clock())
    api.gate, api.hold_from = asyncio.Event(), 11  # creates 11.. act, their answers wait
    async with api.client() as client:
        seen: list[BatchResult] = []
        if how == "aclose":
            results = client.sessions.create_many(requests_of(n), concurrency=4, batch_key="b1")
            seen = [await anext(results) for _ in range(10)]
            await api.creates_reach(14)
            await results.aclose()
        else:
            async with client.sessions.create_many(requests_of(n), concurrency=4,
                                                   batch_key="b1") as results:
                async for result in results:
                    seen.append(result)
                    if len(seen) == 10:
                        await api.creates_reach(14)
                        break
        cancelled = results.cancelled
        assert len(cancelled) == 4
        assert [c.client_token for c in cancelled] == \
            [token_for_key(f"b1/{c.index}") for c in cancelled]
        assert len(api.sessions) == 14  # the 4 cancelled creates did happen
        api.gate.set()
        rerun = await _run(client, requests_of(n))
    assert len(seen) == 10 and all(r.ok for r in rerun)
    existing = {r.index for r in rerun if r.existing}
    assert existing == {r.index for r in seen} | {c.index for c in cancelled}
    assert len(api.sessions) == n
    _one_live_per_index(api, "b1", n)


async def test_stop_reports_what_is_in_flight_and_a_rerun_makes_the_rest() -> None:
    n = 20
    api = StubApi(Clock())
    async with api.client() as client:
        async with client.sessions.create_many(requests_of(n), concurrency=3,
                                               batch_key="b1") as results:
            got = [await anext(results)]
            results.stop()
            got += [r async for r in results]
        assert results.cancelled == []
        assert all(r.ok for r in got) and len(api.sessions) == len(got) < n
        assert api.order[-1] == "listing"  # the final check ran
        rerun = await _run(client, requests_of(n))
    assert sum(r.existing for r in rerun) == len(got)
    _one_live_per_index(api, "b1", n)


async def test_a_failed_listing_fails_the_batch_before_anything_is_sent() -> None:
    api = StubApi(Clock())
    api.listing_statuses = [403]
    async with api.client() as client:
        with pytest.raises(PermissionDeniedError):
            await _run(client, requests_of(3))
    assert api.order == ["listing"]


async def test_a_failed_final_check_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    api = StubApi(Clock())
    async with api.client() as client:
        results = client.sessions.create_many(requests_of(3), batch_key="b1")
        first = await anext(results)
        api.listing_statuses = [403]
        rest = [r async for r in results]
    assert first.ok and all(r.ok for r in rest) and len(rest) == 2
    assert "final duplicate check failed" in caplog.text


async def test_cancelled_without_batch_key_names_the_token_of_the_session() -> None:
    api = StubApi(Clock())
    api.gate = asyncio.Event()
    async with api.client() as client, client.sessions.create_many(
            requests_of(3), concurrency=3) as results:
        waiting = asyncio.ensure_future(anext(results))
        await api.creates_reach(3)
        waiting.cancel()  # cancelling a pending __anext__ closes the batch
        with pytest.raises(asyncio.CancelledError):
            await waiting
    tokens = {c.client_token for c in results.cancelled}
    assert [c.index for c in results.cancelled] == [0, 1, 2]
    assert tokens == {t.removeprefix(TOKEN) for t in api.tokens()}


@pytest.mark.parametrize(("change", "problem"), [
    ({"title": "another title"}, "title"),
    ({"prompt": "another prompt"}, "prompt"),
])
async def test_a_changed_request_i_is_an_error_for_i(change: dict[str, str], problem: str) -> None:
    api = StubApi(Clock())
    async with api.client() as client:
        await _run(client, requests_of(5))
        changed = requests_of(5)
        changed[3] = {**changed[3], **change}
        rerun = await _run(client, changed)
    error = rerun[3].error
    assert isinstance(error, BatchMismatchError) and isinstance(error, ValueError)
    assert problem in str(error) and error.index == 3
    assert error.session.session_id == "devin-000003"
    assert [r.existing for r in rerun if r.index != 3] == [True] * 4
    assert len(api.sessions) == 5


async def test_an_untitled_request_matches_on_its_prompt_alone() -> None:
    api = StubApi(Clock())
    untitled = [{"prompt": f"p{i}"} for i in range(3)]
    async with api.client() as client:
        await _run(client, untitled)
        rerun = await _run(client, [{"prompt": f"p{i}", "title": "now titled"} for i in range(3)])
    assert all(r.existing for r in rerun)


@pytest.mark.parametrize(("user_tags", "ok"), [(47, True), (48, False), (50, False)])
async def test_the_tag_budget_counts_the_sdk_tags(user_tags: int, ok: bool) -> None:
    api = StubApi(Clock())
    tags = [f"t{i}" for i in range(user_tags)]
    async with api.client() as client:
        results = await _run(client, [{"prompt": "x", "tags": tags}, {"prompt": "y"}])
    assert results[1].ok
    assert results[0].ok is ok
    if not ok:
        assert isinstance(results[0].error, ValueError)
        assert "at most 47" in str(results[0].error)
    assert api.counts["create"] == (2 if ok else 1)


async def test_a_request_with_its_own_key_keeps_it() -> None:
    api = StubApi(Clock())
    async with api.client() as client:
        own = await client.sessions.create("mine", idempotency_key="own")
        results = await _run(client, [CreateSessionRequest("mine", idempotency_key="own"),
                                      CreateSessionRequest("other")])
    assert results[0].existing and results[0].session == own
    assert results[1].session is not None
    assert results[1].session.client_token == token_for_key("b1/1")


async def test_a_fresh_batch_sends_one_listing_then_only_creates() -> None:
    api = StubApi(Clock())
    async with api.client() as client:
        await _run(client, requests_of(5), concurrency=1)
    assert api.order == ["listing", *["create"] * 5, "listing"]


@pytest.mark.parametrize("bad", ["", "   ", 5, "k" * 201])
def test_a_bad_batch_key_is_a_value_error(bad: Any) -> None:
    api = StubApi(Clock())
    client = api.client()
    with pytest.raises(ValueError, match="batch_key"):
        client.sessions.create_many(requests_of(1), batch_key=bad)


async def test_under_index_lag_a_rerun_leaves_no_surviving_duplicate() -> None:
    n = 40
    clock = Clock()
    api = StubApi(clock, lag=1.0)
    async with api.client() as client:
        results = client.sessions.create_many(requests_of(n), concurrency=4, batch_key="b1")
        [await anext(results) for _ in range(15)]
        await results.aclose()  # a crash: the rerun comes at once, the index has not caught up
        made_before = len(api.sessions)
        async with client.sessions.create_many(requests_of(n), concurrency=4,
                                               batch_key="b1") as rerun:
            reported = {r.index: r.session async for r in rerun if r.session}
            superseded = rerun.superseded
    assert made_before >= 15
    assert len(api.sessions) == n + made_before  # the lagging index hid them: recreated ...
    _one_live_per_index(api, "b1", n)  # ... and the newer copies terminated at the end
    assert len(superseded) == made_before
    for index, kept in superseded.items():
        assert kept.client_token == token_for_key(f"b1/{index}")
        assert api.sessions[kept.session_id]["status"] != "exit"
        assert api.sessions[reported[index].session_id]["status"] == "exit"
    assert clock.slept >= client.engine.retry.settle  # waited for the index before checking


@pytest.mark.parametrize("lag", [0.0, 1.0])
async def test_two_runs_of_one_batch_at_once_leave_no_surviving_duplicate(lag: float) -> None:
    n = 60
    api = StubApi(Clock(), lag=lag)
    api.yields = 3  # the two runs race: both look index i up before either created it
    async with api.client() as one, api.client() as two:
        runs = await asyncio.gather(_run(one, requests_of(n), concurrency=5),
                                    _run(two, requests_of(n), concurrency=7))
    assert all(r.ok for run in runs for r in run)
    assert len(api.sessions) > n  # both created some indices ...
    _one_live_per_index(api, "b1", n)  # ... and every duplicate is gone
    for group in _groups(api).values():  # the oldest of each index lives, the rest ended
        assert [api.sessions[sid]["status"] != "exit" for sid in sorted(group)] == \
            [True] + [False] * (len(group) - 1)
    assert collections.Counter(api.order)["terminate"] >= len(api.sessions) - n


def _groups(api: StubApi) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for s in api.sessions.values():
        for t in s["tags"]:
            if t.startswith(TOKEN):
                groups.setdefault(t, []).append(s["session_id"])
    return groups


async def test_a_lost_answer_in_a_batch_is_found_not_resent() -> None:
    api = StubApi(Clock())
    api.lose = {2, 5}
    async with api.client() as client:
        results = await _run(client, requests_of(8), concurrency=2)
    assert all(r.ok for r in results)
    assert len(api.sessions) == 8 and api.counts["create"] == 8
    _one_live_per_index(api, "b1", 8)
