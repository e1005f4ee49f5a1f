"""`devin-async demo`: the SDK end to end against an in-process fake Devin, with faults on purpose.

The plan for N sessions: one request is invalid (rejected client-side, nothing sent); a few
sessions are scripted to end in `error`; a few creates get 429 with a short Retry-After (the
client's shared limiter pauses every worker, paces the rest, and retries); one create's answer is
lost after the server made the session (the client token finds it: no duplicate). Sessions are
watched from the moment they exist (one Watcher, fed as creates return) until all settle. Every
deliberate failure is labelled as staged, and the summary shows how each was handled. The demo
"ran as designed" (exit 0) when exactly those things happened.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import attrs

from devin_async import (
    DevinClient,
    PollPolicy,
    RateLimitError,
    RetryEvent,
    WaitTimeoutError,
    Watcher,
)

from ._common import EXIT_OK, EXIT_UNEXPECTED, closing
from ._demo_view import DemoRow, render_table, staged_lines, summary_json, totals_lines
from ._display import Output, View, status_cell
from ._text import plural, truncate

__all__ = ["DemoPlan", "plan_demo", "run_demo"]

PROMPTS = (
    "Fix the flaky test in tests/test_api.py",
    "Add type hints to utils/dates.py",
    "Upgrade the CI to Python 3.12",
    "Write a migration that adds an index on orders.created_at",
    "Find why the nightly export is slow and speed it up",
    "Add a --dry-run flag to the deploy script",
    "Replace the deprecated datetime.utcnow() calls",
    "Document the public API of the billing module",
    "Reproduce issue #412 with a failing test",
    "Remove the dead feature flags older than a year",
)
#: A scripted session that works, then fails (server seconds since its creation).
ERROR_SCRIPT = (
    ("new", None, 0.0),
    ("claimed", None, 1.0),
    ("running", "working", 2.0),
    ("error", None, 8.0),
)
THROTTLE_RETRY_AFTER = 0.25  # seconds the injected 429s ask the client to wait
THROTTLE_DELAY = 0.3  # real seconds the server holds a 429 before answering
#: The longest real time the watch may take, beyond the lifecycle's own (see _deadline).
WATCH_MARGIN = 10.0


@attrs.frozen
class DemoPlan:
    """What the demo sends, and which failures it expects."""

    requests: list[dict[str, Any]]
    invalid: int | None  # index of the request rejected client-side
    errors: int  # sessions scripted to end in error
    throttled: int  # creates answered 429 once
    lost: int  # creates whose answer is dropped after the session was made


def plan_demo(n: int) -> DemoPlan:
    """Plan `n` create requests with the demo's deliberate failures."""
    invalid = min(6, n - 1) if n >= 2 else None
    valid = n - (invalid is not None)
    errors = min(max(1, n // 10), valid - 1) if valid >= 2 else 0
    requests: list[dict[str, Any]] = []
    for i in range(n):
        if i == invalid:
            # `analyze` needs session_links: the SDK refuses it before any request.
            requests.append({"prompt": "Analyze last week's sessions", "title": f"demo-{i + 1:02d}",
                             "advanced_mode": "analyze"})
        else:
            requests.append({"prompt": PROMPTS[i % len(PROMPTS)], "title": f"demo-{i + 1:02d}",
                             "tags": ["demo"]})
    throttled = min(3, max(1, valid // 2)) if valid else 0
    return DemoPlan(requests, invalid, errors, throttled=throttled, lost=1 if valid else 0)


async def run_demo(args: argparse.Namespace, out: Output) -> int:
    """Run the demo; return 0 when it went as designed."""
    from devin_async.testing import FakeDevinServer

    scale: float = args.time_scale
    plan = plan_demo(args.sessions)
    demo = _Demo(plan, out)
    async with FakeDevinServer(time_scale=scale, seed=args.seed) as server:
        for _ in range(plan.errors):
            server.script(ERROR_SCRIPT)
        if plan.throttled:
            # Delayed, so the first successes are in before the limiter sets its pace from them.
            server.inject("create", times=plan.throttled, status=429,
                          retry_after=THROTTLE_RETRY_AFTER, delay=THROTTLE_DELAY)
        if plan.lost:
            server.inject("create", times=plan.lost, drop="after")
        if not out.json_mode:
            demo.intro(server.url, scale, args.concurrency)
        poll = PollPolicy(initial=0.1, max=0.5, jitter=0.1)
        async with DevinClient(base_url=server.url, api_key=server.api_key,
                               org_id=server.org_id, poll=poll, on_retry=demo.on_retry) as client:
            await demo.run(client, args.concurrency, _deadline(scale))
        made = server.session_count
    problems = demo.check(made)
    demo.summary(made)
    for problem in problems:
        print(f"devin-async: demo: {problem}", file=sys.stderr, flush=True)
    return EXIT_UNEXPECTED if problems else EXIT_OK


def _deadline(scale: float) -> float:
    # The fake lifecycle settles within ~35 server seconds; allow that, scaled, plus a margin.
    return 35.0 / scale + WATCH_MARGIN


class _Demo:
    """The demo's state: one row per request, the retry tally, and the two concurrent halves."""

    def __init__(self, plan: DemoPlan, out: Output) -> None:
        self.plan = plan
        self.out = out
        self.rows = [DemoRow(i, str(r["title"]), refused_on_purpose=i == plan.invalid)
                     for i, r in enumerate(plan.requests)]
        self.by_id: dict[str, DemoRow] = {}
        self.unsettled: set[str] = set()
        self.rate_limited = 0  # retries after a 429
        self.reconnected = 0  # retries of a create after a lost answer (connection error)
        self.retried = 0  # any other retry
        self.creating = True
        self.more = asyncio.Event()

    def intro(self, url: str, scale: float, concurrency: int) -> None:
        """Say what is about to happen, failures staged on purpose included (fits 80 columns)."""
        plan, width = self.plan, self.out.width
        invalid = plural(1 if plan.invalid is not None else 0, "invalid request")
        self.out.lines(truncate(line, width) for line in (
            f"Fake Devin at {url} (time x{scale:g}): no account, no network.",
            f"Creating {plural(len(plan.requests), 'session')}, {concurrency} at a time, "
            "and watching them settle.",
            f"Staged on purpose: {invalid}, {plural(plan.errors, 'session')} scripted to fail,",
            f"  {plural(plan.throttled, 'create')} answered 429, {plural(plan.lost, 'create')} "
            "whose answer is lost (the session is made).",
        ))

    def on_retry(self, event: RetryEvent) -> None:
        if isinstance(event.error, RateLimitError):
            self.rate_limited += 1
        elif event.method == "POST":
            self.reconnected += 1
        else:
            self.retried += 1

    async def run(self, client: DevinClient, concurrency: int, deadline: float) -> None:
        """Create every session while watching those already made, until all settle."""
        try:
            async with (
                client.watch() as watcher,
                self.out.view(self.render) as view,
                asyncio.timeout(deadline),
                asyncio.TaskGroup() as group,
            ):
                group.create_task(self._create(client, watcher, concurrency, view))
                group.create_task(self._watch(watcher, view))
        except TimeoutError:
            raise WaitTimeoutError(f"the demo's sessions did not settle within {deadline:.0f} s",
                                   last_session=None) from None
        except BaseExceptionGroup as failed:  # one half failed: report its error, not a group
            raise failed.exceptions[0] from None

    async def _create(self, client: DevinClient, watcher: Watcher, concurrency: int,
                      view: View) -> None:
        results = client.sessions.create_many(self.plan.requests, concurrency=concurrency)
        async with closing(results):
            async for result in results:
                row = self.rows[result.index]
                row.session, row.error, row.created = result.session, result.error, time.monotonic()
                if result.session is not None:
                    sid = result.session.session_id
                    self.by_id[sid] = row
                    self.unsettled.add(sid)
                    watcher.add(sid)
                    self.out.event(f"created {sid} ({row.title})")
                else:
                    staged = " (staged)" if row.refused_on_purpose else ""
                    self.out.event(f"{row.title} not created{staged}: {result.error}")
                self.more.set()
                view.update()
        self.creating = False
        self.more.set()

    async def _watch(self, watcher: Watcher, view: View) -> None:
        # A watcher ends when every session it has is settled; sessions created later are added
        # to it, and iterating it again picks them up.
        while True:
            self.more.clear()
            async for event in watcher:
                session = event.session
                row = self.by_id.get(session.session_id)
                if row is None:
                    continue
                row.session = session
                if (session.is_settled or event.gone) and row.settled is None:
                    row.settled = time.monotonic()
                    self.unsettled.discard(session.session_id)
                self.out.event([f"{session.session_id} ", status_cell(session)])
                view.update()
            self.unsettled &= set(watcher.watched)  # not found, or gone: nothing to wait for
            if not self.creating and not self.unsettled:
                return
            if self.creating and not self.more.is_set():
                await self.more.wait()

    def render(self) -> Any:
        """Return the live table (its caption: the counts so far)."""
        return render_table(self.rows, self.out, self.rate_limited)

    def summary(self, made: int) -> None:
        """Print the final table (unless the live view left it on screen) and the totals."""
        out, rows = self.out, self.rows
        retries = {"rate_limited": self.rate_limited, "reconnected": self.reconnected,
                   "retried": self.retried}
        recovered = self.recovered(made)
        if out.json_mode:
            for record in summary_json(rows, out, retries, recovered):
                out.json(record)
            return
        if not out.live:
            out.line()
            out.table(render_table(rows, out, self.rate_limited))
        out.line()
        for line in staged_lines(rows, self.plan.lost, recovered, retries):
            out.line(truncate(line, out.width) if isinstance(line, str) else line)
        out.lines(totals_lines(rows, self.retried, out.elapsed(), out.width))

    def recovered(self, made: int) -> int:
        """Return how many lost answers were recovered without a duplicate session."""
        created = sum(1 for r in self.rows if r.session is not None)
        return min(self.plan.lost, self.reconnected) if made == created else 0

    def check(self, made: int) -> list[str]:
        """Return what did not go as planned (nothing, normally)."""
        plan, rows = self.plan, self.rows
        problems = []
        failed = [r for r in rows if r.error is not None]
        if [r.index for r in failed] != ([plan.invalid] if plan.invalid is not None else []):
            problems.append("expected only the invalid request to fail, got "
                            f"{', '.join(f'{r.title}: {r.error}' for r in failed) or 'none'}")
        errored = sum(1 for r in rows if r.ended_in_error)
        if errored != plan.errors:
            problems.append(f"expected {plural(plan.errors, 'session')} to end in error, "
                            f"saw {errored}")
        unsettled = [r.title for r in rows if r.session is not None and not r.session.is_settled]
        if unsettled:
            problems.append(f"not settled: {', '.join(unsettled)}")
        if self.rate_limited < plan.throttled:
            expected = plural(plan.throttled, "rate-limited retry", "rate-limited retries")
            problems.append(f"expected {expected}, saw {self.rate_limited}")
        created = sum(1 for r in rows if r.session is not None)
        if made != created:
            problems.append(f"the server made {plural(made, 'session')} for "
                            f"{plural(created, 'create')}")
        elif self.recovered(made) < plan.lost:
            problems.append(f"expected {plural(plan.lost, 'lost answer')} recovered, "
                            f"saw {self.recovered(made)}")
        return problems
