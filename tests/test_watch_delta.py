"""Delta scans: requests per cycle when few, all, or only unwatched sessions change."""

from __future__ import annotations

import math
import time

import pytest

from devin_async import DevinClient, SessionEvent, Watcher

from .watch_support import Clock, Org, make_client

CYCLES = 10


def seed(org: Org, n: int, prefix: str = "devin-w") -> list[str]:
    """`n` running sessions, last updated over the past ten minutes (so stamps are spread)."""
    return [org.add(f"{prefix}{i:05d}", (-(i % 600) - 1.0, "running", "working"))
            for i in range(n)]


def churn(org: Org, ids: list[str], per_cycle: int, cycles: int) -> None:
    """Flip `per_cycle` of `ids` between working and waiting in each of the next `cycles` s."""
    current: dict[str, str] = {}
    for k in range(1, cycles + 1):
        for j in range(per_cycle):
            sid = ids[(k * per_cycle + j) % len(ids)]
            detail = "working" if current.get(sid) == "waiting_for_user" else "waiting_for_user"
            current[sid] = detail
            org.then(sid, "running", detail, at=k - 0.5)


async def run_cycles(client: DevinClient, org: Org, ids: list[str],
                     cycles: int = CYCLES) -> tuple[Watcher, list[SessionEvent]]:
    events: list[SessionEvent] = []
    async with client.watch(ids, until=lambda s: False) as watcher:
        org.cycle = lambda: watcher.stats.cycles
        async for event in watcher:
            if watcher.stats.cycles > cycles:
                break  # the first event of the cycle after: not counted
            events.append(event)
    return watcher, events


def counts(org: Org, cycles: int = CYCLES) -> list[int]:
    per = org.per_cycle()
    return [per[c] for c in range(1, cycles + 1)]


async def test_ten_thousand_watched_ten_changing_cost_at_most_two_requests_a_cycle() -> None:
    clock = Clock()
    org = Org(clock)
    ids = seed(org, 10_000)
    churn(org, ids, 10, CYCLES + 1)
    async with make_client(clock, org) as client:
        watcher, events = await run_cycles(client, org, ids)
    per = counts(org)
    # The first cycle probes for a recent stamp, then reads everything, 200 ids a request.
    assert per[0] == 1 + 50
    assert max(per[1:]) <= 2, per
    assert watcher.stats.delta_cycles >= CYCLES - 1 and watcher.stats.delta_abandoned == 0
    deltas = [q for q in org.listings() if "session_ids" not in q]
    assert deltas and all("updated_after" in q and q["first"] == "200" for q in deltas)
    changed = [e for e in events if e.previous is not None]
    assert len(changed) == 10 * (CYCLES - 1)  # every flip reported, once


async def test_all_changing_still_costs_one_request_per_200() -> None:
    clock = Clock()
    org = Org(clock)
    ids = seed(org, 2_000)
    churn(org, ids, 2_000, CYCLES + 1)
    async with make_client(clock, org) as client:
        watcher, events = await run_cycles(client, org, ids)
    per = counts(org)
    chunks = math.ceil(2_000 / 200)
    # At most one delta scan is tried (and abandoned within budget); then chunked reads only.
    assert watcher.stats.delta_abandoned <= 1
    assert sum(per) <= 1 + CYCLES * chunks + (chunks - 1), per
    assert all(n == chunks for n in per[3:]), per
    assert len([e for e in events if e.previous is not None]) == 2_000 * (CYCLES - 1)


async def test_back_to_chunked_reads_when_most_sessions_change_then_delta_again() -> None:
    clock = Clock()
    org = Org(clock)
    ids = seed(org, 2_000)
    churn(org, ids, 5, 6)  # quiet first ...
    for k in range(7, 13):  # ... then everything changes each cycle ...
        for sid in ids:
            org.then(sid, "running", "waiting_for_user" if k % 2 else "working", at=k - 0.5)
    for k in range(13, 41):  # ... then quiet again
        org.then(ids[k], "running", "finished", at=k - 0.5)
    async with make_client(clock, org) as client:
        watcher, _ = await run_cycles(client, org, ids, cycles=40)
    per = counts(org, 40)
    assert max(per[1:6]) == 1, per  # delta scans: one request
    assert all(n == 10 for n in per[8:13]), per  # chunked while everything changes
    # Quiet again: the watermark's margin (10 s, here 10 cycles) still holds the storm for a
    # while, then a delta scan is cheaper again.
    assert per[-10:] == [1] * 10, per
    assert watcher.stats.delta_abandoned == 1


async def test_a_noisy_org_does_not_make_watching_ten_sessions_costly() -> None:
    clock = Clock()
    org = Org(clock)
    noise = seed(org, 5_000, prefix="devin-n")
    churn(org, noise, 5_000, CYCLES + 1)  # thousands of unwatched sessions change each cycle
    ids = [org.add(f"devin-w{i}", (0, "running", "working")) for i in range(10)]
    churn(org, ids, 2, CYCLES + 1)
    async with make_client(clock, org) as client:
        watcher, events = await run_cycles(client, org, ids)
    # One chunked read of the ten a cycle: nothing beats it (no probe for a small watch).
    assert counts(org) == [1] * CYCLES
    assert watcher.stats.delta_cycles == 0
    assert {e.session.session_id for e in events} == set(ids)


async def test_a_noisy_org_costs_a_bounded_overhead_for_a_thousand_watched() -> None:
    clock = Clock()
    org = Org(clock)
    noise = seed(org, 4_000, prefix="devin-n")
    ids = seed(org, 1_000)
    churn(org, noise, 4_000, 40)
    churn(org, ids, 3, 40)
    async with make_client(clock, org) as client:
        watcher, _ = await run_cycles(client, org, ids, cycles=40)
    per = counts(org, 40)
    # Tries back off (1, 2, 4, 8, 16 cycles): few abandoned scans of <= 4 pages each.
    assert watcher.stats.delta_abandoned <= 6, watcher.stats
    assert sum(per) <= 1 + 40 * 5 + watcher.stats.delta_abandoned * 4, per
    assert sum(n > 5 for n in per[1:]) + 1 >= watcher.stats.delta_abandoned


async def test_a_page_total_lets_an_over_budget_delta_stop_after_one_page() -> None:
    clock = Clock()
    org = Org(clock)
    org.give_total = True
    noise = seed(org, 4_000, prefix="devin-n")
    ids = seed(org, 1_000)
    churn(org, noise, 4_000, CYCLES + 1)
    churn(org, ids, 3, CYCLES + 1)
    async with make_client(clock, org) as client:
        watcher, _ = await run_cycles(client, org, ids)
    assert watcher.stats.delta_abandoned >= 1
    assert all(n <= 5 + 1 for n in counts(org)), counts(org)


async def test_a_cursor_cycle_in_a_delta_scan_fails_the_cycle_without_spinning(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    org = Org(clock)
    ids = seed(org, 1_000)
    churn(org, ids, 150, 41)  # a cycle's changes fit in one delta page, the cycle's not
    churn(org, seed(org, 300, prefix="devin-n"), 300, 41)
    org.cursor_cycle = True  # every second page points back to itself
    async with make_client(clock, org) as client:
        watcher, events = await run_cycles(client, org, ids, cycles=40)
    stats = watcher.stats
    # Each failed cycle stopped at the repeated cursor; delta tries then back off (1, 2, 4 ...).
    assert 1 <= stats.failed_cycles <= 6, stats
    assert stats.delta_cycles == 0 and len(org.log) <= 40 * 5 + 2 * stats.failed_cycles * 6
    assert "a second time" in caplog.text
    assert len([e for e in events if e.previous is not None]) == 150 * 39  # nothing lost


async def test_long_ids_are_chunked_so_every_request_line_fits_8_kb() -> None:
    clock = Clock()
    org = Org(clock)
    ids = [org.add(f"devin-{i:032x}", (0, "running", "working")) for i in range(1_000)]
    async with make_client(clock, org) as client:
        events = [e async for e in client.watch(ids, until=lambda s: True)]
    reads = [q["session_ids"].split(",") for q in org.listings() if "session_ids" in q]
    assert len(events) == 1_000 and sum(map(len, reads)) == 1_000
    assert all(len(r) <= 200 for r in reads) and len(reads) <= 6
    # GET + target + HTTP/1.1 under aiohttp's (and nginx's default) 8190-byte request line.
    assert max(org.targets) + len("GET  HTTP/1.1") < 8190


async def test_a_first_probe_finds_a_recent_stamp_when_the_first_ids_are_quiet() -> None:
    clock = Clock()
    org = Org(clock, epoch=int(time.time()))  # server stamps near the client's wall clock
    quiet = [org.add(f"devin-q{i:04d}", (-3600, "running", "working")) for i in range(1_000)]
    busy = seed(org, 1_000)  # stamped over the past ten minutes
    churn(org, busy, 5, CYCLES + 1)
    async with make_client(clock, org) as client:
        await run_cycles(client, org, quiet + busy)
    per = counts(org)
    probe = org.listings(1)[0]
    assert "session_ids" not in probe and int(probe["updated_after"]) >= int(time.time()) - 120
    # The quiet first chunk alone would give an hour-old watermark: every read would return
    # the 2,000 sessions for a while. The probe's stamp makes the second cycle one request.
    assert per[0] == 1 + 10 and max(per[1:]) == 1, per
