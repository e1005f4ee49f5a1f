"""Typed results: `result()`, `run()` and `ask()` on top of create, wait and messages.

- `result` waits (poll semantics, the default `until`: settled), then structures the session's
  `structured_output` into `output_type` (strict: `_output.structure_output`).
- `run` is create (the schema derived from `output_type` unless one is given) + wait + result. A
  session that ends in `error` raises `SessionFailedError`, which names the session.
- `ask` sends a message, then follows the conversation from that point and returns the first
  message from Devin that came after ours.
Everything here is built from the public calls: no request of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._enums import SessionStatus
from ._errors import DevinError, StructuredOutputError, WaitTimeoutError
from ._models import Message, Session
from ._output import RunResult, describe_error, structure_output

if TYPE_CHECKING:
    from ._sessions import Sessions

__all__ = ["SessionFailedError", "ask", "result", "run"]


class SessionFailedError(DevinError):
    """A session created by `run()` ended in `error`; `.session` (and `.session_id`) say which."""

    def __init__(self, message: str, *, session: Session) -> None:
        super().__init__(message)
        self.session = session
        self.session_id = session.session_id


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or not timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")


def output_of(session: Session, output_type: type[Any] | None) -> Any:
    """Return the session's structured output structured into `output_type`.

    Raises:
        StructuredOutputError: no output, or one that does not fit `output_type`.
    """
    raw = session.structured_output
    if raw is None:
        raise StructuredOutputError(
            f"session {session.session_id} settled ({session.status.value}) without a "
            "structured output", session=session, raw=None)
    try:
        return structure_output(raw, output_type)
    except Exception as exc:
        name = getattr(output_type, "__name__", repr(output_type))
        raise StructuredOutputError(
            f"the structured output of session {session.session_id} does not fit {name}: "
            f"{describe_error(exc)}", session=session, raw=raw) from exc


async def result(sessions: Sessions, session_id: str, output_type: type[Any] | None = None, *,
                 timeout: float | None = None) -> Any:
    """Wait until the session settles; return its structured output (see `output_of`)."""
    _check_timeout(timeout)
    if output_type is not None:
        from ._schema import schema_for

        schema_for(output_type)  # an unusable type is a ValueError before any request
    session = await sessions.wait(session_id, timeout=timeout)
    return output_of(session, output_type)


async def run(sessions: Sessions, prompt: str, *, output_type: type[Any] | None = None,
              timeout: float | None = None, until: Callable[[Session], bool] | None = None,
              **fields: Any) -> RunResult[Any]:
    """Create a session, wait for it, and return `RunResult(session, output)`."""
    _check_timeout(timeout)
    if output_type is not None and fields.get("structured_output_schema") is None:
        fields["structured_output_schema"] = output_type
    created = await sessions.create(prompt, **fields)
    session = await sessions.wait(created.session_id, until=until, timeout=timeout)
    if session.status is SessionStatus.ERROR:
        raise SessionFailedError(
            f"session {session.session_id} ended in error"
            + (f" ({session.status_detail.value})" if session.status_detail else ""),
            session=session)
    if output_type is None and fields.get("structured_output_schema") is None:
        return RunResult(session, session.structured_output)
    return RunResult(session, output_of(session, output_type))


async def ask(sessions: Sessions, session_id: str, message: str, *,
              timeout: float | None = None) -> Message:
    """Send `message`, then return the first message from Devin created after it.

    Raises:
        WaitTimeoutError: no reply within `timeout` (`.last_session` is the session).
    """
    _check_timeout(timeout)
    engine = sessions.engine
    before = {m.event_id async for m in sessions.messages(session_id)}
    session = await sessions.send_message(session_id, message)
    deadline = None if timeout is None else engine.clock() + timeout
    follower = sessions.follow_messages(session_id, deadline=deadline)
    ours: Message | None = None
    try:
        async for item in follower:
            if item.event_id in before:
                continue
            if ours is None:
                # Only what comes after our own message counts: a reply Devin was already
                # writing before ours arrived is not the answer to it.
                if item.source == "user" and item.message == message:
                    ours = item
                continue
            if item.source == "devin" and item.created_at >= ours.created_at:
                return item
    finally:
        await follower.aclose()
    try:
        session = await sessions.get(session_id)
    except DevinError:
        pass
    raise WaitTimeoutError(
        f"no reply from Devin in session {session_id} within {timeout} s"
        if timeout is not None else f"session {session_id} ended without a reply",
        last_session=session)
