"""`create-many` checks every line before sending; `watch -` reads what create-many printed."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from devin_async import CreateSessionRequest
from devin_async._cli import amain
from devin_async._cli._batch import allowed_keys
from devin_async._cli._watching import ids_from_text
from devin_async.testing import FakeDevinServer

from .helpers import FakeClock, cli_fake

FAST = ["--poll-interval", "0.05"]


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch,
                 cli_clock: FakeClock) -> AsyncIterator[FakeDevinServer]:
    # The server and the CLI's clients share a FakeClock: a poll's sleep moves the session on.
    async with cli_fake(monkeypatch, seed=3, clock=cli_clock) as fake:
        yield fake


def write(tmp_path: Path, lines: list[Any], *, bom: bool = False) -> str:
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    path = tmp_path / "requests.jsonl"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return str(path)


BAD_LINES: list[tuple[Any, str]] = [
    ({"promt": "typo"}, "unknown key 'promt' (did you mean 'prompt'?); newer API fields go in "
                        '"extra_body": {...}'),
    ({"prompt": "x", "colour": "blue", "tittle": 1},
     "unknown keys 'colour', 'tittle' (did you mean 'title'?); newer API fields go in "
     '"extra_body": {...}'),
    ({"title": "no prompt"}, "prompt is required"),
    ("{not json", "not JSON: Expecting property name enclosed in double quotes at column 2"),
    (["a list"], "expected a JSON object (a create body), got list"),
    ({"prompt": "x", "extra_body": [1]}, "extra_body must be a JSON object of body fields"),
    ({"prompt": "x", "max_acu_limit": 0}, "max_acu_limit must be a positive int, got 0"),
    ({"prompt": "x", "title": "a", "extra_body": {"title": "b"}},
     "title is given twice (and in extra_body)"),
    ({"prompt": "x", "advanced_mode": "analyze"},
     "session_links is required when advanced_mode is 'analyze'"),
]


async def test_every_bad_line_is_listed_and_nothing_is_sent(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [{"prompt": "good"}, *(line for line, _ in BAD_LINES), {"prompt": "good too"}]
    path = write(tmp_path, lines)
    assert await amain(["create-many", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    expected = [f"devin-async: error: {path} line {n}: {reason}"
                for n, (_, reason) in enumerate(BAD_LINES, start=2)]
    expected.append("devin-async: error: 9 bad lines of 11; nothing was sent "
                    "(--keep-going sends the good ones)")
    assert captured.err.splitlines() == expected
    assert server.stats.get("creates", 0) == 0


async def test_validate_json_lists_every_bad_line(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, [line for line, _ in BAD_LINES[:2]] + [{"prompt": "ok"}])
    assert await amain(["create-many", path, "--validate", "--json"]) == 2
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert records == [
        {"line": n, "ok": False, "error": {"error": "ValueError", "status": None,
                                           "detail": reason}}
        for n, (_, reason) in enumerate(BAD_LINES[:2], start=1)
    ]
    assert json.loads(captured.err) == {"error": "UsageError", "status": None,
                                        "detail": "2 bad lines of 3; nothing was sent"}
    assert server.stats.get("requests", 0) == 0


@pytest.mark.parametrize("bom", [False, True])
async def test_validate_a_good_file_sends_nothing(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], tmp_path: Path, bom: bool
) -> None:
    path = write(tmp_path, [{"prompt": "a", "tags": ["x"]}, "", {"prompt": "b"}], bom=bom)
    assert await amain(["create-many", path, "--validate"]) == 0
    assert capsys.readouterr().out == "2 requests OK; nothing was sent (--validate)\n"
    assert server.stats.get("requests", 0) == 0


async def test_a_bom_and_extra_body_are_sent(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, [{"prompt": "a", "extra_body": {"future_field": {"x": 1}}}], bom=True)
    assert await amain(["create-many", path, "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["ok"] is True
    body = server.create_request(record["session"]["session_id"])
    assert body["prompt"] == "a" and body["future_field"] == {"x": 1}
    assert "extra_body" not in body


async def test_a_known_field_in_extra_body_is_sent_as_that_field(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, [{"prompt": "a", "extra_body": {"title": "from extra_body"}}])
    assert await amain(["create-many", path, "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["session"]["title"] == "from extra_body"


async def test_a_bom_on_stdin(server: FakeDevinServer, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('\ufeff{"prompt": "from a pipe"}\n'))
    assert await amain(["create-many", "-", "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert server.create_request(record["session"]["session_id"])["prompt"] == "from a pipe"


@pytest.mark.parametrize(("content", "message"), [
    (b"", "no create requests in"),
    (b"\n  \n", "no create requests in"),
    (b'{"prompt": "caf\xe9"}\n', "is not UTF-8 text"),
])
async def test_unusable_files(server: FakeDevinServer, capsys: pytest.CaptureFixture[str],
                              tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(content)
    assert await amain(["create-many", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("devin-async: error: ") and message in err and err.count("\n") == 1


def test_allowed_keys_are_the_request_fields() -> None:
    fields = {f.name for f in attrs.fields(CreateSessionRequest)} - {"extra"}
    assert set(allowed_keys()) == fields | {"extra_body"}
    assert allowed_keys()[0] == "prompt"


# -- watch - ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "ids"), [
    ("devin-a\n\ndevin-b\n", ["devin-a", "devin-b"]),
    ("\ufeffdevin-a  new  title  https://x\n# a comment\n", ["devin-a"]),
    ('{"line": 1, "ok": true, "session": {"session_id": "devin-a"}}\n'
     '{"line": 2, "ok": false, "error": {"error": "ValueError"}}\n'
     '{"session_id": "devin-b", "status": "new"}\n', ["devin-a", "devin-b"]),
])
def test_ids_from_text(text: str, ids: list[str]) -> None:
    assert ids_from_text(text) == ids


@pytest.mark.parametrize(("text", "message"), [
    ("", "no session ids on stdin"),
    ('{"line": 1, "ok": false}\n', "no session ids on stdin"),
    ('{"status": "new"}\n', "stdin line 1: no session_id in this JSON object"),
    ("{oops\n", "stdin line 1: not JSON"),
])
def test_ids_from_bad_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ids_from_text(text)


async def test_create_many_json_piped_into_watch(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path, [{"prompt": f"p{i}"} for i in range(3)])
    assert await amain(["create-many", path, "--json", "--ordered"]) == 0
    piped = capsys.readouterr().out
    created = [json.loads(line)["session"]["session_id"] for line in piped.splitlines()]
    for sid in created:
        server.set_status(sid, "running", "waiting_for_user")
    monkeypatch.setattr(sys, "stdin", io.StringIO(piped))
    assert await amain(["watch", "-", *FAST]) == 0
    lines = capsys.readouterr().out.splitlines()
    top = lines.index(next(line for line in lines if line.startswith("SESSION")))
    assert [line.split()[0] for line in lines[top + 1:top + 4]] == created  # in the given order
    assert lines[-1] == "3 sessions: 3 running/waiting_for_user"
