"""What happens after a failed attempt: one table, read by the engine and by the pollers.

Rules of this file:
- a failure is first sorted into an `Outcome` (what we know about it), then the table maps
  (outcome, request kind) to an `Action`; nothing else in the SDK decides whether to retry;
- a create is the only request that can be looked up (by its client token), so it is the only
  kind with LOOK_UP actions; a send-message whose fate is unknown is raised, never resent;
- a server hint longer than `RetryPolicy.max_retry_after` turns RETRY into RAISE (fail fast,
  `.retry_after` set): "come back later" is not something to wait for inside one call;
- pollers (`poll`, `wait`, the watcher) read the last column: what the engine could not absorb is
  ridden out (poll again later) or ends the iteration.
"""

from __future__ import annotations

import enum

from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    MalformedResponseError,
)

__all__ = ["TABLE", "Action", "Kind", "Outcome", "classify", "decide", "rides_out"]


class Kind(enum.Enum):
    """What a request does, which decides what may be repeated."""

    READ = "read"  # GET: safe to repeat
    IDEMPOTENT = "idempotent"  # same effect if repeated (PUT/POST tags, DELETE, archive)
    CREATE = "create"  # unsafe, but guarded by a client token that can be looked up
    UNSAFE = "unsafe"  # send message: a repeat may act twice and cannot be checked


class Outcome(enum.Enum):
    """What is known about a failed attempt."""

    UNSENT = "not sent"  # connect failed, or the deadline came while queued: never left
    LOST = "lost"  # the connection failed after sending: the server may have acted
    TIMEOUT = "timed out"  # sent, no answer in time: the server may still be acting
    REQUEST_TIMEOUT = "408"  # the server gave up reading: it did not act
    THROTTLED = "429"
    UNAVAILABLE = "503"  # not taken in
    INTERNAL = "500"  # the server failed somewhere: it may have acted
    GATEWAY = "502/504"  # a proxy lost the answer: the server may have acted
    OTHER_5XX = "other 5xx"
    CLIENT_ERROR = "4xx"  # the request is wrong (or not allowed): repeating will not help
    MALFORMED = "malformed 2xx"  # an answer came but cannot be read: the server acted


class Action(enum.Enum):
    """What to do about a failed attempt."""

    RETRY = "retry"  # send again, after backoff (or the server's hint)
    LOOK_UP = "look up"  # look the create's token up; send again only if no session has it
    LOOK_UP_ONLY = "look up only"  # the create may still be under way: look up, never resend
    RAISE = "raise"
    RIDE_OUT = "ride out"  # (pollers) keep polling at the backed-off cadence


R, L, W, X, P = Action.RETRY, Action.LOOK_UP, Action.LOOK_UP_ONLY, Action.RAISE, Action.RIDE_OUT

#: (READ, IDEMPOTENT, CREATE, UNSAFE, polling) per outcome. R retry, L look up, W look up
#: only (wait for it), X raise, P ride out (pollers).
TABLE: dict[Outcome, tuple[Action, Action, Action, Action, Action]] = {
    #                         READ IDEMP CREATE UNSAFE POLL
    Outcome.UNSENT:          (R,   R,    R,     R,     P),
    Outcome.LOST:            (R,   R,    L,     X,     P),
    Outcome.TIMEOUT:         (R,   R,    W,     X,     P),
    Outcome.REQUEST_TIMEOUT: (R,   R,    R,     R,     P),
    Outcome.THROTTLED:       (R,   R,    R,     R,     P),
    Outcome.UNAVAILABLE:     (R,   R,    R,     R,     P),
    Outcome.INTERNAL:        (R,   X,    L,     X,     P),
    Outcome.GATEWAY:         (R,   R,    L,     X,     P),
    Outcome.OTHER_5XX:       (X,   X,    X,     X,     P),
    Outcome.CLIENT_ERROR:    (X,   X,    X,     X,     X),
    Outcome.MALFORMED:       (X,   X,    L,     X,     P),
}

_COLUMN = {Kind.READ: 0, Kind.IDEMPOTENT: 1, Kind.CREATE: 2, Kind.UNSAFE: 3}
_STATUS = {
    408: Outcome.REQUEST_TIMEOUT,
    429: Outcome.THROTTLED,
    503: Outcome.UNAVAILABLE,
    500: Outcome.INTERNAL,
    502: Outcome.GATEWAY,
    504: Outcome.GATEWAY,
}


def classify(error: BaseException) -> Outcome | None:
    """Sort a failure into its Outcome (None: not a failure this table knows)."""
    if isinstance(error, APIStatusError):
        outcome = _STATUS.get(error.status)
        if outcome is not None:
            return outcome
        return Outcome.OTHER_5XX if error.status >= 500 else Outcome.CLIENT_ERROR
    if isinstance(error, APITimeoutError):
        return Outcome.TIMEOUT if error.sent else Outcome.UNSENT
    if isinstance(error, APIConnectionError):
        return Outcome.LOST if error.sent else Outcome.UNSENT
    if isinstance(error, MalformedResponseError):
        return Outcome.MALFORMED
    return None


def decide(kind: Kind, error: BaseException, max_retry_after: float) -> Action:
    """Return what the engine does after `error` on a request of `kind`."""
    outcome = classify(error)
    if outcome is None:
        return Action.RAISE
    action = TABLE[outcome][_COLUMN[kind]]
    hint = getattr(error, "retry_after", None)
    if action is Action.RETRY and hint is not None and hint > max_retry_after:
        return Action.RAISE  # "come back later": fail fast, `.retry_after` says when
    return action


def rides_out(error: BaseException) -> bool:
    """Return whether a poller keeps polling after `error` (else it ends the iteration)."""
    outcome = classify(error)
    return outcome is not None and TABLE[outcome][4] is Action.RIDE_OUT
