"""Run the benchmark server in a child process, so it never shares the client's core time.

Every benchmark that needs a server starts it through `ServerProcess`. Two kinds of server:
- "fake": `devin_async.testing.FakeDevinServer`, the realistic one (routing, auth, validation,
  lifecycle, request log); per request it costs about as much CPU as an aiohttp client does.
  Options: a rate limit, random faults, sessions that change status on their own (churn).
- "minimal": a canned-answer HTTP/1.1 server on a bare asyncio Protocol, a few tens of
  microseconds per request, so the client is the bottleneck and client overhead shows in full.
  It answers every POST with a session JSON rendered once by a FakeDevinServer, and a GET of a
  seeded session with that session's JSON (rendered once at start; the client checks the id).

The child seeds `sessions` sessions, prints one JSON line (url, api_key, org_id, the seeded
session ids) once it listens, then serves until its stdin closes or it gets SIGTERM; so it also
ends if the parent dies. A `stats` line on its stdin gets one JSON line back (`stats()`).

    with ServerProcess(sessions=100) as server:
        server.url, server.api_key, server.org_id, server.session_ids
    with ServerProcess(sessions=0, rate_limit=100, fault_rate=0.1, fault_seed=5) as server:
        ...; server.stats()  # sessions, duplicate prompts, the server's counters
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devin_async.testing import FakeDevinServer

#: Fields of every seeded session: a realistic, not minimal, SessionResponse.
SEED_FIELDS: dict[str, Any] = {
    "tags": ["bench", "team-platform", "priority-high"],
    "title": "Fix the flaky integration test in tests/test_api.py",
    "pull_requests": [{"pr_url": "https://github.com/acme/api/pull/123", "pr_state": "open"}],
    "acus_consumed": 3.5,
    "status": "running",
    "status_detail": "working",
}

#: Churn: how often the flipping task wakes up, and the seed of its choice of sessions.
CHURN_TICKS_PER_SECOND = 10
CHURN_SEED = 2

#: The directory holding the `benchmarks` package: child processes run from it.
ROOT = str(Path(__file__).resolve().parent.parent)


class ServerProcess:
    """A benchmark server ("fake" or "minimal") in a child process (a context manager).

    Args:
        sessions: how many sessions to seed (their ids end up in `session_ids`).
        time_scale: server seconds per real second.
        kind: "fake" (FakeDevinServer) or "minimal" (canned answers; only the options above).
        fields: the seeded sessions' fields (default SEED_FIELDS).
        updated_ago: seed the sessions as last updated this many server seconds before the
            server started (and created ten minutes before that); default: now.
        seed: the FakeDevinServer's seed (session ids, credentials, lifecycle).
        max_log: how many requests the FakeDevinServer's request log keeps.
        rate_limit: requests per second per token (token bucket; None: unlimited).
        fault_rate: a share of requests that fail with a fault drawn from `fault_kinds`.
        fault_kinds, fault_endpoint, fault_seed: what `inject_random` gets (default kinds: the
            FakeDevinServer's).
        churn: a share of the seeded sessions per second (at least one per tick, ten ticks a
            second) flipped between `running/working` and `running/waiting_for_user`.
    """

    def __init__(self, *, sessions: int = 100, time_scale: float = 1.0, kind: str = "fake",
                 fields: Mapping[str, Any] | None = None, updated_ago: int | None = None,
                 seed: int = 0, max_log: int | None = None, rate_limit: float | None = None,
                 fault_rate: float = 0.0, fault_kinds: Sequence[str] | None = None,
                 fault_endpoint: str = "*", fault_seed: int | None = None,
                 churn: float = 0.0) -> None:
        if kind == "minimal" and (rate_limit or fault_rate or churn):
            raise ValueError("the minimal server has no rate limit, faults or churn")
        self.kind = kind
        args = ["--kind", kind, "--sessions", str(sessions), "--time-scale", str(time_scale),
                "--seed", str(seed)]
        if fields is not None:
            args += ["--fields", json.dumps(fields)]
        if updated_ago is not None:
            args += ["--updated-ago", str(updated_ago)]
        if max_log is not None:
            args += ["--max-log", str(max_log)]
        if rate_limit is not None:
            args += ["--rate-limit", str(rate_limit)]
        if fault_rate:
            args += ["--fault-rate", str(fault_rate), "--fault-endpoint", fault_endpoint]
            if fault_kinds is not None:
                args += ["--fault-kinds", ",".join(fault_kinds)]
            if fault_seed is not None:
                args += ["--fault-seed", str(fault_seed)]
        if churn:
            args += ["--churn", str(churn)]
        self._args = [sys.executable, "-m", "benchmarks._server_proc", *args]
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
        try:
            info = json.loads(self._readline())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.url, self.api_key, self.org_id = info["url"], info["api_key"], info["org_id"]
        self.session_ids = info["session_ids"]
        self.pid = proc.pid
        return self

    def _readline(self) -> str:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(5)
            raise RuntimeError(f"the server process exited ({proc.returncode}) unexpectedly")
        return line

    def stats(self) -> dict[str, Any]:
        """Ask the server: sessions, distinct create prompts, duplicates, the server's counters.

        (The minimal server answers `{"connections": N}`.)
        """
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write("stats\n")
        self._proc.stdin.flush()
        result: dict[str, Any] = json.loads(self._readline())
        return result

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
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


# -- the child process ------------------------------------------------------------------------


class _CannedHTTP(asyncio.Protocol):
    """HTTP/1.1 keep-alive: read each request head (and body), answer with canned bytes.

    `GET /__stats` answers `{"connections": N}`: the TCP connections accepted so far.
    """

    connections = 0

    def __init__(self, get: bytes, post: bytes, by_path: dict[bytes, bytes]) -> None:
        self._get, self._post, self._by_path = get, post, by_path
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
            elif head.startswith(b"post"):
                self._transport.write(self._post)
            else:  # a get of a seeded session answers with that session (ids must match)
                path = head[head.find(b" ") + 1:head.find(b" http/")]
                self._transport.write(self._by_path.get(path, self._get))
            buf = buf[end + 4 + length:]
        self._buf = buf


def _canned(body: bytes) -> bytes:
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nx-request-id: req_canned\r\n\r\n")
    return head.encode() + body


def _commands(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines read from stdin (in a thread), then None once it closes (or on SIGINT/SIGTERM)."""
    commands: asyncio.Queue[str | None] = asyncio.Queue()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, commands.put_nowait, None)

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    return commands


def _fake_stats(server: FakeDevinServer) -> dict[str, Any]:
    prompts = collections.Counter(
        server.create_request(sid).get("prompt") for sid in server.sessions)
    return {"sessions": server.session_count, "distinct_prompts": len(prompts),
            "duplicates": sum(n - 1 for n in prompts.values()), "stats": server.stats}


async def _churn(server: FakeDevinServer, ids: list[str], share: float) -> None:
    """Flip a few sessions between working and waiting_for_user every tick, forever."""
    rng = random.Random(CHURN_SEED)
    per_tick = min(len(ids), max(1, round(len(ids) * share / CHURN_TICKS_PER_SECOND)))
    while True:
        await asyncio.sleep(1 / CHURN_TICKS_PER_SECOND)
        for sid in rng.sample(ids, per_tick):
            detail = server.session(sid)["status_detail"]
            new = "waiting_for_user" if detail == "working" else "working"
            server.set_status(sid, "running", new)


async def _freeze_gc() -> None:
    """Move what the server holds so far out of the collector's sight, every second.

    The fake server keeps every session created, and the HTTP benchmark creates tens of
    thousands: the stdlib's full collections then walk all of them, pausing the server for up to
    half a second, and whichever contender is measured at that moment pays. Frozen objects are
    never walked again (what the frozen requests in flight leave behind is a few KB per second).
    """
    while True:
        await asyncio.sleep(1.0)
        gc.freeze()


async def _serve(args: argparse.Namespace) -> None:
    from devin_async.testing import FakeDevinServer

    loop = asyncio.get_running_loop()
    commands = _commands(loop)
    options: dict[str, Any] = {"time_scale": args.time_scale, "seed": args.seed,
                               "rate_limit": args.rate_limit}
    if args.max_log is not None:
        options["max_log"] = args.max_log
    fields = dict(SEED_FIELDS if args.fields is None else json.loads(args.fields))

    def seed(server: FakeDevinServer) -> list[str]:
        if args.updated_ago is not None:
            updated = int(server.now) - args.updated_ago
            fields.update(created_at=updated - 600, updated_at=updated)
        return server.add_sessions(args.sessions, **fields) if args.sessions else []

    async def answer(stats: Callable[[], dict[str, Any]]) -> None:
        while (command := await commands.get()) is not None:
            if command == "stats":
                print(json.dumps(stats()), flush=True)

    if args.kind == "minimal":
        fake = FakeDevinServer(**options)
        ids = seed(fake)
        # The first session's JSON (or, with no sessions seeded, a scratch one's).
        sample = fake.session(ids[0] if ids else fake.add_sessions(1, **fields)[0])
        body = json.dumps(sample, separators=(",", ":")).encode()
        created = dict(sample, status="new", status_detail=None)
        post = json.dumps(created, separators=(",", ":")).encode()
        prefix = f"/v3beta1/organizations/{fake.org_id}/sessions/".lower()
        by_path = {(prefix + sid.lower()).encode(): _canned(
            json.dumps(fake.session(sid), separators=(",", ":")).encode()) for sid in ids}
        tcp = await loop.create_server(
            lambda: _CannedHTTP(_canned(body), _canned(post), by_path), "127.0.0.1", 0)
        port = tcp.sockets[0].getsockname()[1]
        info = {"url": f"http://127.0.0.1:{port}", "api_key": fake.api_key,
                "org_id": fake.org_id, "session_ids": ids}
        print(json.dumps(info), flush=True)
        async with tcp:
            await answer(lambda: {"connections": _CannedHTTP.connections})
        return
    async with FakeDevinServer(**options) as server:
        ids = seed(server)
        if args.fault_rate:
            kinds = {} if args.fault_kinds is None else {"kinds": args.fault_kinds.split(",")}
            server.inject_random(args.fault_rate, seed=args.fault_seed,
                                 endpoint=args.fault_endpoint, **kinds)
        info = {"url": server.url, "api_key": server.api_key, "org_id": server.org_id,
                "session_ids": ids}
        print(json.dumps(info), flush=True)
        tasks = [asyncio.create_task(_freeze_gc())]
        if args.churn and ids:
            tasks.append(asyncio.create_task(_churn(server, ids, args.churn)))
        try:
            await answer(lambda: _fake_stats(server))
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("fake", "minimal"), default="fake")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--fields", help="the seeded sessions' fields, JSON (default SEED_FIELDS)")
    parser.add_argument("--updated-ago", type=int, help="seconds since the sessions were updated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-log", type=int)
    parser.add_argument("--rate-limit", type=float, help="requests per second per token")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-kinds", help="comma-separated (default: the server's)")
    parser.add_argument("--fault-endpoint", default="*")
    parser.add_argument("--fault-seed", type=int)
    parser.add_argument("--churn", type=float, default=0.0,
                        help="share of the seeded sessions flipped per second")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
