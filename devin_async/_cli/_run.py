"""`run` (create, wait, print the result) and `ask` (send a message, print Devin's reply).

`run` is the SDK's `sessions.run()` spelled out in public calls (create, then poll), so the live
status line can show the session from the moment it exists (Ctrl-C then still tells you its id).
What it prints on stdout: with `--schema`, only the structured output, as JSON (a failure leaves
stdout empty; the error on stderr names the session); without, the final session, also when it
failed or the wait timed out (as `wait` does). Exit codes as `wait`'s, plus 3 for a session that
settled without a structured output.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from devin_async import (
    Message,
    Session,
    SessionFailedError,
    SessionStatus,
    StructuredOutputError,
    WaitTimeoutError,
)

from . import _commands  # its make_client, looked up at call time
from ._attach import attach_files, check_files
from ._common import UNTIL, UsageError, poll_policy
from ._display import Output, model_dict, status_cell
from ._oneshot import create_request
from ._text import Cell, Text, elapsed_text

__all__ = ["cmd_ask", "cmd_run", "read_schema"]


def read_schema(value: str) -> dict[str, Any]:
    """Return the JSON Schema of `--schema`: a file's contents, or inline JSON (`{...}`).

    Raises:
        UsageError: the file cannot be read, is not JSON, or is not a JSON object.
    """
    where = "--schema"
    if value.lstrip().startswith("{"):
        text = value
    else:
        where = f"--schema {value}"
        try:
            with open(value, encoding="utf-8-sig") as handle:
                text = handle.read()
        except OSError as exc:
            raise UsageError(f"cannot read {where}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise UsageError(f"{where} is not UTF-8 text (byte {exc.start})") from None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where} is not JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}") from None
    if not isinstance(schema, dict):
        raise UsageError(f"{where} must be a JSON Schema object, got {type(schema).__name__}")
    return schema


def _output_of(session: Session) -> Any:
    raw = session.structured_output
    if raw is None:
        raise StructuredOutputError(
            f"session {session.session_id} settled ({session.status.value}) without a "
            "structured output", session=session, raw=None)
    return raw


def _print_output(out: Output, output: Any) -> None:
    if out.json_mode and isinstance(output, dict):
        out.json(output)
    elif out.json_mode:
        out.line(json.dumps(output))
    else:
        out.lines(json.dumps(output, indent=2, ensure_ascii=False).splitlines())


async def cmd_run(args: argparse.Namespace, out: Output) -> int:
    """Create a session, wait until it settles (or ends), print its output or the session."""
    schema = read_schema(args.schema) if args.schema is not None else None
    request = create_request(args, schema)
    files = check_files(args.attach)
    until = UNTIL[args.until]
    last: Session | None = None

    def render() -> Text:
        sid = last.session_id if last is not None else "creating"
        return [f"{sid}  ", status_cell(last), f"  · {elapsed_text(out.elapsed())}"]

    failure: Exception | None = None
    async with _commands.make_client(args) as client, out.view(render) as view:
        request = await attach_files(client, request, files)
        last = await client.sessions.create(request)
        out.event([f"{last.session_id} created ", status_cell(last)])
        view.update()
        try:
            async for session in client.sessions.poll(
                last.session_id, until=until, policy=poll_policy(args), timeout=args.timeout
            ):
                if session.status_detail != last.status_detail or \
                        session.status != last.status:
                    out.event([f"{session.session_id} ", status_cell(session)])
                last = session
                view.update()
        except WaitTimeoutError as exc:
            last = exc.last_session or last
            failure = exc
    if failure is None and last.status == SessionStatus.ERROR:
        detail = f" ({last.status_detail.value})" if last.status_detail else ""
        failure = SessionFailedError(f"session {last.session_id} ended in error{detail}",
                                     session=last)
    if schema is None:
        out.session(last)
    elif failure is None:
        _print_output(out, _output_of(last))
    if failure is not None:
        raise failure
    return 0


async def cmd_ask(args: argparse.Namespace, out: Output) -> int:
    """Send a message and print Devin's first reply after it (exit 5 if none in --timeout)."""
    text: str = sys.stdin.read() if args.text == "-" else args.text

    def render() -> Text:
        return [f"{args.id}  ", Cell("waiting for Devin's reply", "active"),
                f"  · {elapsed_text(out.elapsed())}"]

    async with _commands.make_client(args, poll=poll_policy(args)) as client, out.view(render):
        reply: Message = await client.sessions.ask(args.id, text, timeout=args.timeout)
    if out.json_mode:
        out.json(model_dict(reply))
    else:
        out.lines(reply.message.splitlines() or [""])
    return 0
