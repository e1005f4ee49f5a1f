"""Errors the same everywhere: one line (or one JSON object) on stderr, CLI words, exit codes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from devin_async._cli import amain
from devin_async._cli._common import cli_words
from devin_async._cli._display import session_dict
from devin_async._cli._text import plural
from devin_async.testing import FakeDevinServer

from .helpers import FakeClock, cli_fake

FAST = ["--poll-interval", "0.05"]


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch,
                 cli_clock: FakeClock) -> AsyncIterator[FakeDevinServer]:
    # The server and the CLI's clients share a FakeClock: a poll's sleep moves the session on.
    async with cli_fake(monkeypatch, seed=4, clock=cli_clock) as fake:
        yield fake


@pytest.mark.parametrize(("argv", "code", "error", "status", "detail"), [
    (["get", "devin-doesnotexist"], 3, "NotFoundError", 404, None),
    (["create", "   "], 2, "ValueError", None, "prompt must be a non-empty string"),
    (["frobnicate"], 2, "UsageError", None, None),
    (["list", "--limit", "-1"], 2, "UsageError", None, "--limit must be >= 0 (0: no limit)"),
    (["wait", "devin-x", "--timeout", "-1"], 2, "UsageError", None, None),
    (["serve-fake"], 2, "UsageError", None, None),
])
async def test_json_errors_are_one_object(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], argv: list[str], code: int,
    error: str, status: int | None, detail: str | None
) -> None:
    assert await amain([*argv, "--json"]) == code
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    record = json.loads(captured.err)
    assert set(record) == {"error", "status", "detail"}
    assert (record["error"], record["status"]) == (error, status)
    assert isinstance(record["detail"], str) and record["detail"]
    if detail is not None:
        assert record["detail"] == detail


@pytest.mark.parametrize(("env", "argv", "message"), [
    ({}, ["get", "devin-x"],
     "an API key is required: pass --api-key or set DEVIN_API_KEY"),
    ({"DEVIN_API_KEY": " \n"}, ["get", "devin-x"],
     "an API key is required: pass --api-key or set DEVIN_API_KEY"),
    ({"DEVIN_API_KEY": "cog_x"}, ["get", "devin-x"],
     "an organization id is required: pass --org-id or set DEVIN_ORG_ID"),
    ({"DEVIN_API_KEY": "cog_x y", "DEVIN_ORG_ID": "org-1"}, ["get", "devin-x"],
     "the API key (--api-key or DEVIN_API_KEY) contains whitespace or control characters"),
    ({"DEVIN_API_KEY": "cog_x", "DEVIN_ORG_ID": "org-1"},
     ["get", "devin-x", "--base-url", "ftp://x"], "the base URL (--base-url or DEVIN_BASE_URL)"),
])
async def test_configuration_messages_use_cli_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str], argv: list[str], message: str
) -> None:
    for name in ("DEVIN_API_KEY", "DEVIN_ORG_ID", "DEVIN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert await amain(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"devin-async: error: {message}") and err.count("\n") == 1
    assert "api_key=" not in err and "org_id=" not in err


@pytest.mark.parametrize("padding", ["\n", "  \r\n", "\t"])
async def test_a_key_read_from_a_file_works(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, padding: str
) -> None:
    monkeypatch.setenv("DEVIN_API_KEY", server.api_key + padding)
    monkeypatch.setenv("DEVIN_ORG_ID", server.org_id + padding)
    assert await amain(["list", "--json"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("message", "reworded"), [
    ("an API key is required: pass api_key= or set DEVIN_API_KEY",
     "an API key is required: pass --api-key or set DEVIN_API_KEY"),
    ("org_id must be an id", "the organization id (--org-id or DEVIN_ORG_ID) must be an id"),
    ("prompt must be a non-empty string", "prompt must be a non-empty string"),
])
def test_cli_words(message: str, reworded: str) -> None:
    assert cli_words(message) == reworded


@pytest.mark.parametrize(("n", "one", "many", "text"), [
    (0, "other retry", "other retries", "0 other retries"),
    (1, "other retry", "other retries", "1 other retry"),
    (2, "session", None, "2 sessions"),
    (1, "session", None, "1 session"),
])
def test_plural(n: int, one: str, many: str | None, text: str) -> None:
    assert plural(n, one, many) == text


async def test_json_sessions_have_api_field_names_only(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await amain(["create", "x", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert "client_token" not in record  # not an API field
    sdk = record.get("devin_async", {})
    assert set(sdk) <= {"client_token"}
    if sdk:
        assert sdk["client_token"] and not any(
            t.startswith("devin-async-") for t in record["tags"])


def test_session_dict_moves_sdk_fields_aside() -> None:
    from devin_async import Session, SessionStatus

    session = Session(session_id="devin-1", status=SessionStatus.NEW, url="u", org_id="o",
                      created_at=1, updated_at=2, client_token="tok")
    data = session_dict(session)
    assert data["devin_async"] == {"client_token": "tok"} and "client_token" not in data
    assert data["status"] == "new"
    plain: dict[str, Any] = session_dict(Session(
        session_id="devin-1", status=SessionStatus.NEW, url="u", org_id="o", created_at=1,
        updated_at=2))
    assert "devin_async" not in plain


# -- list order ------------------------------------------------------------------------------


async def test_list_newest_first_reads_every_page(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [server.add_sessions(1, created_at=1_700_000_000 + i)[0] for i in range(5)]
    assert await amain(["list", "--json", "--limit", "2"]) == 0
    oldest = [json.loads(line)["session_id"] for line in capsys.readouterr().out.splitlines()]
    assert oldest == ids[:2]
    assert await amain(["list", "--json", "--limit", "2", "--newest-first"]) == 0
    newest = [json.loads(line)["session_id"] for line in capsys.readouterr().out.splitlines()]
    assert newest == [ids[4], ids[3]]
    assert await amain(["list", "--newest-first"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:6]] == ids[::-1]
    assert lines[-1] == "5 sessions, newest first"


async def test_list_help_states_the_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert await amain(["list", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "oldest first" in out and "--newest-first reads every matching page" in out


async def test_watch_plain_rows_keep_the_given_order(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = server.add_sessions(3, status="running", status_detail="finished")
    given = [ids[2], ids[0], "devin-neverexisted", ids[1]]
    assert await amain(["watch", *given, *FAST]) == 3  # an id was not found
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    top = lines.index(next(line for line in lines if line.startswith("SESSION")))
    rows = lines[top + 1:top + 5]
    assert [row.split()[0] for row in rows] == given
    assert rows[2].split()[1:3] == ["not", "found"]
    assert any(line.endswith("devin-neverexisted not found") for line in lines[:top])  # event
    assert lines[-1] == "3 sessions: 3 running/finished; 1 not found"
