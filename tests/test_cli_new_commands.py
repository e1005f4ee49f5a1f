"""The second release's commands, run through the CLI's entry point against a FakeDevinServer:
whoami, upload, download, create --attach, run, ask, insights (events: test_cli_new_events.py)."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest
from rich.console import Console

from devin_async._cli import amain
from devin_async.testing import FakeDevinServer

from .helpers import FakeClock, cli_fake, json_lines
from .test_cli_live import screen

FAST = ["--poll-interval", "0.05"]
SETTLES = [("claimed", None, 0.0), ("running", "working", 2.0), ("running", "finished", 8.0)]
FAILS = [("running", "working", 0.0), ("error", "error", 6.0)]
EXITS_EARLY = [("running", "working", 0.0), ("exit", None, 4.0)]  # never finished: no output
WORKING_FOREVER = [("running", "working", 0.0)]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"},
                                           "why": {"type": "string"}},
          "required": ["answer"], "additionalProperties": False}
OUTPUT = {"answer": 42, "why": "ünïcode kept"}


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch,
                 cli_clock: FakeClock) -> AsyncIterator[FakeDevinServer]:
    # The server and the CLI's clients share a FakeClock: a poll's sleep moves the session on.
    async with cli_fake(monkeypatch, seed=7, clock=cli_clock) as fake:
        monkeypatch.delenv("COLUMNS", raising=False)
        yield fake


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await amain(list(argv))
    captured = capsys.readouterr()
    if "--json" in argv:
        assert "\x1b" not in captured.out
    return code, captured.out, captured.err


def one_json_error(err: str) -> dict[str, Any]:
    assert err.count("\n") == 1 and "Traceback" not in err
    record = json.loads(err)
    assert set(record) == {"error", "status", "detail"} and record["detail"]
    assert isinstance(record, dict)
    return record


def created_ids(server: FakeDevinServer) -> list[str]:
    return list(server.sessions)


# -- whoami ----------------------------------------------------------------------------------


@pytest.mark.parametrize("with_org", [True, False])
async def test_whoami_text(server: FakeDevinServer, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch, with_org: bool) -> None:
    if not with_org:
        monkeypatch.delenv("DEVIN_ORG_ID")
    code, out, err = await run_cli(capsys, "whoami")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["principal_type", "service_user"]
    assert lines[1].split() == ["org_id", server.org_id]
    assert [line.split()[0] for line in lines[:4]] == [
        "principal_type", "org_id", "service_user_id", "service_user_name"]
    hint = f"to use this organization: export DEVIN_ORG_ID={server.org_id}"
    assert (lines[-1] == hint) == (not with_org)
    assert "user_name" not in [line.split()[0] for line in lines]  # empty rows left out
    assert server.requests[-1].path == "/v3/self"  # never below an organization


async def test_whoami_json_has_the_api_fields(server: FakeDevinServer,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    token = server.add_token(principal_type="pat_user", name="ada")
    monkeypatch.setenv("DEVIN_API_KEY", token)
    monkeypatch.delenv("DEVIN_ORG_ID")
    code, out, err = await run_cli(capsys, "whoami", "--json")
    assert code == 0 and err == ""
    (record,) = json_lines(out)
    assert record["principal_type"] == "pat_user" and record["user_name"] == "ada"
    assert record["org_id"] == server.org_id and record["api_key_name"] == "ada-key"
    assert {"principal_type", "org_id", "service_user_id", "service_user_name", "user_id",
            "user_name"} <= set(record)
    assert token not in out


async def test_whoami_warns_when_the_org_id_is_another(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVIN_ORG_ID", "org-someoneelse")
    code, out, err = await run_cli(capsys, "whoami")
    assert code == 0 and f"org_id             {server.org_id}" in out
    assert err == (f"devin-async: warning: DEVIN_ORG_ID/--org-id is org-someoneelse, but this "
                   f"key belongs to {server.org_id}\n")


async def test_whoami_with_a_wrong_key_exits_3(server: FakeDevinServer,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVIN_API_KEY", "cog_notAKeyTheServerKnows0000")
    code, out, err = await run_cli(capsys, "whoami", "--json")
    assert code == 3 and out == ""
    assert one_json_error(err)["status"] == 401
    assert "cog_notAKeyTheServerKnows0000" not in err


@pytest.mark.parametrize("argv", [
    ["get", "devin-x"], ["events", "devin-x"], ["run", "x"], ["ask", "devin-x", "hi"],
    ["insights", "devin-x"], ["upload", __file__], ["create", "x"],
])
async def test_a_missing_org_id_points_to_whoami(server: FakeDevinServer,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 argv: list[str]) -> None:
    monkeypatch.delenv("DEVIN_ORG_ID")
    server.clear_requests()
    code, out, err = await run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err == ("devin-async: error: an organization id is required: pass --org-id or set "
                   "DEVIN_ORG_ID (`devin-async whoami` shows the key's organization)\n")
    assert server.requests == []


# -- upload, download, create --attach ----------------------------------------------------------


async def test_upload_text_and_json(server: FakeDevinServer, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello\x00world")
    code, out, _ = await run_cli(capsys, "upload", str(path))
    assert code == 0
    rows = dict(line.split(None, 1) for line in out.splitlines())
    assert list(rows) == ["attachment_id", "name", "url"]
    assert rows["name"] == "notes.txt" and rows["url"].endswith("/notes.txt")
    assert server.file(rows["attachment_id"]) == b"hello\x00world"
    code, out, _ = await run_cli(capsys, "upload", str(path), "--name", "other.bin", "--json")
    (record,) = json_lines(out)
    assert code == 0 and set(record) == {"attachment_id", "name", "url"}
    assert record["name"] == "other.bin" and server.uploads[record["attachment_id"]] == "other.bin"


async def test_upload_from_stdin_needs_a_name(server: FakeDevinServer,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"\xff\xfebinary"))
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, _ = await run_cli(capsys, "upload", "-", "--name", "blob.bin", "--json")
    (record,) = json_lines(out)
    assert code == 0 and server.file(record["attachment_id"]) == b"\xff\xfebinary"
    code, out, err = await run_cli(capsys, "upload", "-")
    assert code == 2 and err == ("devin-async: error: upload -: --name is required (stdin has "
                                 "no file name)\n")


@pytest.mark.parametrize("mode", ["redirect", "direct"])
async def test_download_to_a_file_and_a_directory(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    mode: Literal["redirect", "direct"]
) -> None:
    server.download_mode = mode
    data = bytes(range(256)) * 100
    url = server.add_file(data, name="report.pdf")["url"]
    code, out, _ = await run_cli(capsys, "download", url, str(tmp_path / "a.pdf"))
    assert code == 0 and out == f"25600 bytes written to {tmp_path / 'a.pdf'}\n"
    assert (tmp_path / "a.pdf").read_bytes() == data
    code, out, _ = await run_cli(capsys, "download", url, str(tmp_path), "--json")
    assert code == 0 and json_lines(out) == [
        {"url": url, "path": str(tmp_path / "report.pdf"), "bytes": 25600}]
    assert (tmp_path / "report.pdf").read_bytes() == data
    assert not server.bucket_saw_authorization


async def test_download_to_stdout(server: FakeDevinServer,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"line one\nline two\n\x00\xff"
    url = server.add_file(data, name="raw.bin")["url"]
    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer))
    assert await amain(["download", url, "-"]) == 0
    assert buffer.getvalue() == data


@pytest.mark.parametrize(("argv", "message"), [
    (["download", "https://elsewhere.example/attachments/x/y", "out"], "attachment URL of"),
    (["download", "URL", "-", "--json"], "--json cannot"),
])
async def test_download_refusals_exit_2(server: FakeDevinServer,
                                        capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        argv: list[str], message: str) -> None:
    server.clear_requests()
    code, _, err = await run_cli(capsys, *[str(tmp_path / a) if a == "out" else a for a in argv])
    assert code == 2 and message in err and err.count("\n") == 1
    assert server.requests == []


async def test_create_attach_uploads_then_creates(server: FakeDevinServer,
                                                  capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "b.log").write_text("second")
    code, out, _ = await run_cli(capsys, "create", "Look at these", "--attach",
                                 str(tmp_path / "a.txt"), "--attach", str(tmp_path / "b.log"),
                                 "--field", 'attachment_urls=["https://example.com/c.png"]',
                                 "--json")
    assert code == 0
    (session,) = json_lines(out)
    body = server.create_request(session["session_id"])
    assert sorted(server.uploads.values()) == ["a.txt", "b.log"]
    urls = body["attachment_urls"]
    assert urls[0] == "https://example.com/c.png" and len(urls) == 3
    assert [u.rsplit("/", 1)[1] for u in urls[1:]] == ["a.txt", "b.log"]
    stored = {name: server.file(aid) for aid, name in server.uploads.items()}
    assert stored == {"a.txt": b"first", "b.log": b"second"}


async def test_create_attach_checks_every_file_before_sending(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("first")
    code, out, err = await run_cli(capsys, "create", "x", "--attach", str(tmp_path / "a.txt"),
                                   "--attach", str(tmp_path / "missing.txt"))
    assert code == 2 and out == ""
    missing = tmp_path / "missing.txt"
    assert err == f"devin-async: error: --attach '{missing}': not a readable file\n"
    assert server.uploads == {} and server.session_count == 0


# -- run --------------------------------------------------------------------------------------


@pytest.mark.parametrize("inline", [False, True])
async def test_run_with_a_schema_prints_the_output(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], tmp_path: Path, inline: bool
) -> None:
    server.script(SETTLES)
    server.output_generator = lambda schema: OUTPUT if schema == SCHEMA else {"wrong": 1}
    schema_file = tmp_path / "answer.schema.json"
    schema_file.write_text(json.dumps(SCHEMA))
    schema = json.dumps(SCHEMA) if inline else str(schema_file)
    code, out, err = await run_cli(capsys, "run", "What is it?", "--schema", schema,
                                   "--tag", "q", *FAST)
    assert code == 0 and err == ""
    lines = out.splitlines()
    created = re.fullmatch(r"\[ *\d+\.\ds\] (devin-\w+) created claimed", lines[0])
    assert created is not None
    sid = created.group(1)
    body = server.create_request(sid)
    assert body["structured_output_schema"] == SCHEMA and body["tags"][0] == "q"
    printed = "\n".join(lines[lines.index("{"):])
    assert json.loads(printed) == OUTPUT and '"ünïcode kept"' in printed  # indented, readable


async def test_run_json_prints_only_the_output(server: FakeDevinServer,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    server.script(SETTLES)
    server.output_generator = lambda schema: OUTPUT
    code, out, err = await run_cli(capsys, "run", "x", "--schema", json.dumps(SCHEMA),
                                   "--json", *FAST)
    assert code == 0 and err == ""
    assert json_lines(out) == [OUTPUT]


@pytest.mark.parametrize("json_mode", [False, True])
async def test_run_without_a_schema_prints_the_final_session(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], json_mode: bool
) -> None:
    server.script(SETTLES)
    argv = ["run", "Fix it", "--title", "fix", *FAST, *(["--json"] if json_mode else [])]
    code, out, err = await run_cli(capsys, *argv)
    assert code == 0 and err == ""
    if json_mode:
        (session,) = json_lines(out)
        assert (session["status"], session["status_detail"]) == ("running", "finished")
        assert session["title"] == "fix"
    else:
        last = out.splitlines()[-1]
        assert last.split()[1:3] == ["running/finished", "fix"]
        assert "running/working" in out  # the changes, as they happened


@pytest.mark.parametrize(("script", "extra", "code", "error", "stdout_session"), [
    (FAILS, [], 4, "SessionFailedError", True),
    (FAILS, ["--schema", json.dumps(SCHEMA)], 4, "SessionFailedError", False),
    (EXITS_EARLY, ["--schema", json.dumps(SCHEMA)], 3, "StructuredOutputError", False),
    (WORKING_FOREVER, ["--timeout", "0.3"], 5, "WaitTimeoutError", True),
    (WORKING_FOREVER, ["--timeout", "0.3", "--schema", json.dumps(SCHEMA)], 5,
     "WaitTimeoutError", False),
])
async def test_run_failures(server: FakeDevinServer, capsys: pytest.CaptureFixture[str],
                            script: list[Any], extra: list[str], code: int, error: str,
                            stdout_session: bool) -> None:
    server.script(script)
    rc, out, err = await run_cli(capsys, "run", "x", *extra, "--json", *FAST)
    assert rc == code
    record = one_json_error(err)
    assert record["error"] == error
    (sid,) = created_ids(server)
    assert sid in record["detail"]  # the error names the session
    printed = json_lines(out)
    assert printed == ([printed[0]] if stdout_session else [])
    if stdout_session:
        assert printed[0]["session_id"] == sid
    rc, _, err = await run_cli(capsys, "get", sid, "--json")
    assert rc == 0  # a timeout leaves the session alone


async def test_run_failure_text(server: FakeDevinServer,
                                capsys: pytest.CaptureFixture[str]) -> None:
    server.script(FAILS)
    code, out, err = await run_cli(capsys, "run", "x", *FAST)
    (sid,) = created_ids(server)
    assert code == 4
    assert err == f"devin-async: error: session {sid} ended in error (error)\n"
    assert out.splitlines()[-1].startswith(f"{sid}  error/error")
    server.script(EXITS_EARLY)
    code, out, err = await run_cli(capsys, "run", "x", "--schema", json.dumps(SCHEMA), *FAST)
    assert code == 3
    assert err.startswith("devin-async: error: session ") and "without a structured output" in err


@pytest.mark.parametrize(("schema", "message"), [
    ("missing.json", "cannot read --schema"),
    ("bad.json", "is not JSON: Expecting value at line 1 column 1"),
    ("list.json", "must be a JSON Schema object, got list"),
    ('{"type": "object", "$ref": "https://x.example/s.json"}', "self-contained"),
])
async def test_run_bad_schema_exits_2_before_sending(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, schema: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("nope")
    (tmp_path / "list.json").write_text("[1]")
    code, out, err = await run_cli(capsys, "run", "x", "--schema", schema)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1
    assert server.session_count == 0


async def test_run_schema_and_field_schema_conflict(server: FakeDevinServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await run_cli(capsys, "run", "x", "--schema", "{}", "--field",
                                 "structured_output_schema={}")
    assert code == 2
    assert err == ("devin-async: error: --field structured_output_schema=... repeats "
                   "--schema\n")


async def test_run_attach(server: FakeDevinServer, capsys: pytest.CaptureFixture[str],
                          tmp_path: Path) -> None:
    server.script(SETTLES)
    (tmp_path / "spec.md").write_text("# spec")
    code, out, _ = await run_cli(capsys, "run", "Implement spec.md", "--attach",
                                 str(tmp_path / "spec.md"), "--json", *FAST)
    assert code == 0
    (session,) = json_lines(out)
    (url,) = server.create_request(session["session_id"])["attachment_urls"]
    assert url.endswith("/spec.md") and list(server.uploads.values()) == ["spec.md"]


# -- ask --------------------------------------------------------------------------------------


async def test_ask_prints_the_reply(server: FakeDevinServer,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    (sid,) = server.add_sessions(1, status="running", status_detail="waiting_for_user")
    server.script_reply(sid, "I ran pytest -q.\nAll 12 passed.")
    code, out, err = await run_cli(capsys, "ask", sid, "Which tests did you run?", *FAST)
    assert code == 0 and err == ""
    assert out == "I ran pytest -q.\nAll 12 passed.\n"
    assert any(m["message"] == "Which tests did you run?" for m in server.messages(sid))
    server.script_reply(sid, "Yes.")
    code, out, _ = await run_cli(capsys, "ask", sid, "Done?", "--json", *FAST)
    (message,) = json_lines(out)
    assert code == 0 and set(message) == {"event_id", "created_at", "message", "source"}
    assert (message["message"], message["source"]) == ("Yes.", "devin")


async def test_ask_timeout_exits_5(server: FakeDevinServer,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    (sid,) = server.add_sessions(1, status="running", status_detail="waiting_for_user")
    server.script_reply(sid, "much later", after=10_000.0)
    code, out, err = await run_cli(capsys, "ask", sid, "hello?", "--timeout", "0.3", "--json",
                                   *FAST)
    assert code == 5 and out == ""
    record = one_json_error(err)
    assert record["error"] == "WaitTimeoutError" and sid in record["detail"]


async def test_ask_a_finished_session_exits_3(server: FakeDevinServer,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (sid,) = server.add_sessions(1, status="exit")
    code, _, err = await run_cli(capsys, "ask", sid, "hello?", "--json", *FAST)
    assert code == 3 and one_json_error(err)["status"] == 409


# -- insights ---------------------------------------------------------------------------------


async def test_insights_before_and_after_generating(server: FakeDevinServer,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (sid,) = server.add_sessions(1, status="running", status_detail="finished")
    code, out, _ = await run_cli(capsys, "insights", sid)
    assert code == 0
    rows = [line.split(None, 1) for line in out.splitlines()]
    assert [r[0] for r in rows] == ["session_id", "status", "title", "size", "messages", "acus",
                                    "analysis"]
    assert rows[-1][1] == "not generated (insights ID --generate)"
    code, out, _ = await run_cli(capsys, "insights", sid, "--generate", *FAST)
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("category") and "%)" in line for line in lines)
    assert "issue             The prompt named no test command" in lines
    assert any(line.startswith("suggested prompt") for line in lines)
    code, out, _ = await run_cli(capsys, "insights", sid, "--json")
    (record,) = json_lines(out)
    assert record["session_id"] == sid and record["analysis"]["classification"]["category"]
    assert {"num_devin_messages", "num_user_messages", "session_size"} <= set(record)


async def test_insights_generate_timeout_exits_5(server: FakeDevinServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (sid,) = server.add_sessions(1, status="exit")
    server.time_scale = 1.0  # the analysis takes 5 real seconds now
    code, out, err = await run_cli(capsys, "insights", sid, "--generate", "--timeout", "0.2",
                                   "--json", *FAST)
    assert code == 5 and out == ""
    assert one_json_error(err)["error"] == "WaitTimeoutError"


async def test_help_lists_the_new_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert await amain(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "ask", "events", "insights", "whoami", "upload", "download"):
        assert f"    {command}" in out
    assert "4    wait/watch/run: a session ended in error" in out


# -- on a terminal ----------------------------------------------------------------------------


async def test_run_on_a_terminal_keeps_the_status_line(server: FakeDevinServer) -> None:
    server.script(SETTLES)
    server.output_generator = lambda schema: OUTPUT
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, color_system="standard")
    assert await amain(["run", "x", "--schema", json.dumps(SCHEMA), *FAST],
                       console=console) == 0
    shot = screen(buffer.getvalue())
    (sid,) = created_ids(server)
    assert re.fullmatch(rf"{sid}  running/finished  · \d+\.\ds", shot[0])
    assert json.loads("\n".join(shot[1:])) == OUTPUT
    assert "\x1b[32m" in buffer.getvalue()  # settled: green


@pytest.mark.parametrize(("argv", "frame"), [
    (["insights", "{sid}", "--generate"], "insights ready"),
    (["ask", "{sid}", "hi"], "waiting for Devin's reply"),
])
async def test_waiting_commands_show_a_status_line(server: FakeDevinServer, argv: list[str],
                                                   frame: str) -> None:
    (sid,) = server.add_sessions(1, status="running", status_detail="waiting_for_user")
    server.script_reply(sid, "hello back")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80)
    assert await amain([a.format(sid=sid) for a in argv] + FAST, console=console) == 0
    shot = screen(buffer.getvalue())
    assert re.fullmatch(rf"{sid}  {frame}  · \d+\.\ds", shot[0])
    assert max(len(line) for line in shot) <= 80
    if argv[0] == "ask":
        assert shot[1:] == ["hello back"]


async def test_a_console_that_is_not_a_terminal_gets_plain_lines(
    server: FakeDevinServer
) -> None:
    server.script(SETTLES)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=80)
    assert await amain(["run", "x", *FAST], console=console) == 0
    text = buffer.getvalue()
    assert "\x1b" not in text
    (sid,) = created_ids(server)
    assert text.splitlines()[-1].startswith(f"{sid}  running/finished")
