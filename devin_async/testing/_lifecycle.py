"""Session lifecycle of the fake server: the clock, the status table and each session's timeline.

Rules of this file:
- A session's status is never stored as "the current one": it is read from the session's
  timeline at the server clock's "now" (lazily, on each read), so 10,000 idle sessions cost nothing
  between requests and no background task runs per session.
- A timeline only grows at its end. An event (message, terminate, script, set_status) first cuts
  off the part that lies in the future, then appends.
- Durations are server seconds. Server seconds = real seconds x time_scale (+ any `advance`).
"""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Callable, Iterable, Sequence

import attrs

# --- The status table (the one place that says what each status means here) ----------------------
TERMINAL = frozenset({"exit", "error"})
"""Statuses a session never leaves; a message to one is refused (409)."""
AWAKE = frozenset({"new", "claimed", "running", "resuming"})
"""Statuses `archive` puts to sleep (suspended/user_request)."""
SETTLED_DETAILS = ("finished", "waiting_for_user")
"""How the default path ends a piece of work: `finished` with probability FINISH_PROBABILITY."""

# --- Default timings (server seconds) ------------------------------------------------------------
CLAIM_AFTER = 1.0  # new -> claimed
WORK_AFTER = 2.0  # claimed -> running/working
SETTLE_MIN, SETTLE_MAX = 10.0, 30.0  # running/working -> running/finished|waiting_for_user
IDLE_SUSPEND_AFTER = 60.0  # settled -> suspended/inactivity
RESUME_AFTER = 1.0  # resuming -> running/working
FINISH_PROBABILITY = 0.7
ACUS_PER_WORKING_SECOND = 1.0 / 60.0

SETTLE_MESSAGES = {
    "finished": "I have completed the task.",
    "waiting_for_user": "I have a question before I continue: could you confirm the requirements?",
}


@attrs.frozen
class Step:
    """One scripted status change, `at` server seconds after the script starts."""

    status: str
    status_detail: str | None = None
    at: float = 0.0


StepLike = Step | tuple[str, str | None, float]


def as_steps(steps: Iterable[StepLike]) -> list[Step]:
    """Normalise `Step`s or `(status, status_detail, at_seconds)` tuples, sorted by `at`."""
    out = []
    for n, step in enumerate(steps):
        if isinstance(step, Step):
            out.append(step)
            continue
        try:
            status, detail, at = step
            parsed = Step(status, detail, float(at))
        except (TypeError, ValueError):
            raise ValueError(
                f"script step {n} must be a Step or a (status, status_detail, at_seconds) "
                f"tuple, e.g. ('running', 'working', 5.0); got {step!r}") from None
        if not isinstance(status, str) or not (detail is None or isinstance(detail, str)):
            raise ValueError(f"script step {n}: status must be a string and status_detail a "
                             f"string or None; got {step!r}")
        out.append(parsed)
    if any(s.at < 0 or s.at != s.at for s in out):
        raise ValueError("script steps need at >= 0")
    return sorted(out, key=lambda s: s.at)


class ServerClock:
    """Server time in Unix seconds: a real clock scaled by `time_scale`, plus manual advances."""

    def __init__(
        self, *, time_scale: float = 1.0, clock: Callable[[], float] | None = None,
        epoch: float | None = None,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.real: Callable[[], float] = clock or time.monotonic
        self._scale = time_scale
        self._base_real = self.real()
        self._base_server = time.time() if epoch is None else float(epoch)

    def now(self) -> float:
        """Return server time (Unix seconds, float)."""
        return self._base_server + (self.real() - self._base_real) * self._scale

    def advance(self, seconds: float) -> None:
        """Move server time forward by `seconds` server seconds."""
        if seconds < 0:
            raise ValueError("cannot move the clock backwards")
        self._base_server += seconds

    @property
    def time_scale(self) -> float:
        return self._scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        if value <= 0:
            raise ValueError("time_scale must be > 0")
        self._base_server, self._base_real, self._scale = self.now(), self.real(), value


@attrs.define(slots=True, eq=False)
class Timeline:
    """The statuses one session goes through, as `(at, status, status_detail)` sorted by `at`.

    `auto` is true while the default lifecycle drives the session; scripts and `set_status` clear it
    (the session then stays where it was put until a message arrives).
    """

    times: list[float]
    states: list[tuple[str, str | None]]
    auto: bool = True

    @classmethod
    def starting(cls, at: float, status: str = "new", detail: str | None = None) -> Timeline:
        return cls([at], [(status, detail)])

    def index(self, now: float) -> int:
        return max(0, bisect.bisect_right(self.times, now) - 1)

    def state(self, now: float) -> tuple[str, str | None]:
        return self.states[self.index(now)]

    def changed_at(self, now: float) -> float:
        return self.times[self.index(now)]

    def has_future(self, now: float) -> bool:
        return self.times[-1] > now

    def cut(self, now: float) -> None:
        """Forget every change planned after `now`."""
        keep = max(1, bisect.bisect_right(self.times, now))
        del self.times[keep:], self.states[keep:]

    def push(self, at: float, status: str, detail: str | None) -> None:
        at = max(at, self.times[-1])
        self.times.append(at)
        self.states.append((status, detail))

    def extend(self, start: float, steps: Sequence[Step]) -> None:
        for step in steps:
            self.push(start + step.at, step.status, step.status_detail)

    def working_seconds(self, now: float) -> float:
        """Server seconds spent in running/working up to `now` (drives acus_consumed)."""
        total = 0.0
        last = self.index(now)
        for i in range(last + 1):
            if self.states[i] == ("running", "working"):
                end = now if i == last else self.times[i + 1]
                total += max(0.0, end - self.times[i])
        return total


# --- Default plans: lists of Steps relative to the moment they start -----------------------------
def _settle(rng: random.Random, start: float, finish: bool = False) -> list[Step]:
    done = start + rng.uniform(SETTLE_MIN, SETTLE_MAX)
    chance = rng.random()
    detail = SETTLED_DETAILS[0] if finish or chance < FINISH_PROBABILITY else SETTLED_DETAILS[1]
    sleep = done + IDLE_SUSPEND_AFTER
    return [Step("running", detail, done), Step("suspended", "inactivity", sleep)]


def plan_start(rng: random.Random, *, finish: bool = False) -> list[Step]:
    """Plan a new session: new -> claimed -> running/working -> settled -> suspended/inactivity.

    `finish`: the work ends `finished` (a session asked for a structured output delivers it).
    """
    working = CLAIM_AFTER + WORK_AFTER
    return [
        Step("new", None, 0.0),
        Step("claimed", None, CLAIM_AFTER),
        Step("running", "working", working),
        *_settle(rng, working, finish),
    ]


def plan_resume(rng: random.Random) -> list[Step]:
    """Plan a woken session: resuming -> running/working -> settled -> suspended/inactivity."""
    return [Step("resuming", None, 0.0), Step("running", "working", RESUME_AFTER),
            *_settle(rng, RESUME_AFTER)]


def plan_continue(rng: random.Random) -> list[Step]:
    """Plan a running session that got a message: working again -> settled -> suspended."""
    return [Step("running", "working", 0.0), *_settle(rng, 0.0)]
