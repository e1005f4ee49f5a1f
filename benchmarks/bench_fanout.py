"""Fan-out under a rate limit and under faults: `python -m benchmarks.bench_fanout`.

(a) 1,000 creates against a FakeDevinServer limited to 100 requests/s (token bucket, bursts of
    100, 429 with Retry-After and retry-after-ms), through `create_many(concurrency=8)`: wall time
    against the ideal 10 s (target <= 1.15x) and 429s as a share of requests (target <= 5 %),
    beside a naive baseline in the same run: `asyncio.gather` of 1,000 `create` calls on a client
    with no shared limiter and no client tokens, each retrying on its own (the SDK's per-call
    tenacity retry: 4 attempts, honouring Retry-After).
(b) The same 1,000 with 10 % of creates failing, a third of those failures lost responses after
    the server acted (drop="after"); the rest dropped before acting, 500, 502, 503. Sessions on the
    server afterwards (target exactly 1,000), duplicates (target 0), results with errors.

Each run gets a fresh server in a child process (`benchmarks._server_proc.ServerProcess`), so
the server never shares the client's event loop or core; the child answers `stats` on stdin with
one JSON line and ends when stdin closes. Loopback only; the whole run stops itself within 90 s.
`python -m benchmarks --only fanout` prints the same figures in the shared table.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from typing import Any

from devin_async import DevinClient, ResponseEvent
from devin_async._fanout import CreateMany
from devin_async._ratelimit import RateLimiter

from ._server_proc import ServerProcess

N = 1_000
RATE = 100.0
IDEAL = N / RATE
CONCURRENCY = 8
FAULT_RATE = 0.1
#: Drawn uniformly: a third are lost responses after the server acted.
FAULT_KINDS = ("drop_after", "drop_after", "drop_before", "status_500", "status_502",
               "status_503")
BUDGET = 85.0  # seconds for everything
SEED = 5  # the server's, and its random faults'


# -- the server, in a child process (benchmarks._server_proc) -----------------------------

def _server(fault_rate: float = 0.0) -> ServerProcess:
    """A fresh FakeDevinServer, no sessions seeded, limited to RATE requests/s."""
    return ServerProcess(sessions=0, rate_limit=RATE, seed=SEED, fault_rate=fault_rate,
                         fault_kinds=FAULT_KINDS, fault_endpoint="create", fault_seed=SEED)


# -- the client side -----------------------------------------------------------------------

class _NoLimiter(RateLimiter):
    """The naive baseline: no shared pause, no pacing, no retry budget."""

    async def acquire(self, deadline: float | None = None) -> None:
        return

    def on_throttle(self, retry_after: float | None) -> None:
        return

    def allow_retry(self, error: BaseException | None = None) -> bool:
        return True


class Tally:
    """Count every answer the client sees (an `on_response` hook)."""

    def __init__(self) -> None:
        self.statuses: collections.Counter[int | None] = collections.Counter()

    def __call__(self, event: ResponseEvent) -> None:
        self.statuses[event.status] += 1

    @property
    def attempts(self) -> int:
        return sum(self.statuses.values())


def requests(tag: str) -> list[dict[str, Any]]:
    return [{"prompt": f"{tag} task {i}", "title": f"{tag} {i}"} for i in range(N)]


def client_for(server: ServerProcess, tally: Tally, **kw: Any) -> DevinClient:
    return DevinClient(base_url=server.url, api_key=server.api_key, org_id=server.org_id,
                       on_response=tally, **kw)


async def run_baseline() -> dict[str, Any]:
    tally = Tally()
    with _server() as server:
        async with client_for(server, tally, client_tokens=False) as client:
            engine = client.engine  # every request of the client passes engine.limiter
            engine.limiter = _NoLimiter(engine.clock, engine.sleep)
            start = time.perf_counter()
            outcomes = await asyncio.gather(
                *(client.sessions.create(**r) for r in requests("baseline")),
                return_exceptions=True)
            wall = time.perf_counter() - start
        stats = server.stats()
    errors = collections.Counter(type(o).__name__ for o in outcomes if isinstance(o, BaseException))
    return {"wall": wall, "tally": tally, "errors": errors, "server": stats}


async def run_fanout(fault_rate: float) -> dict[str, Any]:
    tally = Tally()
    with _server(fault_rate) as server:
        async with client_for(server, tally) as client:
            start = time.perf_counter()
            errors: collections.Counter[str] = collections.Counter()
            examples: list[str] = []
            results = 0
            batch = client.sessions.create_many(requests("fanout"), concurrency=CONCURRENCY)
            assert isinstance(batch, CreateMany)
            async with batch:
                async for result in batch:
                    results += 1
                    if result.error is not None:
                        errors[type(result.error).__name__] += 1
                        examples.append(f"#{result.index}: {result.error}")
            wall = time.perf_counter() - start
        stats = server.stats()
    return {"wall": wall, "tally": tally, "errors": errors, "results": results, "server": stats,
            "examples": examples}


# -- report --------------------------------------------------------------------------------

Row = tuple[str, str, str, str]


def row(figure: str, value: str, target: str = "", ok: bool | None = None) -> Row:
    return (figure, value, target, "" if ok is None else ("PASS" if ok else "FAIL"))


def share(part: int, whole: int) -> str:
    return f"{part} / {whole} = {100 * part / max(whole, 1):.1f} %"


def print_table(title: str, rows: list[Row]) -> None:
    header: Row = ("figure", "value", "target", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    print(f"\n{title}")
    for n, r in enumerate([header, *rows]):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


async def measure() -> dict[str, dict[str, Any]]:
    """The three runs, each on a fresh server: baseline, create_many, create_many with faults."""
    async with asyncio.timeout(BUDGET):
        base = await run_baseline()
        fan = await run_fanout(0.0)
        faulty = await run_fanout(FAULT_RATE)
    return {"baseline": base, "fanout": fan, "faulty": faulty}


def tables(runs: dict[str, dict[str, Any]]) -> tuple[list[Row], list[Row]]:
    """The rows of tables (a) and (b)."""
    base, fan, faulty = runs["baseline"], runs["fanout"], runs["faulty"]
    b_t, f_t = base["tally"], fan["tally"]
    b_429, f_429 = b_t.statuses[429], f_t.statuses[429]
    b_created = base["server"]["sessions"]
    ratio = fan["wall"] / IDEAL
    rows_a = [
        row("create_many: wall time", f"{fan['wall']:.2f} s = {ratio:.3f} x ideal {IDEAL:.0f} s",
            "<= 1.15 x", ratio <= 1.15),
        row("create_many: 429s / requests", share(f_429, f_t.attempts), "<= 5 %",
            f_429 <= 0.05 * f_t.attempts),
        row("create_many: sessions created", f"{fan['server']['sessions']} / {N}", f"{N}",
            fan["server"]["sessions"] == N and not fan["errors"]),
        row("baseline gather: wall time", f"{base['wall']:.2f} s"),
        row("baseline gather: 429s / requests", share(b_429, b_t.attempts)),
        row("baseline gather: sessions created", f"{b_created} / {N}"),
        row("baseline gather: calls failed", f"{sum(base['errors'].values())} "
            f"{dict(base['errors']) or ''}".rstrip()),
        row("429 share, baseline / create_many",
            f"{(b_429 / max(b_t.attempts, 1)) / max(f_429 / max(f_t.attempts, 1), 1e-9):.0f} x"),
    ]
    s = faulty["server"]
    faults = s["stats"].get("faults", 0)
    drops_after = s["stats"].get("fault_drop_after", 0)
    rows_b = [
        row("faults injected (creates)", f"{faults}, of which {drops_after} lost after acting"),
        row("sessions on the server", f"{s['sessions']}", f"exactly {N}", s["sessions"] == N),
        row("duplicate sessions", f"{s['duplicates']}", "0", s["duplicates"] == 0),
        row("results", f"{faulty['results']}", f"{N}", faulty["results"] == N),
        row("results with errors", f"{sum(faulty['errors'].values())} "
            f"{dict(faulty['errors']) or ''}".rstrip()),
        row("wall time", f"{faulty['wall']:.2f} s = {faulty['wall'] / IDEAL:.3f} x ideal"),
        row("429s / requests", share(faulty["tally"].statuses[429], faulty["tally"].attempts)),
    ]
    return rows_a, rows_b


def run(*, quick: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Measure for `python -m benchmarks`: (figures, raw results); `quick` changes nothing."""
    runs = asyncio.run(measure())
    rows_a, rows_b = tables(runs)
    figures = [
        {"figure": f"{prefix}: {figure}", "value": value, "target": target or "-",
         "ok": None if not result else result == "PASS", "detail": ""}
        for prefix, rows in (("fanout", rows_a), (f"fanout {FAULT_RATE:.0%} faults", rows_b))
        for figure, value, target, result in rows
    ]
    if runs["faulty"]["examples"]:
        figures[-1]["detail"] = "; ".join(runs["faulty"]["examples"][:5])
    raw = {name: {"wall": r["wall"], "statuses": dict(r["tally"].statuses),
                  "errors": dict(r["errors"]), "server": r["server"]}
           for name, r in runs.items()}
    return figures, raw


async def main() -> int:
    runs = await measure()
    rows_a, rows_b = tables(runs)
    print_table(f"(a) {N} creates, server limited to {RATE:.0f} req/s, concurrency {CONCURRENCY}",
                rows_a)
    print_table(f"(b) the same {N} with {FAULT_RATE:.0%} of creates failing", rows_b)
    for example in runs["faulty"]["examples"][:5]:
        print(f"  error {example}")
    return 0 if all(r[3] != "FAIL" for r in rows_a + rows_b) else 1


def cli() -> None:
    argparse.ArgumentParser(description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    sys.exit(asyncio.run(main()))


if __name__ == "__main__":
    cli()
