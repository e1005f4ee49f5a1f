"""Soak and chaos: a watcher over 1,000 sessions and a create_many of 500, for simulated hours.

The fake server runs in a child process (so the RSS measured here is the client's alone), on
loopback, `time_scale` times faster than real time. Every watched session follows its own
script through new -> claimed -> working -> waiting -> suspended -> resuming -> finished -> exit
(or error), ending at a random moment of the simulated span; each created session gets a
shorter script of the same shape. Random faults hit every endpoint (5xx, 429 with a hint,
resets before and after the server acted, truncated and non-JSON bodies, slow answers) and the
server is restarted mid-run (the first time while creates are in flight).

Asserted at the end: every session's final state was observed; the events per session are
consistent (the first has no `previous`, each `previous` is the event before, no change reported
twice, all in script order); all 500 creates succeeded and exactly 500 new sessions exist, one
per client token; after warm-up (every create done, the first restart survived) client RSS
grew less than RSS_BUDGET and no object a request, response or event makes piled up (a census
of live objects by type); no task and no HTTP session is left. The figures are printed (`-s`)
and kept as the test's user properties.

The CI version is short (2 simulated hours at 2000x, a few seconds). The full version:

    DEVIN_ASYNC_SOAK=full .venv/bin/pytest -m soak -s tests/test_soak.py

Both are bounded (a hard wall-clock limit, then the child is killed) and stop themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import os
import random
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

from devin_async import (
    DevinClient,
    Page,
    PollPolicy,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    RetryPolicy,
    Session,
    SessionEvent,
    Timeouts,
)
from devin_async._aiohttp import AiohttpTransport
from devin_async._protocol import Request

pytestmark = pytest.mark.soak

ROOT = Path(__file__).resolve().parent.parent
State = tuple[str, "str | None"]


@attrs.frozen
class Plan:
    """One soak run's size and pace."""

    watched: int = 1000
    creates: int = 500
    hours: float = 2.0  # simulated
    time_scale: float = 2000.0
    restarts: int = 2
    create_fault_rate: float = 0.10
    read_fault_rate: float = 0.03
    concurrency: int = 8
    wall_limit: float = 60.0  # real seconds, whatever happens
    seed: int = 20251128

    @property
    def span(self) -> float:
        """Simulated seconds."""
        return self.hours * 3600.0

    @property
    def real_span(self) -> float:
        return self.span / self.time_scale


CI = Plan()
FULL = Plan(hours=8.0, time_scale=400.0, restarts=6, wall_limit=300.0)
#: Client RSS may grow this much after warm-up (allocator noise, not a leak).
RSS_BUDGET = 16 * 1024 * 1024


def plan_from_env() -> Plan:
    return FULL if os.environ.get("DEVIN_ASYNC_SOAK", "").lower() == "full" else CI


# -- the scripts ---------------------------------------------------------------------------------

SHAPE: list[tuple[float, str, str | None]] = [
    (0.02, "claimed", None),
    (0.05, "running", "working"),
    (0.30, "running", "waiting_for_user"),
    (0.50, "suspended", "inactivity"),
    (0.60, "resuming", None),
    (0.62, "running", "working"),  # the same state again, after others: reported again
    (0.80, "running", "finished"),
]


def script(rng: random.Random, end: float) -> list[list[Any]]:
    """A session's steps (status, detail, at) ending at `end` server seconds in exit/error."""
    final = "error" if rng.random() < 0.2 else "exit"
    return [[status, detail, round(end * at, 3)] for at, status, detail in SHAPE] + [
        [final, None, round(end, 3)]]


def scripted_states(steps: list[list[Any]]) -> list[State]:
    return [("new", None)] + [(status, detail) for status, detail, _ in steps]


# -- the server, in a child process --------------------------------------------------------------

async def _serve(plan: Plan) -> None:
    from devin_async.testing import FakeDevinServer

    rng = random.Random(plan.seed)
    server = FakeDevinServer(time_scale=plan.time_scale, seed=plan.seed, max_log=1000)
    ids = server.add_sessions(plan.watched, status="new")
    scripts: dict[str, list[list[Any]]] = {}
    for sid in ids:
        scripts[sid] = script(rng, rng.uniform(0.3, 0.95) * plan.span)
        server.script([tuple(s) for s in scripts[sid]], session_id=sid)
    create_scripts = [script(rng, rng.uniform(0.2, 0.6) * plan.span)
                      for _ in range(plan.creates)]
    for steps in create_scripts:
        server.script([tuple(s) for s in steps])
    await server.start()
    kinds = ("status_500", "status_502", "status_503", "status_429", "drop_before",
             "drop_after", "truncated", "non_json", "delay")
    chaos = [server.inject_random(plan.create_fault_rate, kinds=kinds, seed=plan.seed,
                                  endpoint="create", delay=0.02),
             server.inject_random(plan.read_fault_rate, kinds=kinds, seed=plan.seed + 1,
                                  endpoint=("list", "get"), delay=0.02)]

    def send(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    send({"url": server.url, "api_key": server.api_key, "org_id": server.org_id,
          "scripts": scripts, "create_scripts": create_scripts})
    restarts = 0
    while True:
        command = (await asyncio.to_thread(sys.stdin.readline)).strip()
        if command == "restart":
            await server.restart()
            restarts += 1
            send({"restarted": restarts})
        elif command in ("stop", ""):
            break
    states = {sid: [s["status"], s["status_detail"]] for sid, s in server.sessions.items()}
    tokens = [t for s in server.sessions.values() for t in s["tags"]
              if t.startswith("devin-async-token:")]
    send({"states": states, "tokens": tokens, "stats": server.stats, "restarts": restarts,
          "faults": sum(c.hits for c in chaos), "scripts_left": len(server._store.scripts)})
    await server.close()


def child_main() -> None:
    """Entry point of the server process: `python -c 'import tests.test_soak as m; ...'`."""
    asyncio.run(_serve(Plan(**json.loads(sys.argv[1]))))


class Child:
    """The server process and its line protocol (JSON lines out, commands in)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError("the fake server process ended early")
        message: dict[str, Any] = json.loads(line)
        return message

    async def command(self, text: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode() + b"\n")
        await self.process.stdin.drain()
        return await self.read()


@pytest.fixture
async def child() -> AsyncIterator[tuple[Child, dict[str, Any], Plan]]:
    plan = plan_from_env()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import tests.test_soak as m; m.child_main()",
        json.dumps(attrs.asdict(plan)),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])},
        limit=1 << 24,
    )
    server = Child(process)
    try:
        hello = await asyncio.wait_for(server.read(), 30)
        yield server, hello, plan
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


# -- measuring -----------------------------------------------------------------------------------

def rss() -> int:
    """This process's resident set size in bytes (peak RSS without /proc; 0 if unknown)."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    try:  # pragma: no cover - not Linux
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover
    return peak if sys.platform == "darwin" else peak * 1024  # pragma: no cover


@pytest.fixture
def soak_report(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The run's figures, printed at the end (see them with -s) and kept as user properties."""
    figures: dict[str, Any] = {}
    yield figures
    lines = [f"  {key:<24} {value}" for key, value in figures.items()]
    print("\nsoak report\n" + "\n".join(lines))
    request.node.user_properties.extend(figures.items())


#: Objects that one request, response, poll or event creates: none may pile up.
CENSUS_TYPES: tuple[type, ...] = (Session, SessionEvent, Page, Request, RequestEvent,
                                  ResponseEvent, RetryEvent, aiohttp.ClientResponse,
                                  aiohttp.ClientRequest, asyncio.Task, asyncio.Future)


def census() -> Counter[str]:
    """Live objects of CENSUS_TYPES, by type name (after a full collection)."""
    gc.collect()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        if isinstance(obj, CENSUS_TYPES):
            counts[type(obj).__name__] += 1
    return counts


class LogTally(logging.Handler):
    """The SDK's log as an application would handle it: formatted, counted, not kept.

    (pytest's own capture keeps every record, and a record's args keep a logged error, its
    traceback and that traceback's frames alive: that would show up as held memory.)
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[str] = Counter()
        self.last: deque[str] = deque(maxlen=5)

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1
        if record.levelno >= logging.WARNING:
            self.last.append(self.format(record)[:200])

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        """Be the SDK logger's only handler for a while.

        pytest attaches its capture to non-propagating loggers too, when the test's call
        begins (after fixtures), so it is taken off here and put back afterwards.
        """
        logger = logging.getLogger("devin_async")
        others = [h for h in logger.handlers if h is not self]
        for handler in others:
            logger.removeHandler(handler)
        try:
            yield
        finally:
            for handler in others:
                logger.addHandler(handler)


@pytest.fixture
def sdk_log() -> Iterator[LogTally]:
    logger = logging.getLogger("devin_async")
    tally = LogTally()
    propagate, level = logger.propagate, logger.level
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(tally)
    yield tally
    logger.removeHandler(tally)
    logger.propagate, logger.level = propagate, level


def mib(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


# -- the run -------------------------------------------------------------------------------------

async def test_soak(child: tuple[Child, dict[str, Any], Plan], sdk_log: LogTally,
                    soak_report: dict[str, Any]) -> None:
    server, hello, plan = child
    scripts: dict[str, list[list[Any]]] = hello["scripts"]
    create_scripts: list[list[list[Any]]] = hello["create_scripts"]
    expected: dict[str, list[State]] = {sid: scripted_states(s) for sid, s in scripts.items()}
    # Created sessions take the queued scripts in creation order, which the client cannot see;
    # every created session's states must follow one of them (they share one shape).
    create_shapes = {tuple(scripted_states(s)) for s in create_scripts}

    scale = plan.time_scale
    client = DevinClient(
        hello["api_key"], org_id=hello["org_id"], base_url=hello["url"],
        poll=PollPolicy(initial=0.15, max=0.5, multiplier=1.5, jitter=0.1),
        retry=RetryPolicy(max_attempts=10, initial_backoff=0.01, max_backoff=0.4, deadline=60),
        timeouts=Timeouts(connect=2.0, read=5.0, total=10.0),
    )
    # Compact records, so the test's own bookkeeping hardly moves the RSS it measures:
    # session id -> [(state, previous state, updated_at, gone)].
    events: dict[str, list[tuple[State, State | None, int, bool]]] = defaultdict(list)
    event_count = 0
    created: list[Session] = []
    create_errors: list[BaseException] = []
    samples: list[tuple[float, int]] = []
    restarts: list[float] = []
    created_at: list[float] = []
    censuses: list[Counter[str]] = []
    restart_now = asyncio.Event()
    creates_done = asyncio.Event()
    start = time.monotonic()

    def elapsed() -> float:
        return time.monotonic() - start

    # A daemon watcher (forever): sessions are added while it runs, after the first ones ended;
    # it is closed once the creates are done and every watched session ended.
    watcher = client.watch(list(scripts), until=Session.is_terminal, forever=True)

    def all_ended() -> bool:  # by what was reported, not seen: nothing is left unconsumed
        return all(events.get(sid) and events[sid][-1][0][0] in ("exit", "error")
                   for sid in watcher.watched)

    async def close_when_done() -> None:
        await creates_done.wait()
        if all_ended():  # no event is left to come: the watch loop would wait forever
            await watcher.aclose()

    async def watch() -> None:
        nonlocal event_count
        async with watcher:
            async for event in watcher:
                event_count += 1
                previous = None if event.previous is None else event.previous.state
                events[event.session.session_id].append(
                    (event.session.state, previous, event.session.updated_at, event.gone))
                if creates_done.is_set() and all_ended():
                    break

    async def create() -> None:
        requests = ({"prompt": f"soak {i}", "tags": ["soak"]} for i in range(plan.creates))
        async with client.sessions.create_many(requests, concurrency=plan.concurrency) as batch:
            async for result in batch:
                if result.session is None:
                    assert result.error is not None
                    create_errors.append(result.error)
                    continue
                created.append(result.session)
                watcher.add(result.session.session_id)
                if len(created) == plan.creates * 2 // 5:
                    restart_now.set()
        created_at.append(elapsed())
        creates_done.set()

    async def chaos() -> None:
        # The first restart hits creates in flight; the others spread over the watch that
        # follows, up to when the last session is due to end.
        await restart_now.wait()
        await restart(1)
        await creates_done.wait()
        censuses.append(census())  # at warm-up
        done = created_at[0]
        end = max(0.95 * plan.real_span, done + 0.6 * plan.real_span)
        for n in range(2, plan.restarts + 1):
            await asyncio.sleep(max(0.0, done + (end - done) * 0.9 * (n - 1) / plan.restarts
                                    - elapsed()))
            await restart(n)

    async def restart(n: int) -> None:
        reply = await server.command("restart")
        assert reply == {"restarted": n}
        restarts.append(elapsed())

    async def sample() -> None:
        while True:
            samples.append((elapsed(), rss()))
            await asyncio.sleep(0.05)

    censuses.append(census())  # before the run
    rss_start = rss()
    sampler = asyncio.create_task(sample())
    restarter = asyncio.create_task(chaos())
    try:
        with sdk_log.alone():
            async with asyncio.timeout(plan.wall_limit):
                await asyncio.gather(watch(), create(), close_when_done())
                await restarter
            censuses.append(census())  # at the end, the client still open
    finally:
        sampler.cancel()
        restarter.cancel()
        await asyncio.gather(sampler, restarter, return_exceptions=True)
        await client.aclose()
    wall = elapsed()
    summary = await server.command("stop")

    # -- nothing left behind
    assert asyncio.all_tasks() == {asyncio.current_task()}
    gc.collect()
    assert not [o for o in gc.get_objects()
                if isinstance(o, aiohttp.ClientSession) and not o.closed]
    transport = client.transport
    assert isinstance(transport, AiohttpTransport) and transport.session is None

    # -- exactly the 500 sessions asked for, each once
    assert create_errors == []
    assert len(created) == plan.creates
    assert len({s.session_id for s in created}) == plan.creates
    tokens = Counter(summary["tokens"])
    assert len(tokens) == plan.creates and set(tokens.values()) == {1}
    assert {f"devin-async-token:{s.client_token}" for s in created} == set(tokens)
    assert len(summary["states"]) == plan.watched + plan.creates
    assert summary["scripts_left"] == 0  # no create consumed a second script

    # -- every final state observed, every event consistent, none twice
    final = {sid: (status, detail) for sid, (status, detail) in summary["states"].items()}
    assert set(watcher.sessions) == set(final), (
        set(final) - set(watcher.sessions), watcher.not_found, len(watcher.watched))
    assert {sid: s.state for sid, s in watcher.sessions.items()} == final
    assert all(status in ("exit", "error") for status, _ in final.values())
    assert set(events) == set(final)
    for sid, seen in events.items():
        states = [state for state, _, _, _ in seen]
        assert not any(gone for _, _, _, gone in seen)
        assert seen[0][1] is None  # the first sighting has no previous
        for before, after in itertools.pairwise(seen):
            assert after[1] == before[0] != after[0]  # previous is the event before; a change
        assert len({(state, stamp) for state, _, stamp, _ in seen}) == len(seen)  # none twice
        assert states[-1] == final[sid]
        if sid in expected:
            assert is_subsequence(states, expected[sid]), (sid, states)
        else:
            assert any(is_subsequence(states, list(shape)) for shape in create_shapes), states

    # -- nothing piles up: the SDK holds one Session per watched id (and we hold the created);
    #    counted against what the process held before the run (other tests' leftovers).
    start_census, warm_census, end_census = censuses
    grown = end_census - start_census
    assert grown["Session"] <= len(watcher.sessions) + len(created) + 20, grown
    assert all(count <= 20 for name, count in grown.items() if name != "Session"), grown

    # -- the figures, and flat memory after warm-up
    assert summary["restarts"] == plan.restarts == len(restarts)
    # Warm-up: every create done, every session seen, the first restart survived.
    warm_at = max(restarts[0], created_at[0])
    settled = [value for at, value in samples if at >= warm_at]
    assert len(settled) >= 10, "the run was too short to measure memory after warm-up"
    warm = settled[0]
    growth = max(settled) - warm
    timeline = [samples[round(i * (len(samples) - 1) / 5)] for i in range(6)]
    soak_report.update({
        "plan": f"{plan.watched} watched + {plan.creates} created, {plan.hours:g} h simulated "
                f"at {scale:g}x",
        "wall time": f"{wall:.1f} s",
        "events": event_count,
        "sessions observed": len(watcher.sessions),
        "sessions created": len(created),
        "restarts at": ", ".join(f"{t:.2f} s" for t in restarts),
        "faults injected": summary["faults"],
        "server requests": summary["stats"].get("requests"),
        "server 429s/5xx/drops": (
            f"{summary['stats'].get('status_429', 0)}/"
            f"{sum(v for k, v in summary['stats'].items() if k.startswith('status_5'))}/"
            f"{summary['stats'].get('drops', 0)}"),
        "watch cycles (failed)": f"{watcher.stats.cycles} ({watcher.stats.failed_cycles})",
        "SDK log records": dict(sorted(sdk_log.counts.items())),
        "client RSS start": mib(rss_start),
        "client RSS after warm-up": mib(warm),
        "client RSS end": mib(settled[-1]),
        "client RSS peak growth": mib(growth),
        "client RSS over time": ", ".join(f"{at:.1f}s {value / 2**20:.1f}"
                                           for at, value in timeline),
        "warm-up ended at": f"{warm_at:.2f} s",
        "live objects at warm-up": dict(sorted((warm_census - start_census).items())),
        "live objects at the end": dict(sorted(grown.items())),
    })
    assert growth < RSS_BUDGET or rss_start == 0, soak_report


def is_subsequence(seen: list[State], script_states: list[State]) -> bool:
    """Whether `seen` appears in `script_states` in order (changes may be skipped, not invented)."""
    remaining = iter(script_states)
    return all(any(state == candidate for candidate in remaining) for state in seen)
