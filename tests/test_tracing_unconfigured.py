"""Tracing on, opentelemetry-api installed, no tracer provider configured: no span is made until
an app sets one, and every request from `_tracing.RECHECK` (10 ms) after that is traced (the
API's proxy-tracer promise, with the "idle" answer remembered that long)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, NoReturn

import pytest
from opentelemetry import trace

from devin_async import HTTPRequest, NotFoundError

from .surface_support import SID, FakeClock, Router, make_client, reply, session_json

ROOT = Path(__file__).resolve().parents[1]
SESSION_ROUTE = "GET /v3beta1/organizations/{org_id}/sessions/{devin_id}"
CREATE_ROUTE = "POST /v3beta1/organizations/{org_id}/sessions"


def lifecycle_router(polls_before_done: int) -> Router:
    """A create, then a session that exits after `polls_before_done` polls; 503 once, first."""
    count = {"n": 0}

    def get(_r: HTTPRequest, _m: re.Match[str]) -> Any:
        count["n"] += 1
        if count["n"] == 1:
            return reply(503, {"detail": "busy"})
        done = count["n"] > polls_before_done + 1
        return session_json(SID, "exit" if done else "running", None if done else "working")

    router = Router().add("GET", rf"/sessions/{SID}$", get)
    router.add("GET", r"/sessions/devin-missing$", lambda r, m: reply(404, {"detail": "no"}))
    router.add("POST", r"/sessions$", lambda r, m: session_json(SID, "new", None))
    return router


def _no_span_may_be_made(*_a: Any, **_k: Any) -> NoReturn:
    raise AssertionError("a span was started while no tracer provider is configured")


async def test_no_span_is_started_while_no_provider_is_configured(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    for cls in (trace.ProxyTracer, trace.NoOpTracer):
        for method in ("start_span", "start_as_current_span"):
            monkeypatch.setattr(cls, method, _no_span_may_be_made)
    client, transport = make_client(lifecycle_router(2), FakeClock(), tracing=True)
    async with client:
        assert client.engine.tracer is not None  # tracing is on: only nothing would record
        got = await client.sessions.get(SID)  # retried once (503), then answered
        result = await client.sessions.run("p")  # INTERNAL spans: devin.run, devin.wait
        with pytest.raises(NotFoundError):
            await client.sessions.get("devin-missing")
    assert got.session_id == SID and result.session.status == "exit"
    assert [r.method for r in transport.requests[:3]] == ["GET", "GET", "POST"]


_LATE_PROVIDER = textwrap.dedent("""
    import asyncio, json, time
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from devin_async import DevinClient
    from devin_async._tracing import RECHECK
    from devin_async.testing import FakeDevinServer
    from tests.surface_support import FakeClock

    async def main():
        clock = FakeClock()
        server = FakeDevinServer(clock=clock, seed=31)
        exporter = InMemorySpanExporter()
        async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                               base_url="http://fake.invalid", allow_insecure_http=True,
                               transport=server.transport(), clock=clock,
                               sleep=clock.sleep) as client:
            before = await client.sessions.create("before any provider")
            await client.sessions.get(before.session_id)
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            time.sleep(RECHECK * 2)  # real time: the tracer trusts its "idle" answer this long
            await client.sessions.get(before.session_id)
            server.script([("running", "working", 0), ("exit", None, 3)])
            after = await client.sessions.run("after the provider")
        spans = exporter.get_finished_spans()
        by_id = {s.context.span_id: s.name for s in spans}
        print(json.dumps({"before": before.session_id, "after": after.session.session_id,
                          "spans": [[s.name, s.kind.name, (s.attributes or {}).get(
                              "devin.session_id"), by_id.get(s.parent.span_id)
                              if s.parent else None] for s in spans]}))

    asyncio.run(main())
""")


def test_a_provider_configured_after_the_client_is_used_within_the_recheck_time() -> None:
    out = subprocess.run([sys.executable, "-c", _LATE_PROVIDER], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    before, after, spans = got["before"], got["after"], got["spans"]
    # Nothing from before the provider was set: not the create, not the first get.
    assert [s for s in spans if s[2] == before] == [[SESSION_ROUTE, "CLIENT", before, None]]
    names = [s[0] for s in spans]
    assert names.count(CREATE_ROUTE) == 1 and names[-1] == "devin.run"
    run_spans = [s for s in spans if s[2] == after]
    assert run_spans and all(s[3] is not None for s in run_spans)
    create = next(s for s in spans if s[0] == CREATE_ROUTE)
    assert create[1] == "CLIENT" and create[3] == "devin.run"
    assert any(s[0] == "devin.wait" and s[3] == "devin.run" for s in spans)


async def test_the_idle_answer_is_remembered_so_the_api_is_not_asked_per_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    asked = []
    real = trace.get_tracer_provider

    def counting() -> Any:
        asked.append(1)
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", counting)
    client, _ = make_client(lifecycle_router(2), FakeClock(), tracing=True)
    async with client:
        for _ in range(50):  # well within RECHECK of real time on any machine
            await client.sessions.get(SID)
    assert 1 <= len(asked) < 10
