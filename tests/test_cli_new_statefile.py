"""The `watch --state` file: replaced atomically, read back whole, foreign files refused."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from devin_async._cli._common import UsageError
from devin_async._cli._statefile import StateFile

CHECKPOINT = {"sessions": {"devin-a": [1796127073, "running", "working"]}, "tags": ["t"]}


def test_round_trip_and_no_rewrite_when_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "w.state.json"
    state = StateFile(path)
    assert state.read() is None  # no file yet: start fresh
    assert state.write(CHECKPOINT) is True
    before = path.stat().st_mtime_ns, path.stat().st_ino
    assert state.write(json.loads(json.dumps(CHECKPOINT))) is False  # same content: untouched
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    assert StateFile(path).read() == CHECKPOINT
    again = StateFile(path)
    again.read()
    assert again.write(CHECKPOINT) is False  # what was read is what the file holds
    assert again.write({**CHECKPOINT, "tags": ["u"]}) is True
    assert StateFile(path).read() == {**CHECKPOINT, "tags": ["u"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.state.json"]  # no temp left


def test_a_failed_replace_keeps_the_old_state(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.json"
    StateFile(path).write(CHECKPOINT)

    def broken(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space"):
        StateFile(path).write({"other": True})
    monkeypatch.undo()
    assert StateFile(path).read() == CHECKPOINT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.json"]


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "is not a devin-async watch state file"),
    ('{"sessions": {}}', "is not a devin-async watch state file"),
    ('{"format": "devin-async watch state", "version": 1, "checkpoint": []}',
     "is not a devin-async watch state file"),
    ('{"format": "devin-async watch state", "version": 9, "checkpoint": {}}',
     "has version 9; this devin-async reads version 1"),
])
def test_a_foreign_file_is_refused_not_overwritten(tmp_path: Path, content: str,
                                                   message: str) -> None:
    path = tmp_path / "other.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        StateFile(path).read()
    assert path.read_text() == content


def test_an_unreadable_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read --state"):
        StateFile(tmp_path).read()  # a directory
