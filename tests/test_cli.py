"""The `devin-async` command line, run in-process (`amain`) against a FakeDevinServer."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devin_async._cli import _commands, amain, build_parser, main
from devin_async._cli._display import Output
from devin_async.testing import FakeDevinServer

from .helpers import FakeClock, cli_fake, json_lines

FAST = ["--poll-interval", "0.05"]
WORKING_FOREVER = [("running", "working", 0.0)]
SETTLES = [("claimed", None, 0.0), ("running", "working", 2.0), ("running", "finished", 8.0)]
FAILS = [("running", "working", 0.0), ("error", "error", 6.0)]


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch,
                 cli_clock: FakeClock) -> AsyncIterator[FakeDevinServer]:
    # The server and the CLI's clients share a FakeClock: a poll's sleep moves the session on.
    async with cli_fake(monkeypatch, seed=1, clock=cli_clock) as fake:
        yield fake


async def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[Any], str]:
    code = await amain([*argv, "--json"])
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out  # never ANSI in --json mode
    return code, json_lines(captured.out), captured.err


async def create(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, _ = await run_json(capsys, "create", *argv)
    assert code == 0
    (session,) = out
    assert isinstance(session, dict)
    return session


# -- one-shot commands ---------------------------------------------------------------------


async def test_create_sends_every_flag(server: FakeDevinServer,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    session = await create(
        capsys, "Fix the flaky test", "--title", "flaky", "--tag", "a", "--tag", "b",
        "--repo", "me/app", "--max-acu-limit", "5", "--knowledge-id", "k1",
        "--secret-id", "s1", "--playbook-id", "playbook-1", "--bypass-approval",
        "--field", "devin_mode=fast", "--field", 'structured_output_schema={"type": "object"}',
    )
    assert session["title"] == "flaky"
    assert session["tags"] == ["a", "b"]
    assert session["status"] == "new"
    body = server.create_request(session["session_id"])
    assert body["prompt"] == "Fix the flaky test"
    assert body["repos"] == ["me/app"]
    assert body["max_acu_limit"] == 5
    assert body["knowledge_ids"] == ["k1"] and body["secret_ids"] == ["s1"]
    assert body["playbook_id"] == "playbook-1" and body["bypass_approval"] is True
    assert body["devin_mode"] == "fast"
    assert body["structured_output_schema"] == {"type": "object"}
    assert "advanced_mode" not in body and "create_as_user_id" not in body


async def test_create_prints_a_line_without_json(server: FakeDevinServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert await amain(["create", "hello", "--title", "greeting"]) == 0
    out = capsys.readouterr().out
    assert re.match(r"devin-\S+  new  greeting  http", out)
    assert "\x1b" not in out  # not a terminal: no colors


async def test_global_flags_before_or_after_the_command(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEVIN_BASE_URL")
    monkeypatch.delenv("DEVIN_ORG_ID")
    sid = (await create(capsys, "x", "--base-url", server.url, "--org-id", server.org_id))[
        "session_id"]
    for argv in (["--json", "--base-url", server.url, "--org-id", server.org_id, "get", sid],
                 ["get", sid, "--json", "--base-url", server.url, "--org-id", server.org_id],
                 ["--base-url", server.url, "get", sid, "--org-id", server.org_id, "--json"]):
        assert await amain(argv) == 0
        assert json_lines(capsys.readouterr().out)[0]["session_id"] == sid


async def test_get(server: FakeDevinServer, capsys: pytest.CaptureFixture[str]) -> None:
    sid = (await create(capsys, "x", "--title", "t1", "--tag", "ci"))["session_id"]
    code, out, _ = await run_json(capsys, "get", sid)
    assert code == 0
    assert out[0]["session_id"] == sid and out[0]["title"] == "t1"
    assert set(out[0]) >= {"status", "status_detail", "url", "created_at", "pull_requests"}
    assert await amain(["get", sid]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == f"session_id  {sid}" and "tags        ci" in lines
    assert [line.split()[0] for line in lines] == [
        "session_id", "status", "title", "url", "created", "updated", "tags", "acus"]  # no empties


async def test_list_filters_and_limits(server: FakeDevinServer,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    server.add_sessions(5, tags=["other"])
    tagged = {(await create(capsys, f"p{i}", "--tag", "mine"))["session_id"] for i in range(3)}
    code, out, _ = await run_json(capsys, "list", "--tag", "mine")
    assert code == 0 and {s["session_id"] for s in out} == tagged
    code, out, _ = await run_json(capsys, "list", "--limit", "2")
    assert code == 0 and len(out) == 2
    code, out, _ = await run_json(capsys, "list", "--limit", "0")
    assert len(out) == 8
    one = sorted(tagged)[0]
    code, out, _ = await run_json(capsys, "list", "--session-id", one,
                                  "--created-after", "2000-01-01T00:00:00+00:00")
    assert [s["session_id"] for s in out] == [one]
    assert await amain(["list", "--tag", "mine"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SESSION", "STATUS", "CREATED", "TITLE"] and len(lines) == 5
    assert lines[-1] == "3 sessions, oldest first"


async def test_list_empty(server: FakeDevinServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert await amain(["list", "--tag", "nothing-has-this"]) == 0
    assert capsys.readouterr().out == "no sessions\n"


async def test_message_and_terminate(server: FakeDevinServer,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    sid = (await create(capsys, "x"))["session_id"]
    code, out, _ = await run_json(capsys, "message", sid, "please also add tests")
    assert code == 0 and out[0]["session_id"] == sid
    assert any(m["message"] == "please also add tests" for m in server.messages(sid))
    code, out, _ = await run_json(capsys, "terminate", sid, "--archive")
    assert code == 0
    assert out[0]["status"] == "exit" and out[0]["is_archived"] is True


# -- wait and watch ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "until", "code", "status"),
    [
        (SETTLES, "settled", 0, "running"),
        (FAILS, "settled", 4, "error"),
        (FAILS, "terminal", 4, "error"),
    ],
)
async def test_wait(server: FakeDevinServer, capsys: pytest.CaptureFixture[str],
                    script: list[Any], until: str, code: int, status: str) -> None:
    server.script(script)
    sid = (await create(capsys, "x"))["session_id"]
    rc, out, _ = await run_json(capsys, "wait", sid, "--until", until, *FAST)
    assert rc == code
    assert len(out) == 1 and out[0]["session_id"] == sid and out[0]["status"] == status


async def test_wait_plain_lines_show_each_change(server: FakeDevinServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    server.script(SETTLES)
    sid = (await create(capsys, "x"))["session_id"]
    assert await amain(["wait", sid, *FAST]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.endswith(f"{sid} running/working") for line in lines)
    assert lines[-1].startswith(f"{sid}  running/finished")


async def test_wait_timeout_exits_5(server: FakeDevinServer,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    server.script(WORKING_FOREVER)
    sid = (await create(capsys, "x"))["session_id"]
    rc, out, err = await run_json(capsys, "wait", sid, "--timeout", "0.3", *FAST)
    assert rc == 5
    assert out[-1]["status"] == "running"  # the last session seen
    assert json.loads(err) == {"error": "WaitTimeoutError", "status": None,
                               "detail": json.loads(err)["detail"]}
    assert err.count("\n") == 1


async def test_watch(server: FakeDevinServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.script(SETTLES)
    server.script(FAILS)
    ok = (await create(capsys, "a"))["session_id"]
    bad = (await create(capsys, "b"))["session_id"]
    rc, events, _ = await run_json(capsys, "watch", ok, bad, *FAST)
    assert rc == 4
    last = {e["session"]["session_id"]: e["session"] for e in events}
    assert last[ok]["status_detail"] == "finished" and last[bad]["status"] == "error"
    assert all(set(e) == {"gone", "previous", "session"} for e in events)
    assert any(e["previous"] is not None for e in events)


async def test_watch_settled_sessions_exits_0(server: FakeDevinServer,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    ids = server.add_sessions(2, status="running", status_detail="waiting_for_user")
    assert await amain(["watch", *ids, *FAST]) == 0
    out = capsys.readouterr().out
    assert "2 sessions: 2 running/waiting_for_user" in out


async def test_watch_timeout_exits_5(server: FakeDevinServer,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    server.script(WORKING_FOREVER)
    sid = (await create(capsys, "x"))["session_id"]
    rc, _, err = await run_json(capsys, "watch", sid, "--timeout", "0.3", *FAST)
    assert rc == 5 and json.loads(err)["error"] == "WaitTimeoutError"
    assert "timed out" in json.loads(err)["detail"]


# -- create-many ---------------------------------------------------------------------------


async def test_create_many_keep_going(server: FakeDevinServer,
                                     capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lines = [
        json.dumps({"prompt": "one", "title": "t1"}),
        "{not json",
        "",
        json.dumps({"prompt": "two", "tags": ["x"], "extra_body": {"future_field": "fast"}}),
        json.dumps({"prompt": "three", "max_acu_limit": 0}),
        json.dumps(["a list"]),
        json.dumps({"prompt": "four"}),
    ]
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rc, out, _ = await run_json(capsys, "create-many", str(path), "--concurrency", "2",
                                "--keep-going")
    assert rc == 3  # some lines failed
    by_line = {r["line"]: r for r in out}
    assert sorted(by_line) == [1, 2, 4, 5, 6, 7]
    assert [n for n, r in sorted(by_line.items()) if r["ok"]] == [1, 4, 7]
    assert by_line[1]["session"]["title"] == "t1"
    assert server.create_request(by_line[4]["session"]["session_id"])["future_field"] == "fast"
    assert by_line[2]["error"] == {"error": "ValueError", "status": None,
                                   "detail": "not JSON: Expecting property name enclosed in "
                                             "double quotes at column 2"}
    assert "max_acu_limit" in by_line[5]["error"]["detail"]
    assert server.session_count == 3

    rc, out, _ = await run_json(capsys, "create-many", str(path), "--ordered", "--keep-going")
    assert [r["line"] for r in out] == [1, 2, 4, 5, 6, 7]


async def test_create_many_all_ok_from_stdin(server: FakeDevinServer,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    text = "".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(5))
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    server.inject("create", times=2, status=429, retry_after=0.05, delay=0.2)
    assert await amain(["create-many", "-"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("5 created, 0 failed")
    assert sum(1 for line in out if line.startswith("line ")) == 5
    assert server.session_count == 5


async def test_create_many_missing_file_is_usage(server: FakeDevinServer,
                                                 capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    assert await amain(["create-many", str(tmp_path / "nope.jsonl")]) == 2
    assert capsys.readouterr().err.startswith("devin-async: error: cannot read")


# -- errors and exit codes -----------------------------------------------------------------


async def test_not_found_exits_3(server: FakeDevinServer,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = await run_json(capsys, "get", "devin-doesnotexist")
    assert rc == 3 and out == []
    assert err.count("\n") == 1 and "Traceback" not in err
    error = json.loads(err)
    assert (error["error"], error["status"]) == ("NotFoundError", 404)
    assert isinstance(error["detail"], str) and error["detail"]
    assert await amain(["get", "devin-doesnotexist"]) == 3
    assert capsys.readouterr().err.startswith("devin-async: error: 404")


async def test_wrong_key_is_never_printed(server: FakeDevinServer,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "cog_thisIsAWrongKeyThatMustNotLeak1234"
    monkeypatch.setenv("DEVIN_API_KEY", secret)
    assert await amain(["get", "devin-x"]) == 3
    captured = capsys.readouterr()
    assert "401" in captured.err
    assert secret not in captured.out + captured.err
    assert await amain(["--api-key", secret, "list"]) == 3
    captured = capsys.readouterr()
    assert "prefer DEVIN_API_KEY" in captured.err
    assert secret not in captured.out + captured.err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["get"],
        ["create"],
        ["wait", "devin-x", "--until", "forever"],
        ["wait", "devin-x", "--timeout", "-1"],
        ["list", "--created-after", "yesterday"],
        ["create", "x", "--field", "no-equals-sign"],
        ["create", "x", "--max-acu-limit", "0"],
        ["create-many", "f.jsonl", "--concurrency", "0"],
        ["--api-version", "v9", "list"],
    ],
)
async def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert await amain(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("devin-async: error: ") and err.count("\n") == 1  # one line
    assert "--help)" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["create", "   "], "prompt"),
        (["create", "x", "--advanced-mode", "analyze"], "session_links"),
        (["create", "x", "--field", "title=dup", "--title", "t"],
         "--field title=... repeats --title"),
        (["create", "x", "--field", "max_acu_limit=0"], "max_acu_limit must be a positive"),
        (["list", "--limit", "-1"], "--limit"),
        (["get", "not a valid id!"], "session_id"),
    ],
)
async def test_bad_values_exit_2(server: FakeDevinServer, capsys: pytest.CaptureFixture[str],
                                 argv: list[str], message: str) -> None:
    assert await amain(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("devin-async: error:") and message in err
    assert server.stats.get("creates", 0) == 0


async def test_missing_configuration_exits_2(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEVIN_API_KEY", "DEVIN_ORG_ID", "DEVIN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert await amain(["get", "devin-x"]) == 2
    assert capsys.readouterr().err == ("devin-async: error: an API key is required: pass "
                                       "--api-key or set DEVIN_API_KEY\n")


async def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert await amain(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and "devin-async demo" in out
    for command in ("create", "get", "list", "message", "terminate", "wait", "watch",
                    "create-many", "serve-fake", "demo"):
        assert command in out


async def test_serve_fake_needs_main(capsys: pytest.CaptureFixture[str]) -> None:
    assert await amain(["serve-fake"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("devin-async: error:") and "main()" in err


# -- main(): the event loop and Ctrl-C ---------------------------------------------------------


def test_main_runs_its_own_loop(capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVIN_API_KEY", raising=False)
    assert main(["get", "devin-x", "--org-id", "org-1"]) == 2
    assert main(["--version"]) == 0
    assert "devin-async" in capsys.readouterr().out


@pytest.mark.parametrize("exc", [KeyboardInterrupt, asyncio.CancelledError])
def test_main_ctrl_c_exits_130(capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch, exc: type[BaseException]) -> None:
    async def interrupted(args: argparse.Namespace, out: Output) -> int:
        raise exc

    monkeypatch.setitem(_commands.COMMANDS, "get", interrupted)
    assert main(["get", "devin-x"]) == 130
    assert capsys.readouterr().err == "devin-async: interrupted\n"


def test_unexpected_error_is_one_line(capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(args: argparse.Namespace, out: Output) -> int:
        raise RuntimeError("boom")

    monkeypatch.setitem(_commands.COMMANDS, "get", broken)
    monkeypatch.delenv("DEVIN_ASYNC_LOG", raising=False)
    assert main(["get", "devin-x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: boom" in err


# -- subprocesses: python -m, serve-fake -------------------------------------------------------


def test_import_does_not_load_the_cli() -> None:
    code = "import sys, devin_async; print('devin_async._cli' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, check=True)
    assert result.stdout.strip() == "False"


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "devin_async", "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "usage: devin-async" in result.stdout


def test_serve_fake_serves_and_stops_on_ctrl_c() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devin_async", "serve-fake", "--port", "0", "--time-scale", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert banner.startswith("export DEVIN_BASE_URL=")
        found = dict(re.findall(r"(DEVIN_\w+)=(\S+)", banner))
        url = found["DEVIN_BASE_URL"]
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(
            f"{url}/v3beta1/organizations/{found['DEVIN_ORG_ID']}/sessions",
            headers={"Authorization": f"Bearer {found['DEVIN_API_KEY']}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert "items" in json.loads(response.read())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_ctrl_c_stops_a_long_command_cleanly() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devin_async", "demo", "--time-scale", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Fake Devin at")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 130
        assert err == "devin-async: interrupted\n"  # no traceback
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


# -- the display ---------------------------------------------------------------------------


@pytest.mark.parametrize("tty", [True, False])
def test_json_mode_never_writes_ansi(tty: bool) -> None:
    from rich.console import Console

    stream = io.StringIO()
    console = Console(file=io.StringIO(), force_terminal=tty, width=80)
    out = Output(stream, json_mode=True, console=console)
    assert not out.live
    out.event("text", {"a": 1})
    out.json({"b": "x"})
    out.line("not in json mode")  # a plain line still goes to the JSON stream, as given
    assert stream.getvalue() == '{"a":1}\n{"b":"x"}\nnot in json mode\n'
    assert console.file.getvalue() == ""  # type: ignore[attr-defined]


def test_parser_builds() -> None:
    assert build_parser().prog == "devin-async"


async def test_watch_unknown_session_exits_3(server: FakeDevinServer,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc, events, err = await run_json(capsys, "watch", "devin-doesnotexist", *FAST)
    assert rc == 3
    assert events == [{"gone": True, "not_found": True, "previous": None, "session": None,
                       "session_id": "devin-doesnotexist"}]
    assert json.loads(err) == {"warning": "watching sessions: session devin-doesnotexist was "
                                          "not found; no longer watched"}


async def test_wait_unknown_session_exits_3(server: FakeDevinServer,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = await run_json(capsys, "wait", "devin-doesnotexist", *FAST)
    assert rc == 3 and out == [] and json.loads(err)["status"] == 404
