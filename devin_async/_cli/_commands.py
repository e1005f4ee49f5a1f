"""The command table: each command takes the parsed arguments and an Output, returns an exit code.

The commands live by job: `_oneshot` (create, get, list, message, terminate), `_watching` (wait,
watch), `_batch` (create-many), `_demo`; `serve-fake` (`_serve`) blocks in its own event loop,
so only `main()` runs it and it is not in this table.

`make_client` here is the one place the commands get their client (they look it up on this
module when they run), so a test or an embedding program can swap it in one spot.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from ._batch import cmd_create_many
from ._common import make_client
from ._display import Output
from ._oneshot import cmd_create, cmd_get, cmd_list, cmd_message, cmd_terminate
from ._watching import cmd_wait, cmd_watch

__all__ = ["COMMANDS", "Command", "make_client"]

Command = Callable[[argparse.Namespace, Output], Awaitable[int]]


async def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    """Run the demo against an in-process fake server."""
    from ._demo import run_demo  # the fake server is only imported for the demo

    return await run_demo(args, out)


COMMANDS: dict[str, Command] = {
    "create": cmd_create,
    "get": cmd_get,
    "list": cmd_list,
    "message": cmd_message,
    "terminate": cmd_terminate,
    "wait": cmd_wait,
    "watch": cmd_watch,
    "create-many": cmd_create_many,
    "demo": cmd_demo,
}
