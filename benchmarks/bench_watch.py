"""Benchmark `client.watch()` over N = 100, 1,000, 10,000 sessions, and `wait()` on one session.

    .venv/bin/python -m benchmarks.bench_watch [--sizes 100,1000,10000] [--cycles 15]
    .venv/bin/python -m benchmarks --only watch   # the same figures in the shared table

Each measurement runs the fake server (`benchmarks._server_proc.ServerProcess`) and the client
in two fresh processes (loopback only), so the client's RSS and CPU are its own. The server seeds
N sessions `running/working` (last updated an hour ago) and flips a few of them every 0.1 s
(0.5 % of N per second, at least 10 per second) between `working` and `waiting_for_user`, so
every cycle has something to report. Printed per N, with targets: requests per poll cycle
(<= ceil(N/200)), RSS growth of the client (<= 64 MB), client CPU per cycle (the first,
unfiltered cycle and the steady `updated_after` cycles). Then `wait()`: HTTP requests made per
status change observed, the default PollPolicy run 20x faster on a server whose clock runs 20x
faster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import time
from typing import Any

from ._server_proc import ROOT, ServerProcess

TIME_SCALE_WAIT = 20.0
RSS_TARGET_MB = 64.0


def _rss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# -- the server process (benchmarks._server_proc) ----------------------------------------------

#: The seeded sessions: running/working, last updated an hour before the server started.
FIELDS: dict[str, Any] = {
    "status": "running",
    "status_detail": "working",
    "tags": ["bench"],
    "title": "Fix the flaky integration test in tests/test_api.py",
}
UPDATED_AGO = 3600
#: Sessions flipped per second: 0.5 % of N (at least one per 0.1 s tick).
CHURN = 0.005


def _server(n: int, *, time_scale: float = 1.0, churn: float = CHURN) -> ServerProcess:
    return ServerProcess(sessions=n, time_scale=time_scale, fields=FIELDS,
                         updated_ago=UPDATED_AGO, seed=1, max_log=100, churn=churn)


def _run_client(role: str, server: ServerProcess, **options: Any) -> dict[str, Any]:
    info = {"url": server.url, "api_key": server.api_key, "org_id": server.org_id}
    args = [sys.executable, "-m", "benchmarks.bench_watch", "--role", role,
            "--server", json.dumps(info)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    payload = json.dumps(server.session_ids)
    done = subprocess.run(
        args, input=payload, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {role} client failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_watch(n: int, cycles: int, interval: float) -> dict[str, Any]:
    """One Watcher over `n` churning sessions for `cycles` cycles (server and client processes)."""
    with _server(n) as server:
        return _run_client("watch", server, cycles=cycles, interval=interval)


def measure_wait(sessions: int) -> dict[str, Any]:
    """`sessions` sessions created and polled to the end of the default lifecycle (x20)."""
    with _server(0, time_scale=TIME_SCALE_WAIT, churn=0.0) as server:
        return _run_client("wait", server, wait_sessions=sessions)


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


# -- long runs: delta scans, checkpoints ---------------------------------------------------------

STEADY_N = 10_000
STEADY_CYCLES = 10
QUICK_STEADY_CYCLES = 6
STEADY_INTERVAL = 1.0
#: Server churn (share of N flipped per second): about 10 sessions per 1 s cycle, then nearly all.
FEW_CHURN = 10 / STEADY_N
MOST_CHURN = 2.0
FEW_TARGET = 2
CHECKPOINT_TARGET = 1_000_000


def measure_steady(n: int, churn: float, cycles: int, interval: float) -> dict[str, Any]:
    """One Watcher over `n` sessions, `churn` of them flipping per second: requests per cycle."""
    with _server(n, churn=churn) as server:
        return _run_client("steady", server, cycles=cycles, interval=interval)


async def _steady(info: dict[str, Any], ids: list[str], cycles: int, interval: float) -> None:
    from devin_async import PollPolicy

    per_cycle: dict[int, int] = {}
    watching: list[Any] = []

    def count(_event: Any) -> None:
        cycle = watching[0].stats.cycles if watching else 0
        per_cycle[cycle] = per_cycle.get(cycle, 0) + 1

    policy = PollPolicy(initial=interval, max=interval, multiplier=1.0, jitter=0.0)
    rss0, hwm0 = _rss_kb(), _rss_kb("VmHWM")
    async with _client(info, {"on_request": count}, poll=policy) as client:
        async with client.watch(ids, until=lambda _s: False) as watcher:
            watching.append(watcher)
            async for _event in watcher:
                if watcher.stats.cycles > cycles:
                    break
            checkpoint = json.dumps(watcher.checkpoint())
        stats = watcher.stats
    print(json.dumps({
        "n": len(ids), "cycles": cycles,
        "per_cycle": [per_cycle.get(c, 0) for c in range(1, cycles + 1)],
        "events": stats.events, "delta_cycles": stats.delta_cycles,
        "delta_abandoned": stats.delta_abandoned, "failed_cycles": stats.failed_cycles,
        "rss_growth_mb": (_rss_kb() - rss0) / 1024,
        "hwm_growth_mb": (_rss_kb("VmHWM") - hwm0) / 1024,
        "checkpoint_bytes": len(checkpoint.encode()),
    }))


def _steady_figures(few: dict[str, Any], most: dict[str, Any]) -> list[dict[str, Any]]:
    """Figures of the long-run group: delta scans, chunked fallback, RSS, checkpoint size."""
    n = few["n"]
    name = f"watch N={n:,}"
    chunks = math.ceil(most["n"] / 200)
    after = few["per_cycle"][1:]
    settled = most["per_cycle"][2:]
    growth = max(few["rss_growth_mb"], few["hwm_growth_mb"])

    def detail(r: dict[str, Any]) -> str:
        return (f"per cycle {r['per_cycle']}, {r['delta_cycles']} delta scans, "
                f"{r['delta_abandoned']} abandoned, {r['failed_cycles']} failed cycles, "
                f"{r['events']:,} events")

    return [
        {"figure": f"{name}, ~10 changing per cycle: requests per cycle after the first",
         "value": f"{max(after)} max / {sum(after) / len(after):.2f} mean",
         "target": f"<= {FEW_TARGET}", "ok": max(after) <= FEW_TARGET, "detail": detail(few)},
        {"figure": f"{name}, most changing per cycle: requests per cycle from the third",
         "value": f"{max(settled)} max", "target": f"<= {chunks}",
         "ok": max(settled) <= chunks, "detail": detail(most)},
        {"figure": f"{name} (delta scans): client RSS growth",
         "value": f"{few['rss_growth_mb']:.1f} MB", "target": f"<= {RSS_TARGET_MB:.0f} MB",
         "ok": growth <= RSS_TARGET_MB,
         "detail": f"peak (VmHWM) growth {few['hwm_growth_mb']:.1f} MB"},
        {"figure": f"{name}: checkpoint() as JSON",
         "value": f"{few['checkpoint_bytes'] / 1e3:.0f} kB",
         "target": f"< {CHECKPOINT_TARGET / 1e6:.0f} MB",
         "ok": few["checkpoint_bytes"] < CHECKPOINT_TARGET, "detail": ""},
    ]


def run_steady(*, quick: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Measure the long-run rows: (figures, raw results)."""
    cycles = QUICK_STEADY_CYCLES if quick else STEADY_CYCLES
    few = measure_steady(STEADY_N, FEW_CHURN, cycles, STEADY_INTERVAL)
    most = measure_steady(STEADY_N, MOST_CHURN, cycles, STEADY_INTERVAL)
    return _steady_figures(few, most), {"few": few, "most": most}


# -- the report --------------------------------------------------------------------------------

SIZES = "100,1000,10000"
CYCLES = 15
INTERVAL = 0.25
WAIT_SESSIONS = 5
#: `python -m benchmarks --quick`: two sizes, fewer cycles, fewer sessions waited on.
QUICK_SIZES, QUICK_CYCLES, QUICK_WAIT_SESSIONS = "1000,10000", 8, 2


def _verdicts(r: dict[str, Any]) -> tuple[float, int, float]:
    """Requests per cycle, its target, and the RSS growth held against RSS_TARGET_MB."""
    return (r["requests"] / r["cycles"], math.ceil(r["n"] / 200),
            max(r["rss_growth_mb"], r["hwm_growth_mb"]))


def _report_watch(r: dict[str, Any]) -> None:
    n = r["n"]
    per_cycle, target, growth = _verdicts(r)
    steady = r["cpu_steady_cycle_ms"]
    print(
        f"N = {n:>6,}  cycles {r['cycles']:>3}  events {r['events']:>6,}  "
        f"wall {r['wall_s']:.1f} s  failed cycles {r['failed_cycles']}"
    )
    print(
        f"    requests per cycle   {per_cycle:8.2f}   target <= {target:<4} "
        f"{'ok' if per_cycle <= target else 'OVER'}"
    )
    print(
        f"    client RSS growth    {r['rss_growth_mb']:8.1f} MB (peak {r['hwm_growth_mb']:.1f} "
        f"MB)   target <= {RSS_TARGET_MB:.0f} MB {'ok' if growth <= RSS_TARGET_MB else 'OVER'}"
    )
    print(
        f"    client CPU per cycle {r['cpu_first_cycle_ms']:8.1f} ms first (unfiltered), "
        + (f"{steady:.1f} ms steady (updated_after)" if steady is not None else "n/a steady")
    )


def _wait_line(r: dict[str, Any]) -> tuple[float, str]:
    ratio = r["requests"] / max(1, r["changes"])
    return ratio, (
        f"{r['sessions']} sessions through the default lifecycle (server x"
        f"{TIME_SCALE_WAIT:g}, default PollPolicy /{TIME_SCALE_WAIT:g}): {r['requests']} "
        f"requests for {r['changes']} status changes observed = {ratio:.1f} requests/change"
    )


def _figures(watches: list[dict[str, Any]], wait: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures of `python -m benchmarks` (same verdicts as the printed report)."""
    figures: list[dict[str, Any]] = []
    for r in watches:
        per_cycle, target, growth = _verdicts(r)
        name = f"watch N={r['n']:,}"
        steady = r["cpu_steady_cycle_ms"]
        figures += [
            {"figure": f"{name}: requests per poll cycle", "value": f"{per_cycle:.2f}",
             "target": f"<= {target}", "ok": per_cycle <= target,
             "detail": f"{r['requests']} requests in {r['cycles']} cycles, {r['events']:,} "
                       f"events, {r['failed_cycles']} failed cycles, wall {r['wall_s']:.1f} s"},
            {"figure": f"{name}: client RSS growth", "value": f"{r['rss_growth_mb']:.1f} MB",
             "target": f"<= {RSS_TARGET_MB:.0f} MB", "ok": growth <= RSS_TARGET_MB,
             "detail": f"peak (VmHWM) growth {r['hwm_growth_mb']:.1f} MB"},
            {"figure": f"{name}: client CPU per cycle, first (unfiltered) / steady",
             "value": f"{r['cpu_first_cycle_ms']:.1f} / "
                      + ("n/a" if steady is None else f"{steady:.1f}") + " ms",
             "target": "-", "ok": None, "detail": ""},
        ]
    ratio, line = _wait_line(wait)
    figures.append({"figure": "wait: HTTP requests per status change observed",
                    "value": f"{ratio:.1f}", "target": "-", "ok": None, "detail": line})
    return figures


def run(*, quick: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Measure for `python -m benchmarks`: (figures, raw results)."""
    sizes = QUICK_SIZES if quick else SIZES
    cycles = QUICK_CYCLES if quick else CYCLES
    sessions = QUICK_WAIT_SESSIONS if quick else WAIT_SESSIONS
    watches = [measure_watch(int(n), cycles, INTERVAL) for n in sizes.split(",")]
    wait = measure_wait(sessions)
    steady, steady_raw = run_steady(quick=quick)
    return _figures(watches, wait) + steady, {"watch": watches, "wait": wait,
                                                "steady": steady_raw}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=SIZES)
    parser.add_argument("--cycles", type=int, default=CYCLES)
    parser.add_argument("--interval", type=float, default=INTERVAL)
    parser.add_argument("--wait-sessions", type=int, default=WAIT_SESSIONS)
    parser.add_argument("--role", default="main", choices=["main", "watch", "wait", "steady"])
    parser.add_argument("--steady-only", action="store_true",
                        help="only the long-run rows (delta scans, checkpoint size)")
    parser.add_argument("--server", default="{}")
    args = parser.parse_args()
    if args.role == "steady":
        ids = json.loads(sys.stdin.read())
        asyncio.run(_steady(json.loads(args.server), ids, args.cycles, args.interval))
        return
    if args.steady_only:
        from . import __main__ as table

        table.print_table(run_steady(quick=args.cycles < STEADY_CYCLES)[0])
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
        _report_watch(measure_watch(n, args.cycles, args.interval))
    print(f"wait: {_wait_line(measure_wait(args.wait_sessions))[1]}")
    print(f"long runs: one Watcher over {STEADY_N:,} sessions, {STEADY_CYCLES} cycles every "
          f"{STEADY_INTERVAL:g} s, ~10 then most sessions changing per cycle")
    for figure in run_steady()[0]:
        print(f"    {figure['figure']}: {figure['value']} (target {figure['target']}) "
              f"{'ok' if figure['ok'] else 'OVER'}  {figure['detail']}")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
