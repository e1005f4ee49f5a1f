"""`serve-fake`: a FakeDevinServer on a local port until Ctrl-C, with an optional request log.

It blocks in its own event loop (so only `main()` runs it). The credentials it accepts come from
--api-key/--org-id or DEVIN_API_KEY/DEVIN_ORG_ID when given (so a shell already configured for it
keeps working across restarts), else from --seed. `--log` polls the server's request log: the
fake server is not ours to wrap, and a 50 ms poll is plenty for a human reading it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any
from urllib.parse import urlencode

from devin_async.testing import FakeDevinServer, RecordedRequest

from ._common import UsageError, setting

__all__ = ["serve_fake"]

LOG_INTERVAL = 0.05  # seconds between looks at the request log


def serve_fake(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; return 0.

    Raises:
        UsageError: a client-only flag (--base-url), or the address cannot be served.
    """
    if args.base_url is not None:
        raise UsageError("serve-fake serves the API, --base-url is for clients: "
                         "use --host and --port")
    options: dict[str, Any] = {
        "host": args.host, "port": args.port, "time_scale": args.time_scale,
        "rate_limit": args.rate_limit, "seed": args.seed,
        "api_key": setting(args.api_key, "DEVIN_API_KEY"),
        "org_id": setting(args.org_id, "DEVIN_ORG_ID"),
    }
    try:
        asyncio.run(_serve(options, log=args.log, json_mode=args.json))
    except OSError as exc:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: "
                         f"{exc.strerror or exc}") from None
    return 0


def _say(text: str) -> None:
    print(text, flush=True)


def _announce(server: FakeDevinServer, json_mode: bool) -> None:
    if json_mode:
        _say(json.dumps({"base_url": server.url, "api_key": server.api_key,
                         "org_id": server.org_id}))
        return
    _say(f"export DEVIN_BASE_URL={server.url} DEVIN_API_KEY={server.api_key} "
         f"DEVIN_ORG_ID={server.org_id}")
    _say(f"# a fake Devin API on {server.url} (time x{server.time_scale:g}); "
         "copy the line above into another shell. Ctrl-C stops it.")


def _log_line(entry: RecordedRequest, json_mode: bool) -> str:
    path = entry.path + (f"?{urlencode(entry.query)}" if entry.query else "")
    if json_mode:
        return json.dumps({"method": entry.method, "path": path, "status": entry.status,
                           "fault": entry.fault}, separators=(",", ":"))
    status = str(entry.status) if entry.status is not None else "dropped"
    fault = f" [{entry.fault}]" if entry.fault else ""
    return f"{entry.method} {path} {status}{fault}"


def _print_log(server: FakeDevinServer, json_mode: bool, seen: int) -> int:
    total = server.stats.get("requests", 0)
    new = total - seen
    if new > 0:
        for entry in server.requests[-new:]:
            _say(_log_line(entry, json_mode))
    return total


async def _follow_log(server: FakeDevinServer, json_mode: bool) -> None:
    seen = 0
    try:
        while True:
            await asyncio.sleep(LOG_INTERVAL)
            seen = _print_log(server, json_mode, seen)
    finally:
        _print_log(server, json_mode, seen)


async def _serve(options: dict[str, Any], *, log: bool, json_mode: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with FakeDevinServer(**options) as server:
        _announce(server, json_mode)
        follower = asyncio.create_task(_follow_log(server, json_mode)) if log else None
        try:
            await stop.wait()
        finally:
            if follower is not None:
                follower.cancel()
                await asyncio.wait([follower])
    sys.stdout.flush()
