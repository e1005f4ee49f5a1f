"""HTTP throughput: devin_async vs raw aiohttp vs the official `devinai` SDK, same server, same run.

Every contender talks to one server running in another process (see `_server_proc`): the
FakeDevinServer (the figures with targets) and then a minimal canned-answer server, on which the
client is the bottleneck. A scenario (an endpoint at a concurrency) runs several rounds; in each
round every contender runs for the same wall time, in an order rotated round by round, and each
figure is the median over rounds of the ratio of two contenders in that round, so a burst of load
on the machine hits both sides of a ratio alike.

With orjson installed (the `speedups` extra, which `bench` pulls in) devin_async decodes and
encodes with it; the figures with targets are then also measured on the standard library's codec
(the `(stdlib json)` contenders: the same client, the codec switched before each sample), which is
what a plain install uses. Raw aiohttp uses the standard library's either way, as `json()` does.

Each sample also records the client's and the server's CPU time per request: the throughput ratio
tends to 1 when the server is the bottleneck, while client CPU per request still shows what the
SDK itself costs; the `instructions` group (`_instructions`) counts what the client executes per
request, a figure that other load on the machine does not disturb.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

from devin_async import DevinClient, _json

from ._server_proc import ROOT, ServerProcess

Call = Callable[[int], Awaitable[Any]]
Samples = dict[str, list[dict[str, float]]]

#: The create body of every contender: a full body, every documented field a user commonly sets.
CREATE_FIELDS: dict[str, Any] = {
    "prompt": "Fix the flaky integration test in tests/test_api.py and open a PR",
    "title": "Fix flaky test",
    "tags": ["bench", "team-platform"],
    "repos": ["acme/api"],
    "knowledge_ids": ["note-1", "note-2"],
    "secret_ids": ["secret-1"],
    "playbook_id": "playbook-42",
    "max_acu_limit": 10,
    "bypass_approval": False,
}
_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid`, 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


async def measure(call: Call, concurrency: int, duration: float, server_pid: int = 0,
                  stats: Callable[[], Awaitable[int]] | None = None) -> dict[str, float]:
    """Run `call` from `concurrency` workers for `duration` s; return rate and CPU per request.

    With `stats` (the minimal server's connection count), also the connections opened.
    """
    count = 0
    deadline = 0.0

    async def worker(index: int) -> None:
        nonlocal count
        i = index
        while time.perf_counter() < deadline:
            await call(i)
            count += 1
            i += concurrency

    conns0 = await stats() if stats else 0
    server0 = _proc_cpu(server_pid) if server_pid else 0.0
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    server = (_proc_cpu(server_pid) - server0) if server_pid else 0.0
    n = max(count, 1)
    sample = {"requests": count, "seconds": elapsed, "rate": count / elapsed,
              "cpu_us": cpu / n * 1e6, "server_cpu_us": server / n * 1e6}
    if stats:
        sample["connections"] = await stats() - conns0
    return sample


class Contenders:
    """The clients under test, all open on one event loop, each exposed as `call(i)`."""

    def __init__(self, server: ServerProcess, stack: AsyncExitStack) -> None:
        self.server = server
        self.stack = stack
        self.ids = server.session_ids
        self.base = f"{server.url}/v3beta1/organizations/{server.org_id}/sessions"
        self.headers = {"Authorization": f"Bearer {server.api_key}",
                        "Accept": "application/json"}
        self.calls: dict[str, Call] = {}
        #: The JSON codec each contender runs on (the others: the one in use at the start).
        self.codecs: dict[str, str] = {}
        self.stats: Callable[[], Awaitable[int]] | None = None

    async def open(self, *, devinai: bool) -> None:
        raw = await self.stack.enter_async_context(aiohttp.ClientSession())
        client = await self.stack.enter_async_context(DevinClient(
            api_key=self.server.api_key, org_id=self.server.org_id, base_url=self.server.url))
        plain = await self.stack.enter_async_context(DevinClient(  # creates without a token
            api_key=self.server.api_key, org_id=self.server.org_id, base_url=self.server.url,
            client_tokens=False))
        ids, base, headers = self.ids, self.base, self.headers
        n = len(ids)

        async def raw_get(i: int) -> Any:
            async with raw.get(f"{base}/{ids[i % n]}", headers=headers) as resp:
                return await resp.json()

        async def sdk_get(i: int) -> Any:
            return await client.sessions.get(ids[i % n])

        async def raw_create(i: int) -> Any:
            async with raw.post(base, json=CREATE_FIELDS, headers=headers) as resp:
                return await resp.json()

        async def sdk_create(i: int) -> Any:
            return await plain.sessions.create(**CREATE_FIELDS)

        async def sdk_create_token(i: int) -> Any:
            return await client.sessions.create(**CREATE_FIELDS)

        self.calls.update(raw_get=raw_get, sdk_get=sdk_get, raw_create=raw_create,
                          sdk_create=sdk_create, sdk_create_token=sdk_create_token)
        if _json.codec() != "json":  # the same calls again, on clients with the stdlib's codec
            std = await self.stack.enter_async_context(DevinClient(
                api_key=self.server.api_key, org_id=self.server.org_id,
                base_url=self.server.url, json_codec="json"))
            std_plain = await self.stack.enter_async_context(DevinClient(
                api_key=self.server.api_key, org_id=self.server.org_id,
                base_url=self.server.url, json_codec="json", client_tokens=False))

            async def sdk_get_std(i: int) -> Any:
                return await std.sessions.get(ids[i % n])

            async def sdk_create_std(i: int) -> Any:
                return await std_plain.sessions.create(**CREATE_FIELDS)

            self.calls.update(sdk_get_std=sdk_get_std, sdk_create_std=sdk_create_std)
            self.codecs.update(sdk_get_std="json", sdk_create_std="json")
        if self.server.kind == "minimal":
            probe = await self.stack.enter_async_context(aiohttp.ClientSession())
            stats_url = f"{self.server.url}/__stats"

            async def stats() -> int:
                async with probe.get(stats_url) as resp:
                    count: int = (await resp.json())["connections"]
                    return count

            self.stats = stats
        if devinai:
            self.calls["devinai_get"] = await self._open_devinai()

    async def _open_devinai(self) -> Call:
        import devin_sdk  # the official SDK, from the optional `bench` extra

        sdk = devin_sdk.AsyncDevinSDK(api_key=self.server.api_key, base_url=self.server.url)
        self.stack.push_async_callback(sdk.close)
        ids, org, n = self.ids, self.server.org_id, len(self.ids)
        retrieve = sdk.organizations.sessions.retrieve

        async def devinai_get(i: int) -> Any:
            return await retrieve(ids[i % n], org_id=org)

        return devinai_get


async def scenario(contenders: Contenders, names: list[str], concurrency: int, *,
                   rounds: int, duration: float) -> Samples:
    """Run `rounds` rounds of every contender in `names`; return their samples by name."""
    pid = contenders.server.pid
    samples: Samples = {name: [] for name in names}
    for name in names:  # warm up: open the keep-alive connections, fill caches
        await measure(contenders.calls[name], concurrency, min(0.2, duration))
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            samples[name].append(await measure(contenders.calls[name], concurrency, duration,
                                               pid, contenders.stats))
    return samples


def ratio(samples: Samples, a: str, b: str, key: str = "rate") -> float:
    """Median over rounds of samples[a][key] / samples[b][key]."""
    return statistics.median(x[key] / y[key] for x, y in zip(samples[a], samples[b], strict=True))


def _per_k(samples: list[dict[str, float]]) -> float:
    requests = max(sum(s["requests"] for s in samples), 1)
    return 1000 * sum(s["connections"] for s in samples) / requests


def _median(samples: list[dict[str, float]], key: str) -> float:
    return statistics.median(s[key] for s in samples)


#: (endpoint, contenders, (numerator, denominator, target or None) per figure)
_GET = ("get", ["raw_get", "sdk_get", "sdk_get_std", "devinai_get"],
        [("sdk_get", "raw_get", 0.85), ("sdk_get_std", "raw_get", 0.85),
         ("sdk_get", "devinai_get", None), ("devinai_get", "raw_get", None)])
_CREATE = ("create", ["raw_create", "sdk_create", "sdk_create_std", "sdk_create_token"],
           [("sdk_create", "raw_create", 0.85), ("sdk_create_std", "raw_create", 0.85),
            ("sdk_create_token", "raw_create", None)])
_LABEL = {"raw_get": "raw aiohttp", "sdk_get": "devin_async", "devinai_get": "devinai 0.1.0",
          "sdk_get_std": "devin_async (stdlib json)", "raw_create": "raw aiohttp",
          "sdk_create": "devin_async (no token)",
          "sdk_create_std": "devin_async (no token, stdlib json)",
          "sdk_create_token": "devin_async (token tag)"}
_DEVINAI_TARGET = {1: 3.0, 50: 15.0}


def _label(name: str) -> str:
    """A contender's name in the table; devin_async's say which JSON codec they ran on."""
    label, codec = _LABEL[name], _json.codec()
    if name.startswith("sdk_") and not name.endswith("_std") and codec != "json":
        label = f"{label[:-1]}, {codec})" if label.endswith(")") else f"{label} ({codec})"
    return label


async def _run(server: ServerProcess, *, rounds: int, duration: float, devinai: bool,
               plans: tuple[Any, ...]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    figures: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        contenders = Contenders(server, stack)
        await contenders.open(devinai=devinai)
        for endpoint, names, pairs in plans:
            names = [n for n in names if n in contenders.calls
                     # the stdlib-codec contenders where the targets are: the fake server
                     and not (server.kind == "minimal" and n.endswith("_std"))]
            for conc in (1, 50):
                samples = await scenario(contenders, names, conc, rounds=rounds,
                                         duration=duration)
                raw[f"{endpoint}_c{conc}"] = samples
                for a, b, target in pairs:
                    if a not in samples or b not in samples:
                        continue
                    if b == "devinai_get":
                        target = _DEVINAI_TARGET[conc]
                    name = f"{server.kind}: {endpoint} c={conc}: {_label(a)} / {_label(b)}"
                    figures.append(_figure(name, samples, a, b, target))
                if "connections" in samples[names[0]][0] and endpoint == "get" and conc == 50:
                    figures += _connection_figures(server.kind, samples)
    return figures, raw


def _figure(name: str, samples: Samples, a: str, b: str,
            target: float | None) -> dict[str, Any]:
    value = ratio(samples, a, b)
    cpu = ratio(samples, a, b, "cpu_us")
    sa, sb = samples[a], samples[b]
    detail = (f"{_median(sa, 'rate'):.0f} vs {_median(sb, 'rate'):.0f} req/s; client CPU/req "
              f"{_median(sa, 'cpu_us'):.0f} vs {_median(sb, 'cpu_us'):.0f} us ({cpu:.2f}x); "
              f"server CPU/req {_median(sa, 'server_cpu_us'):.0f} vs "
              f"{_median(sb, 'server_cpu_us'):.0f} us")
    if "connections" in sa[0]:
        detail += (f"; new TCP connections per 1000 requests {_per_k(sa):.0f} vs "
                   f"{_per_k(sb):.0f}")
    return {"figure": name, "value": f"{value:.2f}x",
            "target": "-" if target is None else f">= {target}x",
            "ok": None if target is None else value >= target, "raw": value, "detail": detail}


def _connection_figures(kind: str, samples: Samples) -> list[dict[str, Any]]:
    out = []
    for name in ("sdk_get", "devinai_get"):
        if name in samples:
            value = _per_k(samples[name])
            ok = value == 0 if name == "sdk_get" else None
            out.append({"figure": f"{kind}: get c=50: new TCP connections per 1000 requests, "
                                  f"{_LABEL[name]}", "value": f"{value:.0f}",
                        "target": "0 (keep-alive)" if ok is not None else "-", "ok": ok,
                        "raw": value, "detail": ""})
    return out


def run(*, rounds: int = 5, duration: float = 0.5, devinai: bool = True,
        minimal: bool = True, sessions: int = 100) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run every HTTP scenario on each server; return (figures, raw samples)."""
    if devinai:
        try:
            import devin_sdk  # noqa: F401
        except ImportError:
            devinai = False
    figures: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    kinds = ["fake", "minimal"] if minimal else ["fake"]
    for kind in kinds:
        # Each server's scenarios in a fresh client process: run after the fake server's
        # creates in one process, the minimal server's get c=50 figure fell from 0.88-0.93x
        # to 0.80-0.82x with the same Python calls per request (the heap and the garbage
        # collector's generations the first phase left behind; gc.freeze() undid it).
        args = [sys.executable, "-m", "benchmarks.bench_http", "--kind", kind,
                "--rounds", str(rounds), "--duration", str(duration),
                "--sessions", str(sessions)] + ([] if devinai else ["--no-devinai"])
        out = subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT)
        if out.returncode != 0:
            raise RuntimeError(f"the {kind} server's HTTP scenarios failed: {out.stderr[-2000:]}")
        got, raw[kind] = json.loads(out.stdout.splitlines()[-1])
        figures += got
    if not devinai:
        figures.append({"figure": "devinai comparison skipped: pip install -e '.[bench]'",
                        "value": "-", "target": "-", "ok": None, "raw": None, "detail": ""})
    return figures, raw


# -- profiling --------------------------------------------------------------------------------

async def _profile_loop(server: ServerProcess, what: str, concurrency: int,
                        seconds: float) -> None:
    async with AsyncExitStack() as stack:
        contenders = Contenders(server, stack)
        await contenders.open(devinai=what.startswith("devinai"))
        call = contenders.calls[what]
        await measure(call, concurrency, 0.3)
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        sample = await measure(call, concurrency, seconds)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        print(f"{what} c={concurrency}: {sample['rate']:.0f} req/s, "
              f"{sample['cpu_us']:.0f} us CPU/request (under the profiler)")


def profile(what: str = "sdk_get", concurrency: int = 1, seconds: float = 5.0,
            kind: str = "minimal") -> None:
    """Profile one contender's hot path with pyinstrument and print the call tree."""
    with ServerProcess(sessions=100, kind=kind) as server:
        asyncio.run(_profile_loop(server, what, concurrency, seconds))


def _one_kind(kind: str, rounds: int, duration: float, devinai: bool, sessions: int) -> None:
    """Measure one server's scenarios in this process; print (figures, samples) as JSON."""
    with ServerProcess(sessions=sessions, kind=kind) as server:
        # Creates only on the fake server: the minimal one is there for the client-bound
        # view of `get`, the endpoint the official SDK comparison is about.
        plans = (_GET, _CREATE) if kind == "fake" else (_GET,)
        result = asyncio.run(_run(server, rounds=rounds, duration=duration, devinai=devinai,
                                  plans=plans))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("fake", "minimal"), help="one server, as JSON")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=0.5)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--no-devinai", action="store_true")
    args = parser.parse_args()
    if args.kind:
        _one_kind(args.kind, args.rounds, args.duration, not args.no_devinai, args.sessions)
        return
    from .__main__ import print_table

    print_table(run(rounds=args.rounds, duration=args.duration, devinai=not args.no_devinai,
                    sessions=args.sessions)[0])


if __name__ == "__main__":
    main()
