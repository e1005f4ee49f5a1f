"""Running a FakeDevinServer as its own process: `serve_forever` (behind `devin-async serve-fake`).

All state lives in that process, so clients may come and go (and restart) while sessions, tokens
and counters stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from ._server import FakeDevinServer


def serve_forever(
    host: str = "127.0.0.1", port: int = 0, *, time_scale: float = 1.0,
    rate_limit: float | None = None, api_key: str | None = None, org_id: str | None = None,
    seed: int | None = None, **options: Any,
) -> None:
    """Serve a FakeDevinServer until Ctrl-C or SIGTERM (blocking); print one line saying where.

    `options` are further FakeDevinServer keywords (index_lag, stale_fraction, stale_by,
    close_idle_after, download_mode, error_style, ...).
    """
    asyncio.run(_serve(host, port, time_scale=time_scale, rate_limit=rate_limit, api_key=api_key,
                       org_id=org_id, seed=seed, **options))


async def _serve(host: str, port: int, **options: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with FakeDevinServer(host=host, port=port, **options) as server:
        print(f"Fake Devin server: DEVIN_BASE_URL={server.url} DEVIN_API_KEY={server.api_key} "
              f"DEVIN_ORG_ID={server.org_id}", flush=True)
        await stop.wait()
