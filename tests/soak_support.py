"""The soak's harness: its plan, the session scripts, the fake server's process and the gauges.

The fake server runs in a child process (so the RSS measured by the test is the client's alone)
and speaks JSON lines: one hello (url, credentials, scripts), then one answer per command
(`restart`, `idle off`, `stop`). Every fault class of the plan is set up here; the test only
drives the client and checks what it saw against the server's final summary.

Server time and real time: the fake server runs `time_scale` times faster than real time, and
its list-index lag and stale replica are in *server* seconds. The plan states them in real
seconds (what the client's waits, look-ups and poll cadence are measured in) and converts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import sys
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs

from devin_async import (
    Page,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    Session,
    SessionEvent,
)
from devin_async._models import TOKEN_TAG_PREFIX
from devin_async._protocol import Request

ROOT = Path(__file__).resolve().parent.parent
State = tuple[str, "str | None"]


@attrs.frozen
class Plan:
    """One soak run's size, pace and faults (`*_real`: real seconds, converted for the server)."""

    watched: int = 1000
    creates: int = 500
    hours: float = 2.0  # simulated
    time_scale: float = 2000.0
    restarts: int = 2
    create_fault_rate: float = 0.10
    read_fault_rate: float = 0.03
    concurrency: int = 8
    #: The list index lags writes this long: a lost create's first look-ups miss it.
    index_lag_real: float = 0.2
    #: This share of get/list answers comes from a replica this far behind (more than a poll
    #: interval, so that it shows states older than ones already reported).
    stale_fraction: float = 0.2
    stale_real: float = 0.25
    #: The server closes idle keep-alive connections this soon after answering, until the
    #: first restart.
    idle_close: float = 0.001
    #: The client's settling window for a lost create (above index lag plus staleness).
    settle: float = 1.0
    #: Spare create scripts beyond `creates` (a duplicate the SDK terminates consumes one).
    spare_scripts: int = 30
    wall_limit: float = 60.0  # real seconds, whatever happens
    seed: int = 20251128

    @property
    def span(self) -> float:
        """Simulated seconds."""
        return self.hours * 3600.0

    @property
    def real_span(self) -> float:
        return self.span / self.time_scale

    def server(self, real: float) -> float:
        """Server seconds for `real` real seconds."""
        return real * self.time_scale


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


def is_subsequence(seen: list[State], script_states: list[State]) -> bool:
    """Whether `seen` appears in `script_states` in order (changes may be skipped, not invented)."""
    remaining = iter(script_states)
    return all(any(state == candidate for candidate in remaining) for state in seen)


# -- the server, in a child process --------------------------------------------------------------

#: Faults after which a create happened but its answer was lost (the look-up must find it).
ACTED_LOST = ("drop_after", "truncated", "non_json")


def lookups(requests: Iterable[Any]) -> dict[str, int]:
    """For each create that acted but lost its answer: how many look-ups of its token followed."""
    looks: dict[str, int] = {}
    for r in requests:
        if r.endpoint == "create" and r.fault in ACTED_LOST and isinstance(r.json, dict):
            tag = next((t for t in r.json.get("tags") or () if t.startswith(TOKEN_TAG_PREFIX)),
                       None)
            if tag is not None:
                looks.setdefault(tag, 0)
        elif r.endpoint == "list":
            tag = dict(r.query).get("tags")
            if tag in looks:
                looks[tag] += 1
    return looks


async def _serve(plan: Plan) -> None:
    from devin_async.testing import FakeDevinServer

    rng = random.Random(plan.seed)
    server = FakeDevinServer(
        time_scale=plan.time_scale, seed=plan.seed, max_log=10**6,
        index_lag=plan.server(plan.index_lag_real), stale_fraction=plan.stale_fraction,
        stale_by=plan.server(plan.stale_real), close_idle_after=plan.idle_close)
    ids = server.add_sessions(plan.watched, status="new")
    scripts: dict[str, list[list[Any]]] = {}
    for sid in ids:
        scripts[sid] = script(rng, rng.uniform(0.3, 0.95) * plan.span)
        server.script([tuple(s) for s in scripts[sid]], session_id=sid)
    create_scripts = [script(rng, rng.uniform(0.2, 0.6) * plan.span)
                      for _ in range(plan.creates + plan.spare_scripts)]
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
        elif command == "idle off":
            server.close_idle_after = None
            send({"idle_closes": server.stats.get("idle_closes", 0)})
        elif command in ("stop", ""):
            break
    sessions = {sid: server.session(sid) for sid in server.sessions}
    terminated = {r.path.rsplit("/", 1)[-1] for r in server.requests
                  if r.endpoint == "terminate" and r.status == 200}
    send({"states": {sid: [s["status"], s["status_detail"]] for sid, s in sessions.items()},
          "tokens": {sid: t for sid, s in sessions.items() for t in s["tags"]
                     if t.startswith(TOKEN_TAG_PREFIX)},
          "prompts": {sid: server.create_request(sid).get("prompt") for sid in sessions
                      if sid not in scripts},
          "terminated": sorted(terminated), "stats": server.stats, "restarts": restarts,
          "faults": sum(c.hits for c in chaos), "lookups": lookups(server.requests),
          "stale_answers": server.stale_answers, "stale_behind": server.stale_behind,
          "scripts_left": plan.creates + plan.spare_scripts - server.stats.get("creates", 0)})
    await server.close()


def child_main() -> None:
    """Entry point of the server process: `python -c 'import tests.soak_support as m; ...'`."""
    asyncio.run(_serve(Plan(**json.loads(sys.argv[1]))))


class Child:
    """The server process and its line protocol (JSON lines out, commands in)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def spawn(cls, plan: Plan) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import tests.soak_support as m; m.child_main()",
            json.dumps(attrs.asdict(plan)),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])},
            limit=1 << 24,
        )
        return cls(process)

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

    async def end(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


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


def mib(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"
