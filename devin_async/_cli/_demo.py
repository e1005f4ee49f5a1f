"""`devin-async demo`: the SDK end to end against an in-process fake Devin, with faults on purpose.

The plan for N sessions: one request is invalid (rejected client-side, nothing sent); a few
sessions are scripted to end in `error`; a few creates get 429 with a short Retry-After (the
client's shared limiter pauses every worker, paces the rest, and retries); one create's answer is
lost after the server made the session (the client token finds it: no duplicate). Sessions are
watched from the moment they exist (one Watcher, fed as creates return) until all settle. The demo
"ran as designed" (exit 0) when exactly those things happened.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import attrs

from .._client import DevinClient
from .._config import PollPolicy
from .._enums import SessionStatus
from .._errors import RateLimitError, WaitTimeoutError
from .._instrument import RetryEvent
from .._models import Session
from .._watcher import Watcher
from ._commands import EXIT_OK, EXIT_UNEXPECTED, closing
from ._display import Output, Progress, counts_line, format_table, state_counts, status_label

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


@attrs.define
class _Row:
    index: int
    title: str
    session: Session | None = None
    error: BaseException | None = None
    created: float = 0.0  # monotonic, when the create returned
    settled: float | None = None  # monotonic, when the watch saw it settled


async def run_demo(args: argparse.Namespace, out: Output) -> int:
    """Run the demo; return 0 when it went as designed."""
    from ..testing import FakeDevinServer

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
            out.line(f"Fake Devin at {server.url} (time x{scale:g}): creating {len(plan.requests)} "
                     f"sessions, {args.concurrency} at a time, and watching them settle")
        poll = PollPolicy(initial=0.1, max=0.5, jitter=0.1)
        async with DevinClient(base_url=server.url, api_key=server.api_key,
                               org_id=server.org_id, poll=poll, on_retry=demo.on_retry) as client:
            await demo.run(client, args.concurrency, _deadline(scale))
        made = server.session_count
    demo.summary()
    problems = demo.check(made)
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
        self.rows = [_Row(i, str(r["title"])) for i, r in enumerate(plan.requests)]
        self.by_id: dict[str, _Row] = {}
        self.unsettled: set[str] = set()
        self.done = 0
        self.rate_limited = 0
        self.retried = 0
        self.creating = True
        self.more = asyncio.Event()

    def on_retry(self, event: RetryEvent) -> None:
        if isinstance(event.error, RateLimitError):
            self.rate_limited += 1
        else:
            self.retried += 1

    async def run(self, client: DevinClient, concurrency: int, deadline: float) -> None:
        """Create every session while watching those already made, until all settle."""
        progress = Progress(self.out, self.render)
        try:
            async with (
                client.watch() as watcher,
                progress,
                asyncio.timeout(deadline),
                asyncio.TaskGroup() as group,
            ):
                group.create_task(self._create(client, watcher, concurrency, progress))
                group.create_task(self._watch(watcher, progress))
        except TimeoutError:
            raise WaitTimeoutError(f"the demo's sessions did not settle within {deadline:.0f} s",
                                   last_session=None) from None
        except BaseExceptionGroup as failed:  # one half failed: report its error, not a group
            raise failed.exceptions[0] from None

    async def _create(self, client: DevinClient, watcher: Watcher, concurrency: int,
                      progress: Progress) -> None:
        results = client.sessions.create_many(self.plan.requests, concurrency=concurrency)
        async with closing(results):
            async for result in results:
                self.done += 1
                row = self.rows[result.index]
                row.session, row.error, row.created = result.session, result.error, time.monotonic()
                if result.session is not None:
                    sid = result.session.session_id
                    self.by_id[sid] = row
                    self.unsettled.add(sid)
                    watcher.add(sid)
                    self.out.event(f"created {sid} ({row.title})")
                else:
                    self.out.event(f"{row.title} not created: {result.error}")
                self.more.set()
                progress.update()
        self.creating = False
        self.more.set()

    async def _watch(self, watcher: Watcher, progress: Progress) -> None:
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
                self.out.event(f"{session.session_id} {status_label(session)}")
                progress.update()
            self.unsettled &= set(watcher.watched)  # not found, or gone: nothing to wait for
            if not self.creating and not self.unsettled:
                return
            if self.creating and not self.more.is_set():
                await self.more.wait()

    def render(self) -> list[str]:
        """Return the live table and its status line."""
        out = self.out
        table = [(r.title, r.session.session_id, out.status(r.session), _settle_time(r))
                 for r in self.rows if r.session is not None]
        sessions = [r.session for r in self.rows if r.session is not None]
        failed = sum(1 for r in self.rows if r.error is not None)
        head = (f"created {len(sessions)}/{len(self.rows)} · {failed} not created · "
                f"{self.rate_limited} rate-limited (429, retried)")
        return [*format_table(("TITLE", "SESSION", "STATUS", "SETTLED IN"), table),
                f"{head} · {counts_line(out, state_counts(sessions))}"]

    def summary(self) -> None:
        """Print the final table (or JSON lines) and the totals."""
        out, rows = self.out, self.rows
        created = [r for r in rows if r.session is not None]
        failed = [r for r in rows if r.error is not None]
        errored = [r for r in rows if _ended_in_error(r)]
        elapsed = out.elapsed()
        if out.json_mode:
            for r in rows:
                out.json(_row_dict(r))
            out.json({"summary": True, "requested": len(rows), "created": len(created),
                      "not_created": len(failed), "ended_in_error": len(errored),
                      "rate_limited": self.rate_limited, "retried": self.retried,
                      "elapsed": round(elapsed, 3)})
            return
        table = []
        for r in rows:
            if r.session is not None:
                table.append((str(r.index + 1), r.title, r.session.session_id,
                              out.status(r.session), _settle_time(r)))
            else:
                table.append((str(r.index + 1), r.title, "-", out.paint("not created", "red"), ""))
        out.line()
        out.lines(format_table(("#", "TITLE", "SESSION", "FINAL STATUS", "SETTLED IN"), table))
        out.line()
        for r in failed:
            reason = str(r.error).splitlines()[0] if r.error else "?"
            out.line(f"{r.title} not created: {type(r.error).__name__}: {reason}")
        out.line(f"{len(rows)} requested · {len(created)} created · {len(failed)} not created · "
                 f"{len(errored)} ended in error · {self.rate_limited} rate-limited (429, "
                 f"retried) · {self.retried} other retries · {elapsed:.1f}s")

    def check(self, made: int) -> list[str]:
        """Return what did not go as planned (nothing, normally)."""
        plan, rows = self.plan, self.rows
        problems = []
        failed = [r for r in rows if r.error is not None]
        if [r.index for r in failed] != ([plan.invalid] if plan.invalid is not None else []):
            problems.append("expected only the invalid request to fail, got "
                            f"{', '.join(f'{r.title}: {r.error}' for r in failed) or 'none'}")
        errored = sum(1 for r in rows if _ended_in_error(r))
        if errored != plan.errors:
            problems.append(f"expected {plan.errors} session(s) to end in error, saw {errored}")
        unsettled = [r.title for r in rows if r.session is not None and not r.session.is_settled]
        if unsettled:
            problems.append(f"not settled: {', '.join(unsettled)}")
        if self.rate_limited < plan.throttled:
            problems.append(f"expected {plan.throttled} rate-limited retries, "
                            f"saw {self.rate_limited}")
        created = sum(1 for r in rows if r.session is not None)
        if made != created:
            problems.append(f"the server made {made} sessions for {created} creates")
        return problems


def _row_dict(row: _Row) -> dict[str, Any]:
    session = row.session
    detail = session.status_detail if session is not None else None
    return {
        "index": row.index,
        "title": row.title,
        "session_id": session.session_id if session is not None else None,
        "status": session.status.value if session is not None else None,
        "status_detail": detail.value if detail is not None else None,
        "settled_in": round(row.settled - row.created, 3) if row.settled is not None else None,
        "error": f"{type(row.error).__name__}: {row.error}" if row.error else None,
    }


def _ended_in_error(row: _Row) -> bool:
    return row.session is not None and row.session.status == SessionStatus.ERROR


def _settle_time(row: _Row) -> str:
    if row.settled is None:
        return ""
    return f"{row.settled - row.created:.1f}s"
