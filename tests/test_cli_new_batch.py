"""`create-many --batch-key KEY` (alias `--resume KEY`): a rerun creates only what is missing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devin_async import RetryPolicy
from devin_async._cli import _commands, amain
from devin_async.testing import FakeDevinServer

from .helpers import cli_fake

#: The fake's list index does not lag, so a batch's final duplicate check need not wait the
#: default 3 s `settle` (real time) after its last create: the CLI's client gets a short one.
QUICK_SETTLE = RetryPolicy(settle=0.05)


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDevinServer]:
    make_client = _commands.make_client
    monkeypatch.setattr(_commands, "make_client",
                        lambda args, **kw: make_client(args, **{"retry": QUICK_SETTLE, **kw}))
    async with cli_fake(monkeypatch, seed=5) as fake:
        yield fake


def write_lines(path: Path, bodies: list[Any]) -> Path:
    path.write_text("".join((b if isinstance(b, str) else json.dumps(b)) + "\n" for b in bodies))
    return path


async def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[Any]]:
    code = await amain([*argv, "--json"])
    out = capsys.readouterr().out
    return code, sorted((json.loads(line) for line in out.splitlines() if line.strip()),
                        key=lambda r: int(r["line"]))


@pytest.mark.parametrize("flag", ["--batch-key", "--resume"])
async def test_a_rerun_reports_existing_and_creates_the_rest(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str
) -> None:
    path = write_lines(tmp_path / "batch.jsonl", [{"prompt": f"p{i}"} for i in range(3)])
    code, first = await run_json(capsys, "create-many", str(path), flag, "nightly-1")
    assert code == 0 and [r["existing"] for r in first] == [False] * 3
    # "The crash": the file had 3 lines then; 2 more now. The rerun creates only those.
    write_lines(path, [{"prompt": f"p{i}"} for i in range(5)])
    code, second = await run_json(capsys, "create-many", str(path), flag, "nightly-1")
    assert code == 0 and server.session_count == 5
    assert [r["existing"] for r in second] == [True, True, True, False, False]
    assert [r["session"]["session_id"] for r in second[:3]] == [
        r["session"]["session_id"] for r in first]
    assert await amain(["create-many", str(path), flag, "nightly-1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(
        "5 already existed, 0 created, 0 failed in ")
    assert server.session_count == 5


async def test_text_lines_mark_existing_sessions(server: FakeDevinServer,
                                                 capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    path = write_lines(tmp_path / "b.jsonl", [{"prompt": "a", "title": "first"}])
    assert await amain(["create-many", str(path), "--batch-key", "k"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("0 already existed, 1 created, 0 failed in ")
    assert not lines[0].endswith("(already existed)")
    assert await amain(["create-many", str(path), "--batch-key", "k"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("line 1: devin-") and lines[0].endswith("first  (already existed)")
    assert lines[-1].startswith("1 already existed, 0 created, 0 failed in ")


async def test_fixing_a_bad_line_does_not_shift_the_keys(
    server: FakeDevinServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "b.jsonl", [{"prompt": "one"}, "{broken", {"prompt": "three"}])
    code, first = await run_json(capsys, "create-many", str(path), "--batch-key", "k",
                                 "--keep-going")
    assert code == 3 and server.session_count == 2
    write_lines(path, [{"prompt": "one"}, {"prompt": "two"}, {"prompt": "three"}])
    code, second = await run_json(capsys, "create-many", str(path), "--batch-key", "k")
    assert code == 0 and server.session_count == 3
    assert [r["existing"] for r in second] == [True, False, True]
    assert second[2]["session"]["session_id"] == first[2]["session"]["session_id"]
    assert server.create_request(second[1]["session"]["session_id"])["prompt"] == "two"


async def test_a_line_with_its_own_key_keeps_it(server: FakeDevinServer,
                                                capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    path = write_lines(tmp_path / "b.jsonl", [{"prompt": "x", "idempotency_key": "mine"}])
    code, (first,) = await run_json(capsys, "create-many", str(path), "--batch-key", "k")
    assert code == 0
    # Another batch key: the line's own key still finds the same session.
    code, (second,) = await run_json(capsys, "create-many", str(path), "--batch-key", "other")
    assert code == 0 and second["existing"] is True and server.session_count == 1
    assert second["session"]["session_id"] == first["session"]["session_id"]


async def test_without_a_batch_key_nothing_changes(server: FakeDevinServer,
                                                   capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    path = write_lines(tmp_path / "b.jsonl", [{"prompt": "x"}])
    code, (record,) = await run_json(capsys, "create-many", str(path))
    assert code == 0 and set(record) == {"line", "ok", "session"}
    assert await amain(["create-many", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("1 created, 0 failed in ")
    assert server.session_count == 2  # no key: a rerun creates again


@pytest.mark.parametrize(("argv", "message"), [
    (["--resume"], "argument --resume: expected one argument"),
    (["--batch-key"], "argument --batch-key: expected one argument"),
    (["--batch-key", "a", "--resume", "b"], "--batch-key a and --resume b name different"),
    (["--batch-key", " "], "--batch-key must not be empty"),
    (["--batch-key", "k" * 300], "--batch-key: idempotency_key must be a non-empty string"),
])
async def test_batch_key_usage_errors(server: FakeDevinServer,
                                      capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      argv: list[str], message: str) -> None:
    path = write_lines(tmp_path / "b.jsonl", [{"prompt": "x"}])
    assert await amain(["create-many", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("devin-async: error: ") and message in err and err.count("\n") == 1
    assert server.session_count == 0


async def test_the_same_key_twice_is_fine(server: FakeDevinServer,
                                          capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    path = write_lines(tmp_path / "b.jsonl", [{"prompt": "x"}])
    code, (record,) = await run_json(capsys, "create-many", str(path), "--batch-key", "k",
                                     "--resume", "k")
    assert code == 0 and record["existing"] is False
