"""Audit of CONTRACT.md "Command line", "Fake Devin server" and the pytest plugin.

The CLI runs as users run it: the console script's `main(argv)` (in a worker thread, since it
owns its event loop) against a loopback fake server, configured through the environment; one
`python -m devin_async` subprocess checks the module entry point.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devin_async import DevinClient, RateLimitError, RetryPolicy
from devin_async.__main__ import main
from devin_async.testing import FakeDevinServer

COMMANDS = ["create", "get", "list", "watch", "wait", "message", "terminate", "create-many",
            "run", "ask", "events", "whoami", "upload", "demo", "serve-fake"]


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDevinServer]:
    async with FakeDevinServer(time_scale=2000) as server:
        monkeypatch.setenv("DEVIN_API_KEY", server.api_key)
        monkeypatch.setenv("DEVIN_ORG_ID", server.org_id)
        monkeypatch.setenv("DEVIN_BASE_URL", server.url)
        yield server


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_module_entry_point_lists_every_contract_command() -> None:
    done = subprocess.run([sys.executable, "-m", "devin_async", "--help"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0
    for name in COMMANDS:
        assert name in done.stdout, name


async def test_create_get_message_terminate_json(served: FakeDevinServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = await cli(capsys, "create", "Fix the flaky test", "--tag", "ci", "--repo",
                             "me/app", "--json")
    assert code == 0
    created = json.loads(out)
    sid = created["session_id"]
    assert created["devin_async"]["client_token"] and "sdk_tags" not in created
    assert "devin-async-token" not in out
    assert created["status"] and served.create_request(sid)["repos"] == ["me/app"]
    code, out, _ = await cli(capsys, "get", sid, "--json")
    assert code == 0 and json.loads(out)["session_id"] == sid
    code, out, _ = await cli(capsys, "message", sid, "more context", "--json")
    assert code == 0
    code, out, _ = await cli(capsys, "list", "--tag", "ci", "--json")
    assert code == 0 and [json.loads(line)["session_id"] for line in out.splitlines()] == [sid]
    code, out, _ = await cli(capsys, "wait", sid, "--timeout", "600", "--json")
    assert code == 0
    code, out, _ = await cli(capsys, "events", sid, "--json")
    assert code == 0 and all("event_id" in json.loads(line) for line in out.splitlines())
    code, out, _ = await cli(capsys, "terminate", sid, "--json")
    assert code == 0 and json.loads(out)["status"] == "exit"


async def test_whoami_run_ask_upload(served: FakeDevinServer, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = await cli(capsys, "whoami", "--json")
    assert code == 0 and json.loads(out)["principal_type"] == "service_user"
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"n": {"type": "integer"}},
                                  "required": ["n"]}))
    code, out, _ = await cli(capsys, "run", "Count", "--schema", str(schema), "--timeout",
                             "600", "--json")
    assert code == 0 and "n" in out
    sid = (await asyncio.to_thread(lambda: None), next(iter(served.sessions)))[1]
    served.script_reply(sid, "Nothing blocks")
    code, out, _ = await cli(capsys, "ask", sid, "Anything blocking?", "--timeout", "600",
                             "--json")
    assert code == 0 and "Nothing blocks" in out
    notes = tmp_path / "notes.txt"
    notes.write_text("hi\n")
    code, out, _ = await cli(capsys, "upload", str(notes), "--json")
    assert code == 0 and "attachment_id" in out


async def test_create_many_and_watch(served: FakeDevinServer, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    lines = tmp_path / "requests.jsonl"
    lines.write_text("\n".join(json.dumps({"prompt": f"Task {n}", "tags": ["b"]})
                               for n in range(3)) + "\n")
    code, out, _ = await cli(capsys, "create-many", str(lines), "--validate")
    assert code == 0 and served.session_count == 0
    code, out, _ = await cli(capsys, "create-many", str(lines), "--json")
    assert code == 0 and served.session_count == 3
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in records] == [1, 2, 3] and all(r["ok"] for r in records)
    ids = [r["session"]["session_id"] for r in records]
    # Fixed in this audit: `sdk_tags` was printed beside the API's fields (only client_token
    # went under "devin_async"), against "--json ... with the API's field names".
    assert all("sdk_tags" not in r["session"] for r in records)
    code, out, _ = await cli(capsys, "watch", *ids, "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and {e["session"]["session_id"] for e in events} == set(ids)
    assert all(set(e) == {"session", "previous", "gone"} for e in events)


async def test_bad_lines_send_nothing(served: FakeDevinServer, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    lines = tmp_path / "requests.jsonl"
    lines.write_text('{"prompt": "ok"}\n{"prompt": ""}\nnot json\n')
    code, _, err = await cli(capsys, "create-many", str(lines))
    assert code == 2 and served.session_count == 0
    assert "2" in err and "3" in err  # every bad line is listed


@pytest.mark.parametrize(("argv", "code"), [
    (["get", "devin-doesnotexist"], 3),
    (["get"], 2),
])
async def test_json_errors_and_exit_codes(served: FakeDevinServer, argv: list[str], code: int,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    got, out, err = await cli(capsys, *argv, "--json")
    assert got == code
    if code == 3:
        error = json.loads(err.strip().splitlines()[-1])
        assert set(error) >= {"error", "status", "detail"} and error["status"] == 404
        assert served.api_key not in err + out


async def test_wait_timeout_exit_5_and_error_exit_4(served: FakeDevinServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    async with DevinClient(base_url=served.url, api_key=served.api_key,
                           org_id=served.org_id) as client:
        slow = (await client.sessions.create("slow")).session_id
        bad = (await client.sessions.create("bad")).session_id
    served.set_status(slow, "running", "working")
    served.set_status(bad, "error", "error")
    assert (await cli(capsys, "wait", slow, "--timeout", "0.2"))[0] == 5
    assert (await cli(capsys, "wait", bad, "--timeout", "60"))[0] == 4


# -- fake server -----------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v3beta1", "v3"])
async def test_fake_serves_both_versions_over_loopback(version: str) -> None:
    async with FakeDevinServer(time_scale=2000) as server:
        assert server.url.startswith("http://127.0.0.1:")
        async with DevinClient(base_url=server.url, api_key=server.api_key,
                               org_id=server.org_id, api_version=version) as client:
            s = await client.sessions.create("hi")
            assert (await client.sessions.get(s.session_id)).session_id == s.session_id
        assert all(f"/{version}/" in r.path for r in server.requests)


async def test_fake_faults_on_demand() -> None:
    server = FakeDevinServer(time_scale=2000)
    server.inject("create", status=429, retry_after=1)
    async with DevinClient(api_key=server.api_key, org_id=server.org_id,
                           transport=server.transport(),
                           retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(RateLimitError) as info:
            await client.sessions.create("x")
    assert info.value.retry_after == 1


# -- pytest plugin ---------------------------------------------------------------------------

async def test_plugin_fixtures(devin_client: DevinClient, devin_fake: FakeDevinServer) -> None:
    session = await devin_client.sessions.create("do the thing")
    done = await devin_client.sessions.wait(session.session_id)
    assert done.is_settled
    assert devin_fake.session_count == 1
    assert devin_client.base_url == devin_fake.url


@pytest.mark.devin_fake(error_style="problem", seed=7)
async def test_plugin_marker_configures_the_fake(devin_fake: FakeDevinServer) -> None:
    async with DevinClient(base_url=devin_fake.url, api_key="cog_wrong_key_1234567890",
                           org_id=devin_fake.org_id) as client:
        with pytest.raises(Exception) as info:
            await client.sessions.get("devin-x")
    body = getattr(info.value, "body", None)
    assert isinstance(body, dict) and "title" in body  # RFC 9457
