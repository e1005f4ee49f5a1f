"""Run devin_async's benchmarks and print each figure beside its target.

    python -m benchmarks                  # every group (about 6 minutes on 2 cores)
    python -m benchmarks --only http      # one group: import, decode, http, instructions,
                                          # tracing, watch, fanout, resume
    python -m benchmarks --only watch --only fanout   # --only repeats: several groups
    python -m benchmarks --quick          # fewer, shorter rounds (a smoke run)
    python -m benchmarks --fake-only --no-devinai --no-perf   # narrower HTTP group
    python -m benchmarks --profile sdk_get --concurrency 1   # pyinstrument call tree, then exit

Each group also runs alone, printing its own report:

    python -m benchmarks.bench_import     # import time
    python -m benchmarks.bench_decode     # decoding and memory
    python -m benchmarks.bench_http       # HTTP throughput
    python -m benchmarks._instructions    # client instructions per request (perf or callgrind)
    python -m benchmarks.bench_tracing    # tracing off, on the API's no-op tracer, recording
    python -m benchmarks.bench_watch [--sizes 100,1000,10000] [--cycles 15]   # watch(), wait()
    python -m benchmarks.bench_fanout     # create_many under a rate limit and under faults
    python -m benchmarks.bench_resume     # resume a 1,000-request batch with 600 done
    python -m benchmarks._server_proc --help   # the benchmark server alone (a JSON line, then
                                               # serves until stdin closes)

The official SDK comparison needs the optional extra: `pip install -e '.[bench]'`; the
instruction counts need `perf` with hardware counters or `valgrind` (skipped without either;
`--no-perf` skips them).
Every figure is a ratio or a count measured in this run. HTTP figures come from servers in a
separate process: the FakeDevinServer (the targets), then a minimal canned-answer server on which
the client is the bottleneck. The watch and fan-out groups also run FakeDevinServers in child
processes (with churn, a rate limit and random faults); --quick shortens watch but not fan-out,
whose figures are against a fixed 10 s ideal. Raw samples go to benchmarks/results/<time>.json
(and latest.json), with the seconds each group took.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = ("import", "decode", "http", "instructions", "tracing", "watch", "fanout", "resume")
DEFAULT_GROUPS = GROUPS


def print_table(figures: list[dict[str, Any]]) -> None:
    """Print figures as a table: figure, value, target, pass/fail."""
    rows = [("figure", "value", "target", "result")]
    for f in figures:
        result = "-" if f["ok"] is None else ("PASS" if f["ok"] else "FAIL")
        rows.append((f["figure"], f["value"], f["target"], result))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    details = [f for f in figures if f.get("detail")]
    if details:
        print()
        for f in details:
            print(f"{f['figure']}: {f['detail']}")


def machine() -> dict[str, Any]:
    """Describe the machine the figures were measured on."""
    import aiohttp

    from devin_async import __version__, _json

    return {"nproc": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "processor": _cpu_model(), "aiohttp": aiohttp.__version__,
            "devin_async": __version__, "json_codec": _json.codec(),
            "load_avg": os.getloadavg()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def save(figures: list[dict[str, Any]], raw: dict[str, Any], info: dict[str, Any]) -> Path:
    """Write the figures and raw samples as JSON under benchmarks/results/."""
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = {"machine": info, "figures": figures, "raw": raw}
    path = RESULTS / f"{stamp}.json"
    text = json.dumps(data, indent=2, default=str)
    path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    return path


Measured = tuple[list[dict[str, Any]], dict[str, Any]]


def _import(args: argparse.Namespace) -> Measured:
    from . import bench_import

    return bench_import.run(runs=3 if args.quick else 7)


def _decode(args: argparse.Namespace) -> Measured:
    from . import bench_decode

    return bench_decode.run(quick=args.quick)


def _http(args: argparse.Namespace) -> Measured:
    from . import bench_http

    rounds = args.rounds or (2 if args.quick else 5)
    return bench_http.run(rounds=rounds, duration=0.3 if args.quick else 0.5,
                          devinai=not args.no_devinai, minimal=not args.fake_only)


def _instructions(args: argparse.Namespace) -> Measured:
    from . import _instructions as counted

    return counted.run(devinai=not args.no_devinai)


def _tracing(args: argparse.Namespace) -> Measured:
    from . import bench_tracing

    return bench_tracing.run(rounds=args.rounds or (3 if args.quick else 9),
                             duration=0.1 if args.quick else 0.15)


def _watch(args: argparse.Namespace) -> Measured:
    from . import bench_watch

    return bench_watch.run(quick=args.quick)


def _fanout(args: argparse.Namespace) -> Measured:
    from . import bench_fanout

    return bench_fanout.run(quick=args.quick)


def _resume(args: argparse.Namespace) -> Measured:
    from . import bench_resume

    return bench_resume.run(quick=args.quick)


#: Each group: what is printed while it runs, and how it is measured (imported only then).
_GROUP_RUNNERS: dict[str, tuple[str, Callable[[argparse.Namespace], Measured]]] = {
    "import": ("import times", _import),
    "decode": ("decoding and memory", _decode),
    "http": ("HTTP throughput", _http),
    "instructions": ("client instructions per request", _instructions),
    "tracing": ("the cost of tracing, off and on", _tracing),
    "watch": ("watch and wait", _watch),
    "fanout": ("fan-out under a rate limit and under faults", _fanout),
    "resume": ("resuming a crashed batch", _resume),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=GROUPS, action="append",
                        help="run this group (repeatable); default: " + " ".join(DEFAULT_GROUPS))
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--rounds", type=int, default=None,
                        help="HTTP and tracing rounds per scenario")
    parser.add_argument("--no-devinai", action="store_true", help="skip the official SDK")
    parser.add_argument("--fake-only", action="store_true",
                        help="HTTP figures on the FakeDevinServer only (not the minimal server)")
    parser.add_argument("--no-perf", action="store_true",
                        help="skip the instructions group (unless named by --only)")
    parser.add_argument("--profile", metavar="CONTENDER",
                        help="profile one contender (sdk_get, raw_get, sdk_create, ...) and exit")
    parser.add_argument("--concurrency", type=int, default=1, help="with --profile")
    parser.add_argument("--server", choices=("minimal", "fake"), default="minimal",
                        help="with --profile")
    args = parser.parse_args(argv)

    if args.profile:
        from . import bench_http

        bench_http.profile(args.profile, args.concurrency, kind=args.server)
        return 0

    groups = args.only or [g for g in DEFAULT_GROUPS if g != "instructions" or not args.no_perf]
    figures: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    info = machine()
    started = time.perf_counter()
    print(f"machine: {info['nproc']} cores, {info['processor']}, Python {info['python']}, "
          f"aiohttp {info['aiohttp']}, devin_async JSON codec {info['json_codec']}; "
          f"load {info['load_avg'][0]:.2f}", flush=True)
    info["group_seconds"] = {}
    for group in GROUPS:
        if group in groups:
            label, measure = _GROUP_RUNNERS[group]
            print(f"{label} ...", flush=True)
            group_started = time.perf_counter()
            got, raw[group] = measure(args)
            figures += got
            info["group_seconds"][group] = round(time.perf_counter() - group_started, 1)
    info["seconds"] = round(time.perf_counter() - started, 1)
    info["load_avg_after"] = os.getloadavg()
    print()
    print_table(figures)
    path = save(figures, raw, info)
    by_group = ", ".join(f"{g} {t} s" for g, t in info["group_seconds"].items())
    print(f"\n{len(figures)} figures in {info['seconds']} s ({by_group}; load average now "
          f"{info['load_avg_after'][0]:.2f}); raw results: {path}")
    failed = [f for f in figures if f["ok"] is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
