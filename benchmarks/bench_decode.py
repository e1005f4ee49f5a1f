"""Decoding and memory: structuring Sessions versus json.loads alone, bytes per Session, RSS.

The JSON is what the FakeDevinServer sends (rendered in-process, no socket). The two sides of each
ratio are timed in alternation, many short rounds, and the figure is the median of the per-round
ratios (the detail shows the best time of each side). The RSS figure runs in fresh child processes,
one decoding with devin_async and one keeping raw aiohttp's dicts, both listing the same 10,000
sessions from a FakeDevinServer in a third process.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._server_proc import ROOT, SEED_FIELDS, ServerProcess

PAGE_SIZE = 200
MEMORY_SESSIONS = 10_000


def _payloads() -> tuple[bytes, bytes, list[dict[str, Any]]]:
    """Return (one session JSON, one 200-item page JSON, the 200 rendered sessions)."""
    from devin_async.testing import FakeDevinServer

    server = FakeDevinServer(seed=1)
    ids = server.add_sessions(PAGE_SIZE, **SEED_FIELDS)
    items = [server.session(i) for i in ids]
    one = json.dumps(items[0], separators=(",", ":")).encode()
    page = {"items": items, "end_cursor": "cursor-200", "has_next_page": True, "total": 10_000}
    return one, json.dumps(page, separators=(",", ":")).encode(), items


def paired_us(a: Callable[[], object], b: Callable[[], object], *, number: int,
              rounds: int) -> tuple[float, float, float]:
    """Time `a` and `b` in alternation, `number` calls each per round.

    Return (a's best time, b's best time, median over rounds of b/a), in microseconds per call:
    each ratio compares two timings taken milliseconds apart, so load on the machine cancels.
    """
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(rounds):
        for fn, out in ((a, ta), (b, tb)):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            out.append((time.perf_counter() - start) / number * 1e6)
    return min(ta), min(tb), statistics.median(y / x for x, y in zip(ta, tb, strict=True))


def _timings(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from devin_async import _json
    from devin_async._protocol import decode_json, parse_session, parse_session_page

    one, page, _items = _payloads()
    rounds = 7 if quick else 25
    raw: dict[str, Any] = {"one_bytes": len(one), "page_bytes": len(page)}
    figures = []
    for codec in sorted(_json.CODECS, key=lambda c: c != "json"):  # stdlib's first
        loads = _json.get(codec).loads
        loads_one, sdk_one, ratio_one = paired_us(
            lambda: json.loads(one),
            lambda loads=loads: parse_session(decode_json(200, one, loads)),
            number=200, rounds=rounds)
        loads_page, sdk_page, ratio_page = paired_us(
            lambda: json.loads(page),
            lambda loads=loads: parse_session_page(decode_json(200, page, loads)),
            number=2, rounds=rounds)
        raw[codec] = {"loads_one_us": loads_one, "sdk_one_us": sdk_one, "ratio_one": ratio_one,
                      "loads_page_us": loads_page, "sdk_page_us": sdk_page,
                      "ratio_page": ratio_page}
        figures += [
            _fig(f"decode 1 Session ({codec} codec): (decode + structure) / json.loads",
                 ratio_one, "x", None,
                 f"{sdk_one:.1f} us vs json.loads {loads_one:.1f} us ({len(one)} bytes)"),
            _fig(f"decode 200-item page ({codec} codec): (decode + structure) / json.loads",
                 ratio_page, "x", None,
                 f"{sdk_page / 1e3:.2f} ms vs json.loads {loads_page / 1e3:.2f} ms "
                 f"({len(page)} bytes); {sdk_page / PAGE_SIZE:.1f} us per item in all"),
        ]
    compiled = _compiles_during(lambda: [parse_session_page(decode_json(200, page))
                                         for _ in range(5)]
                                + [parse_session(decode_json(200, one)) for _ in range(1000)])
    raw["compiles"] = compiled
    figures.append(_fig("code objects compiled during 1,005 decodes (converter built once)",
                        compiled, "", compiled == 0, "", target="0", fmt="{:.0f}"))
    return figures, raw


def _compiles_during(fn: Callable[[], object]) -> int:
    """Count calls to compile() while `fn` runs: cattrs and attrs generate code through it."""
    count = 0
    real = builtins.compile

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += 1
        return real(*args, **kwargs)

    builtins.compile = counting
    try:
        fn()
    finally:
        builtins.compile = real
    return count


def _memory() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from devin_async import Session
    from devin_async._protocol import parse_session

    _one, _page, items = _payloads()
    # 10,000 distinct JSON bodies, as if each came off the wire (no shared strings between them).
    blobs = [json.dumps(dict(items[i % PAGE_SIZE], session_id=f"devin-{i:032x}"),
                        separators=(",", ":")).encode() for i in range(MEMORY_SESSIONS)]

    def retained(build: Callable[[], list[Any]]) -> float:
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        del kept
        return (used - sys.getsizeof([None] * MEMORY_SESSIONS)) / MEMORY_SESSIONS

    per_dict = retained(lambda: [json.loads(b) for b in blobs])
    per_session = retained(lambda: [parse_session(json.loads(b)) for b in blobs])
    sample = parse_session(json.loads(blobs[0]))
    shallow = sys.getsizeof(sample)
    slotted = not hasattr(sample, "__dict__") and "__slots__" in Session.__dict__
    raw = {"per_dict": per_dict, "per_session": per_session, "shallow": shallow,
           "slotted": slotted}
    figures = [
        _fig("bytes per Session (retained, its strings and lists included)", per_session, " B",
             per_session <= per_dict, f"json.loads dict of the same: {per_dict:.0f} B; Session "
             f"object itself {shallow} B, slotted={slotted}", target="<= the dict",
             fmt="{:.0f}"),
    ]
    return figures, raw


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _list_all(mode: str, url: str, api_key: str, org_id: str) -> int:
    if mode == "sdk":
        from devin_async import DevinClient

        async with DevinClient(api_key=api_key, org_id=org_id, base_url=url) as client:
            kept: list[Any] = await client.sessions.list(page_size=PAGE_SIZE).to_list()
    else:
        import aiohttp

        kept = []
        headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        endpoint = f"{url}/v3beta1/organizations/{org_id}/sessions"
        params = {"first": str(PAGE_SIZE)}
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.get(endpoint, params=params, headers=headers) as resp:
                    page = await resp.json()
                kept.extend(page["items"])
                if not page.get("has_next_page"):
                    break
                params = {"first": str(PAGE_SIZE), "after": page["end_cursor"]}
    gc.collect()
    return len(kept)


def _rss_child(mode: str, url: str, api_key: str, org_id: str) -> None:
    """In a fresh process: import, list every session, keep them; print RSS as JSON."""
    import aiohttp  # noqa: F401  (both modes pay for aiohttp; the baseline is after imports)

    if mode == "sdk":
        import devin_async  # noqa: F401
    after_import = _rss_kb()
    count = asyncio.run(_list_all(mode, url, api_key, org_id))
    print(json.dumps({"mode": mode, "count": count, "after_import_kb": after_import,
                      "after_kb": _rss_kb()}))


def _rss() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    results: dict[str, Any] = {}
    with ServerProcess(sessions=MEMORY_SESSIONS) as server:
        for mode in ("sdk", "raw"):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_decode", "--rss-child", mode,
                 server.url, server.api_key, server.org_id],
                check=True, capture_output=True, text=True, timeout=120, cwd=ROOT)
            results[mode] = json.loads(out.stdout)
    sdk, raw = results["sdk"], results["raw"]
    grown_sdk = (sdk["after_kb"] - sdk["after_import_kb"]) / 1024
    grown_raw = (raw["after_kb"] - raw["after_import_kb"]) / 1024
    figures = [
        _fig(f"client RSS after {sdk['count']:,} sessions listed and decoded",
             sdk["after_kb"] / 1024, " MB", None,
             f"+{grown_sdk:.1f} MB over the {sdk['after_import_kb'] / 1024:.1f} MB after import; "
             f"raw aiohttp keeping dicts: {raw['after_kb'] / 1024:.1f} MB "
             f"(+{grown_raw:.1f} MB over {raw['after_import_kb'] / 1024:.1f} MB)",
             fmt="{:.1f}"),
        _fig("RSS growth for 10,000 sessions: devin_async / raw aiohttp dicts",
             grown_sdk / grown_raw if grown_raw > 0 else float("nan"), "x", None,
             "RSS keeps freed pages (the page dicts decoded along the way), so this is not "
             "what the Sessions retain: see bytes per Session"),
    ]
    return figures, results


def _fig(name: str, value: float, unit: str, ok: bool | None, detail: str, *,
         target: str = "-", fmt: str = "{:.2f}") -> dict[str, Any]:
    return {"figure": name, "value": fmt.format(value) + unit, "target": target, "ok": ok,
            "raw": value, "detail": detail}


def run(*, quick: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the decoding, memory and RSS figures; return (figures, raw numbers)."""
    figures, raw = _timings(quick)
    got, raw["memory"] = _memory()
    figures += got
    got, raw["rss"] = _rss()
    figures += got
    return figures, raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rss-child", nargs=4, metavar=("MODE", "URL", "KEY", "ORG"))
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(*args.rss_child)
        return
    from .__main__ import print_table

    print_table(run()[0])


if __name__ == "__main__":
    main()
