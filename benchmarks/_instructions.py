"""Client instructions per request: a count that other load on the machine does not disturb.

Wall-clock ratios on a shared 2-core machine move by +-15 % from run to run; the number of
instructions the client executes per request does not. Two counters, whichever works here:

- `perf stat -e instructions:u` (real hardware counters; "not supported" on many VMs): each
  contender runs in its own child process twice, a short and a long run, and the difference is
  divided by the difference in requests, so start-up and imports cancel out.
- `valgrind --tool=callgrind` (counts every instruction it emulates, deterministic for the same
  interpreter and inputs): one child process runs under callgrind; before and after each measured
  segment it waits while the parent dumps the counters (`callgrind_control --dump`), so every
  segment is read exactly, start-up is paid once, and a short and a long segment per contender
  cancel the fixed cost of the hand-over.

Both measure the client only: the server is another process, not counted.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import AsyncExitStack
from typing import Any

from ._server_proc import ROOT, ServerProcess

#: Requests in the short and the long segment, by concurrency (callgrind; perf uses c=1 only).
SEGMENTS = {1: (50, 250), 50: (100, 500)}
PERF_SHORT, PERF_LONG = 50, 350


class _Info(ServerProcess):
    """A running server's coordinates, handed to a child process (which starts no server)."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(kind=info["kind"])
        self.url, self.api_key, self.org_id = info["url"], info["api_key"], info["org_id"]
        self.session_ids = info["session_ids"]


def _info(server: ServerProcess) -> dict[str, Any]:
    return {"kind": server.kind, "url": server.url, "api_key": server.api_key,
            "org_id": server.org_id, "session_ids": server.session_ids}


async def _segment(call: Any, count: int, concurrency: int) -> None:
    per = count // concurrency

    async def worker(start: int) -> None:
        for i in range(start, start + per):
            await call(i)

    await asyncio.gather(*(worker(k * per) for k in range(concurrency)))


async def _child(info: dict[str, Any], plan: list[tuple[str, int, int]], handshake: bool) -> None:
    """Run each (contender, concurrency, requests) of `plan`, handing over around each one."""
    from .bench_http import Contenders

    async with AsyncExitStack() as stack:
        contenders = Contenders(_Info(info), stack)
        await contenders.open(devinai=any(name.startswith("devinai") for name, _, _ in plan))
        for name, concurrency, count in plan:
            call = contenders.calls[name]
            await _segment(call, 2 * concurrency, concurrency)  # connections open, caches warm
            if handshake:  # blocking on purpose: nothing else runs while the parent dumps
                print("ready", flush=True)
                sys.stdin.readline()
            await _segment(call, count, concurrency)
            if handshake:
                print("done", flush=True)
                sys.stdin.readline()


def tool() -> str | None:
    """The instruction counter that works here: "perf", "callgrind", or None."""
    if shutil.which("perf"):
        out = subprocess.run(["perf", "stat", "-x", ",", "-e", "instructions:u", "true"],
                             capture_output=True, text=True, check=False)
        if any(f.split(",")[0].isdigit() for f in out.stderr.splitlines()):
            return "perf"
    if shutil.which("valgrind") and shutil.which("callgrind_control"):
        return "callgrind"
    return None


def _perf_run(info: str, name: str, count: int) -> int:
    plan = json.dumps([[name, 1, count]])
    out = subprocess.run(
        ["perf", "stat", "-x", ",", "-e", "instructions:u", sys.executable, "-m",
         "benchmarks._instructions", "--child", "--no-handshake"],
        input=f"{info}\n{plan}\n", capture_output=True, text=True, check=True, timeout=300,
        cwd=ROOT)
    for line in out.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("instructions") and fields[0].isdigit():
            return int(fields[0])
    raise RuntimeError(f"perf printed no instruction count: {out.stderr[-300:]}")


def _by_perf(info: str, names: list[str]) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for name in names:
        short, long = _perf_run(info, name, PERF_SHORT), _perf_run(info, name, PERF_LONG)
        out[name] = {1: (long - short) / (PERF_LONG - PERF_SHORT)}
    return out


def _dumped(path: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {path}")


def _by_callgrind(info: str, names: list[str]) -> dict[str, dict[int, float]]:
    plan = [(name, c, n) for name in names for c, pair in SEGMENTS.items() for n in pair]
    with tempfile.TemporaryDirectory(prefix="devin-bench-cg-") as tmp:
        out_file = os.path.join(tmp, "cg.out")
        child = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
             sys.executable, "-m", "benchmarks._instructions", "--child"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, cwd=ROOT)
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(f"{info}\n{json.dumps(plan)}\n")
            child.stdin.flush()
            dumps = 0
            segments: list[int] = []  # the dump number of each segment of the plan
            for _ in plan:
                for expected in ("ready", "done"):
                    line = child.stdout.readline().strip()
                    if line != expected:
                        raise RuntimeError(f"callgrind child said {line!r}, not {expected!r}")
                    subprocess.run(["callgrind_control", "--dump", str(child.pid)],
                                   capture_output=True, check=True, timeout=120)
                    dumps += 1
                    child.stdin.write("\n")
                    child.stdin.flush()
                segments.append(dumps)
            child.wait(timeout=300)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        files = {int(p.rsplit(".", 1)[1]): p for p in glob.glob(out_file + ".*")
                 if p.rsplit(".", 1)[1].isdigit()}
        counts = [_dumped(files[n]) for n in segments]
    out: dict[str, dict[int, float]] = {}
    for i in range(0, len(plan), 2):
        (name, c, short), (_, _, long) = plan[i], plan[i + 1]
        out.setdefault(name, {})[c] = (counts[i + 1] - counts[i]) / (long - short)
    return out


def count(server: ServerProcess, names: list[str]) -> tuple[str | None, dict[str, Any] | None]:
    """Count client instructions per request of each contender, by concurrency.

    Returns (the counter used, {contender: {concurrency: instructions}}), or (None, None) where
    neither counter works.
    """
    counter = tool()
    info = json.dumps(_info(server))
    try:
        if counter == "perf":
            return counter, _by_perf(info, names)
        if counter == "callgrind":
            return counter, _by_callgrind(info, names)
    except (subprocess.SubprocessError, RuntimeError, OSError, KeyError) as exc:
        print(f"instruction count failed ({counter}): {exc}", file=sys.stderr)
    return None, None


#: (numerator, denominator) of each figure: devin_async's count over its baseline's.
PAIRS = (("sdk_get", "raw_get"), ("sdk_get_std", "raw_get"), ("sdk_create", "raw_create"),
         ("sdk_create_std", "raw_create"), ("devinai_get", "sdk_get"))


def figures(counter: str | None, counts: dict[str, Any] | None,
            label: Any) -> list[dict[str, Any]]:
    """The table rows: instructions per request of a contender over its baseline's."""
    if counts is None:
        return [{"figure": "client instructions per request: no counter here (perf, valgrind)",
                 "value": "-", "target": "-", "ok": None, "raw": None, "detail": ""}]
    out = []
    for a, b in PAIRS:
        if a not in counts or b not in counts:
            continue
        for c in sorted(counts[a]):
            if c not in counts[b]:
                continue
            x, y = counts[a][c], counts[b][c]
            out.append({
                "figure": f"client instructions/request c={c} ({counter}): "
                          f"{label(a)} / {label(b)}",
                "value": f"{x / y:.2f}x", "target": "-", "ok": None, "raw": x / y,
                "detail": f"{x / 1e3:.0f}k vs {y / 1e3:.0f}k instructions; "
                          f"as a throughput ratio {y / x:.2f}x"})
    return out


def run(*, devinai: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Count every contender on the minimal server (where the client is the bottleneck)."""
    from devin_async import _json

    from .bench_http import _label

    names = ["raw_get", "sdk_get", "raw_create", "sdk_create"]
    if _json.codec() != "json":
        names += ["sdk_get_std", "sdk_create_std"]
    if devinai:
        try:
            import devin_sdk  # noqa: F401
            names.append("devinai_get")
        except ImportError:
            pass
    with ServerProcess(sessions=100, kind="minimal") as server:
        counter, counts = count(server, names)
    return figures(counter, counts, _label), {"counter": counter, "per_request": counts}


def main() -> None:
    """Print the figures; as `--child`, run a plan read from stdin (the counted process)."""
    if "--child" not in sys.argv:
        from .__main__ import print_table

        print_table(run()[0])
        return
    info = json.loads(sys.stdin.readline())
    plan = [tuple(step) for step in json.loads(sys.stdin.readline())]
    asyncio.run(_child(info, plan, handshake="--no-handshake" not in sys.argv))


if __name__ == "__main__":
    main()
