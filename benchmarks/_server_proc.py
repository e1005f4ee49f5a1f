"""Run the benchmark server in a child process, so it never shares the client's core time.

Two kinds of server:
- "fake": `devin_async.testing.FakeDevinServer`, the realistic one (routing, auth, validation,
  lifecycle, request log); per request it costs about as much CPU as an aiohttp client does.
- "minimal": a canned-answer HTTP/1.1 server on a bare asyncio Protocol, a few tens of
  microseconds per request, so the client is the bottleneck and client overhead shows in full.
  It answers every GET and every POST with a session JSON rendered once by a FakeDevinServer.

The child prints one JSON line (url, api_key, org_id, the seeded session ids) once it listens,
then serves until its stdin closes or it gets SIGTERM; so it also ends if the parent dies.

    with ServerProcess(sessions=100) as server:
        server.url, server.api_key, server.org_id, server.session_ids
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

#: Fields of every seeded session: a realistic, not minimal, SessionResponse.
SEED_FIELDS: dict[str, Any] = {
    "tags": ["bench", "team-platform", "priority-high"],
    "title": "Fix the flaky integration test in tests/test_api.py",
    "pull_requests": [{"pr_url": "https://github.com/acme/api/pull/123", "pr_state": "open"}],
    "acus_consumed": 3.5,
    "status": "running",
    "status_detail": "working",
}


#: The directory holding the `benchmarks` package: child processes run from it.
ROOT = str(Path(__file__).resolve().parent.parent)


class ServerProcess:
    """A benchmark server ("fake" or "minimal") in a child process (a context manager)."""

    def __init__(self, *, sessions: int = 100, time_scale: float = 1.0,
                 kind: str = "fake") -> None:
        self.kind = kind
        self._args = [sys.executable, "-m", "benchmarks._server_proc", "--kind", kind,
                      "--sessions", str(sessions), "--time-scale", str(time_scale)]
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.api_key = ""
        self.org_id = ""
        self.session_ids: list[str] = []
        self.pid = 0

    def __enter__(self) -> ServerProcess:
        proc = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, cwd=ROOT)
        self._proc = proc
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(5)
            raise RuntimeError(f"the server process exited ({proc.returncode}) before listening")
        info = json.loads(line)
        self.url, self.api_key, self.org_id = info["url"], info["api_key"], info["org_id"]
        self.session_ids = info["session_ids"]
        self.pid = proc.pid
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


class _CannedHTTP(asyncio.Protocol):
    """HTTP/1.1 keep-alive: read each request head (and body), answer with canned bytes.

    `GET /__stats` answers `{"connections": N}`: the TCP connections accepted so far.
    """

    connections = 0

    def __init__(self, get: bytes, post: bytes) -> None:
        self._get, self._post = get, post
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        _CannedHTTP.connections += 1

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17:stop if stop >= 0 else None])
            if len(buf) < end + 4 + length:
                break
            assert self._transport is not None
            if head.startswith(b"get /__stats "):
                self._transport.write(_canned(b'{"connections":%d}' % _CannedHTTP.connections))
            else:
                self._transport.write(self._post if head.startswith(b"post") else self._get)
            buf = buf[end + 4 + length:]
        self._buf = buf


def _canned(body: bytes) -> bytes:
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nx-request-id: req_canned\r\n\r\n")
    return head.encode() + body


async def _serve(kind: str, sessions: int, time_scale: float) -> None:
    from devin_async.testing import FakeDevinServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    # stdin closing (the parent is done, or died) stops the server too.
    def watch_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    if kind == "minimal":
        fake = FakeDevinServer(time_scale=time_scale)
        ids = fake.add_sessions(sessions, **SEED_FIELDS)
        body = json.dumps(fake.session(ids[0]), separators=(",", ":")).encode()
        created = dict(fake.session(ids[0]), status="new", status_detail=None)
        post = json.dumps(created, separators=(",", ":")).encode()
        tcp = await loop.create_server(lambda: _CannedHTTP(_canned(body), _canned(post)),
                                       "127.0.0.1", 0)
        port = tcp.sockets[0].getsockname()[1]
        info = {"url": f"http://127.0.0.1:{port}", "api_key": fake.api_key,
                "org_id": fake.org_id, "session_ids": ids}
        print(json.dumps(info), flush=True)
        async with tcp:
            await stop.wait()
        return
    async with FakeDevinServer(time_scale=time_scale) as server:
        ids = server.add_sessions(sessions, **SEED_FIELDS)
        info = {"url": server.url, "api_key": server.api_key, "org_id": server.org_id,
                "session_ids": ids}
        print(json.dumps(info), flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=("fake", "minimal"), default="fake")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.kind, args.sessions, args.time_scale))


if __name__ == "__main__":
    main()
