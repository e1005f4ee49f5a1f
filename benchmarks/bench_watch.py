"""Benchmark `client.watch()` over N = 100, 1,000, 10,000 sessions, and `wait()` on one session.

    .venv/bin/python -m benchmarks.bench_watch [--sizes 100,1000,10000] [--cycles 15]

Each measurement runs the fake server and the client in two fresh processes (loopback only), so
the client's RSS and CPU are its own. The server seeds N sessions `running/working` (last
updated an hour ago) and flips a
few of them every 0.1 s (0.5 % of N per second, at least 10 per second) between `working` and
`waiting_for_user`, so every cycle has something to report. Printed per N, with targets:
requests per poll cycle (<= ceil(N/200)), RSS growth of the client (<= 64 MB), client CPU per
cycle (the first, unfiltered cycle and the steady `updated_after` cycles). Then `wait()`: HTTP
requests made per status change observed, the default PollPolicy run 20x faster on a server
whose clock runs 20x faster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import subprocess
import sys
import time
from typing import Any

TIME_SCALE_WAIT = 20.0
RSS_TARGET_MB = 64.0


def _rss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# -- the server process -----------------------------------------------------------------------


async def _serve(n: int, time_scale: float, churn: bool) -> None:
    from devin_async.testing import FakeDevinServer

    async with FakeDevinServer(time_scale=time_scale, max_log=100, seed=1) as server:
        hour_ago = int(server.now) - 3600  # sessions that have been running for a while
        ids = (
            server.add_sessions(
                n,
                status="running",
                status_detail="working",
                tags=["bench"],
                title="Fix the flaky integration test in tests/test_api.py",
                created_at=hour_ago - 600,
                updated_at=hour_ago,
            )
            if n
            else []
        )
        print(
            json.dumps(
                {"url": server.url, "api_key": server.api_key, "org_id": server.org_id, "ids": ids}
            ),
            flush=True,
        )
        loop = asyncio.get_running_loop()
        stdin_closed = loop.run_in_executor(None, sys.stdin.read)
        rng = random.Random(2)
        per_tick = max(1, round(n * 0.005 / 10))
        while not stdin_closed.done():
            await asyncio.sleep(0.1)
            if churn and ids:
                for sid in rng.sample(ids, per_tick):
                    detail = server.session(sid)["status_detail"]
                    new = "waiting_for_user" if detail == "working" else "working"
                    server.set_status(sid, "running", new)


class _Server:
    """The fake server in a child process; ends when its stdin closes."""

    def __init__(self, n: int, *, time_scale: float = 1.0, churn: bool = True) -> None:
        self.args = [
            sys.executable,
            "-m",
            "benchmarks.bench_watch",
            "--role",
            "server",
            "--n",
            str(n),
            "--time-scale",
            str(time_scale),
        ] + ([] if churn else ["--no-churn"])
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> _Server:
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake server process did not start")
        self.info = json.loads(line)
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(5)
        proc.stdout.close()


def _run_client(role: str, server: _Server, **options: Any) -> dict[str, Any]:
    args = [
        sys.executable,
        "-m",
        "benchmarks.bench_watch",
        "--role",
        role,
        "--server",
        json.dumps({k: v for k, v in server.info.items() if k != "ids"}),
    ]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    payload = json.dumps(server.info["ids"])
    done = subprocess.run(
        args, input=payload, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {role} client failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the client processes ---------------------------------------------------------------------


def _client(info: dict[str, Any], hooks: dict[str, Any], **kw: Any) -> Any:
    from devin_async import DevinClient

    return DevinClient(info["api_key"], org_id=info["org_id"], base_url=info["url"], **hooks, **kw)


async def _watch(info: dict[str, Any], ids: list[str], cycles: int, interval: float) -> None:
    from devin_async import PollPolicy

    sent = [0]
    policy = PollPolicy(initial=interval, max=interval, multiplier=1.0, jitter=0.0)
    rss0, hwm0 = _rss_kb(), _rss_kb("VmHWM")
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    marks: dict[int, float] = {}
    events = 0
    async with _client(
        info, {"on_request": lambda _e: sent.__setitem__(0, sent[0] + 1)}, poll=policy
    ) as client:
        async with client.watch(ids, until=lambda _s: False) as watcher:
            async for _event in watcher:
                events += 1
                marks.setdefault(watcher.stats.cycles, time.process_time())
                if watcher.stats.cycles >= cycles:
                    break
        stats = watcher.stats
    wall = time.perf_counter() - wall0
    first = marks[min(marks)] - cpu0
    steady_from = min((c for c in marks if c >= 3), default=None)
    last = max(marks)
    steady = None
    if steady_from is not None and last > steady_from:
        steady = (marks[last] - marks[steady_from]) / (last - steady_from)
    print(
        json.dumps(
            {
                "n": len(ids),
                "cycles": stats.cycles,
                "requests": sent[0],
                "events": events,
                "watcher_requests": stats.requests,
                "failed_cycles": stats.failed_cycles,
                "rss_growth_mb": (_rss_kb() - rss0) / 1024,
                "hwm_growth_mb": (_rss_kb("VmHWM") - hwm0) / 1024,
                "cpu_first_cycle_ms": first * 1e3,
                "cpu_steady_cycle_ms": None if steady is None else steady * 1e3,
                "wall_s": wall,
            }
        )
    )


async def _wait(info: dict[str, Any], sessions: int) -> None:
    from devin_async import PollPolicy

    default = PollPolicy()
    policy = PollPolicy(
        initial=default.initial / TIME_SCALE_WAIT,
        max=default.max / TIME_SCALE_WAIT,
        multiplier=default.multiplier,
        jitter=default.jitter,
    )
    gets = [0]

    def count(event: Any) -> None:
        if event.method == "GET":
            gets[0] += 1

    changes = 0
    async with _client(info, {"on_request": count}, poll=policy) as client:
        for i in range(sessions):
            created = await client.sessions.create(f"Benchmark task {i}")
            seen = [s async for s in client.sessions.poll(created.session_id)]
            changes += len(seen) - 1
    print(json.dumps({"sessions": sessions, "requests": gets[0], "changes": changes}))


# -- the report --------------------------------------------------------------------------------


def _report_watch(r: dict[str, Any]) -> None:
    n = r["n"]
    target = math.ceil(n / 200)
    per_cycle = r["requests"] / r["cycles"]
    steady = r["cpu_steady_cycle_ms"]
    print(
        f"N = {n:>6,}  cycles {r['cycles']:>3}  events {r['events']:>6,}  "
        f"wall {r['wall_s']:.1f} s  failed cycles {r['failed_cycles']}"
    )
    print(
        f"    requests per cycle   {per_cycle:8.2f}   target <= {target:<4} "
        f"{'ok' if per_cycle <= target else 'OVER'}"
    )
    growth = max(r["rss_growth_mb"], r["hwm_growth_mb"])
    print(
        f"    client RSS growth    {r['rss_growth_mb']:8.1f} MB (peak {r['hwm_growth_mb']:.1f} "
        f"MB)   target <= {RSS_TARGET_MB:.0f} MB {'ok' if growth <= RSS_TARGET_MB else 'OVER'}"
    )
    print(
        f"    client CPU per cycle {r['cpu_first_cycle_ms']:8.1f} ms first (unfiltered), "
        + (f"{steady:.1f} ms steady (updated_after)" if steady is not None else "n/a steady")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--cycles", type=int, default=15)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--wait-sessions", type=int, default=5)
    parser.add_argument("--role", default="main", choices=["main", "server", "watch", "wait"])
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--no-churn", action="store_true")
    parser.add_argument("--server", default="{}")
    args = parser.parse_args()
    if args.role == "server":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args.n, args.time_scale, not args.no_churn))
        return
    if args.role in ("watch", "wait"):
        info = json.loads(args.server)
        if args.role == "watch":
            ids = json.loads(sys.stdin.read())
            asyncio.run(_watch(info, ids, args.cycles, args.interval))
        else:
            asyncio.run(_wait(info, args.wait_sessions))
        return
    started = time.perf_counter()
    print(
        f"watch: one Watcher over N sessions, {args.cycles} cycles every "
        f"{args.interval:g} s, churn 0.5 %/s of N (>= 10/s); server and client in separate "
        "processes on loopback"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        with _Server(n) as server:
            _report_watch(_run_client("watch", server, cycles=args.cycles, interval=args.interval))
    with _Server(0, time_scale=TIME_SCALE_WAIT, churn=False) as server:
        r = _run_client("wait", server, wait_sessions=args.wait_sessions)
    ratio = r["requests"] / max(1, r["changes"])
    print(
        f"wait: {r['sessions']} sessions through the default lifecycle (server x"
        f"{TIME_SCALE_WAIT:g}, default PollPolicy /{TIME_SCALE_WAIT:g}): {r['requests']} "
        f"requests for {r['changes']} status changes observed = {ratio:.1f} requests/change"
    )
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
