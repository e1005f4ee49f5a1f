"""Import time: `python -c "import devin_async"` versus `python -c "import aiohttp"`.

Many runs, alternating (and rotating the order each round, so neither always runs right after the
other), median of each. Bytecode is cached as it is for any installed package: the runs use a
private PYTHONPYCACHEPREFIX under benchmarks/results/ (so the source tree is not littered) and a
warm-up run fills it first, even where PYTHONDONTWRITEBYTECODE is set (as on some CI images, which
would otherwise recompile devin_async from source on every run but not the pip-installed aiohttp).
Also counted: the optional modules `import devin_async` must not pull in, and (where `perf`
works) the user-space instructions of each command, a figure that load on the machine does not
move the way it moves wall time.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
STATEMENTS = {"devin_async": "import devin_async", "aiohttp": "import aiohttp", "python": "pass"}
#: Modules that only some users or only the slow path need: `import devin_async` must not load
#: them (the fake server and its aiohttp.web, the CLI display, tenacity for retries, bench deps).
OPTIONAL = ("devin_async.testing", "devin_async._cli", "aiohttp.web", "tenacity", "devin_sdk",
            "httpx", "pyinstrument")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(RESULTS / "pycache")
    return env


def _time(statement: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], env=env, check=True)
    return time.perf_counter() - start


def _instructions(statement: str, env: dict[str, str], runs: int = 3) -> int | None:
    """User-space instructions of `python -c statement` (least of `runs`), None without perf."""
    if shutil.which("perf") is None:
        return None
    counts = []
    for _ in range(runs):
        out = subprocess.run(["perf", "stat", "-x", ",", "-e", "instructions:u", sys.executable,
                              "-c", statement], env=env, capture_output=True, text=True)
        for line in out.stderr.splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2].startswith("instructions") and fields[0].isdigit():
                counts.append(int(fields[0]))
    return min(counts) if counts else None


def _loaded_modules(env: dict[str, str]) -> list[str]:
    code = ("import sys, json, devin_async; "
            f"print(json.dumps([m for m in {list(OPTIONAL)!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def run(*, runs: int = 9) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Time the imports; return (figures, raw timings)."""
    RESULTS.mkdir(exist_ok=True)
    env = _env()
    names = list(STATEMENTS)
    for name in names:  # warm up: write the bytecode cache, load the files into the page cache
        _time(STATEMENTS[name], env)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            times[name].append(_time(STATEMENTS[name], env))
    med = {name: statistics.median(values) for name, values in times.items()}
    ratio = med["devin_async"] / med["aiohttp"]
    net = (med["devin_async"] - med["aiohttp"]) * 1e3
    loaded = _loaded_modules(env)
    instr = {name: _instructions(STATEMENTS[name], env) for name in names}
    figures = [
        {"figure": "import devin_async / import aiohttp (wall, median)", "value": f"{ratio:.2f}x",
         "target": "<= 1.3x", "ok": ratio <= 1.3, "raw": ratio,
         "detail": f"{med['devin_async'] * 1e3:.0f} ms vs {med['aiohttp'] * 1e3:.0f} ms "
                   f"(bare python {med['python'] * 1e3:.0f} ms); devin_async adds {net:.0f} ms "
                   f"over aiohttp; {runs} runs each"},
    ]
    if all(instr.values()):
        sdk, aio, bare = instr["devin_async"], instr["aiohttp"], instr["python"]
        assert sdk is not None and aio is not None and bare is not None
        figures.append({
            "figure": "import devin_async / import aiohttp (instructions, perf)",
            "value": f"{sdk / aio:.2f}x", "target": "<= 1.3x", "ok": sdk / aio <= 1.3,
            "raw": sdk / aio,
            "detail": f"{sdk / 1e6:.0f}M vs {aio / 1e6:.0f}M user-space instructions (bare python "
                      f"{bare / 1e6:.0f}M); devin_async adds {(sdk - aio) / 1e6:.0f}M"})
    figures += [
        {"figure": "optional modules loaded by import devin_async", "value": str(len(loaded)),
         "target": "0", "ok": not loaded, "raw": len(loaded),
         "detail": f"{', '.join(loaded) or 'none'} of {', '.join(OPTIONAL)}"},
    ]
    return figures, {"times": times, "median": med, "loaded": loaded, "instructions": instr}


if __name__ == "__main__":
    from .__main__ import print_table

    print_table(run()[0])
