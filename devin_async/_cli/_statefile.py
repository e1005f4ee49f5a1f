"""`watch --state FILE`: the watcher's checkpoint, kept in a file that a crash cannot tear.

Why this shape: the file is replaced, never rewritten in place. The new state goes to a temporary
file in the same directory, is flushed and fsynced, then `os.replace` swaps it in (atomic on
POSIX and Windows), and the directory is fsynced so the rename itself survives a power cut. A
SIGKILL at any instant leaves either the old state or the new one, whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile
from typing import Any

from ._common import UsageError

__all__ = ["StateFile"]

#: Marks the file as ours, so `--state` pointed at another JSON file is refused, not overwritten.
FORMAT = "devin-async watch state"
VERSION = 1


class StateFile:
    """Read and atomically replace one watch state file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = pathlib.Path(path)
        self._last: str | None = None

    def read(self) -> dict[str, Any] | None:
        """Return the checkpoint saved in the file (None: no file yet).

        Raises:
            UsageError: the file cannot be read or is not a watch state file.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UsageError(f"cannot read --state {self.path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or data.get("format") != FORMAT or \
                not isinstance(data.get("checkpoint"), dict):
            raise UsageError(f"--state {self.path} is not a devin-async watch state file "
                             "(remove it, or pick another path)")
        if data.get("version") != VERSION:
            raise UsageError(f"--state {self.path} has version {data.get('version')!r}; this "
                             f"devin-async reads version {VERSION}")
        self._last = json.dumps(data["checkpoint"], sort_keys=True)
        checkpoint: dict[str, Any] = data["checkpoint"]
        return checkpoint

    def write(self, checkpoint: dict[str, Any]) -> bool:
        """Save `checkpoint` unless it is what the file holds already; return whether it wrote."""
        key = json.dumps(checkpoint, sort_keys=True)
        if key == self._last:
            return False
        text = json.dumps({"format": FORMAT, "version": VERSION, "checkpoint": checkpoint})
        directory = self.path.parent
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                    dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_directory(directory)
        self._last = key
        return True


def _fsync_directory(directory: pathlib.Path) -> None:
    # Not every platform can open a directory (Windows); the rename is atomic there anyway.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
