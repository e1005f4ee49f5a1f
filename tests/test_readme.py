"""Every Python example in README.md runs, against the fake server, so none can rot.

Each ```python block is run in a fresh interpreter with DEVIN_BASE_URL / DEVIN_API_KEY /
DEVIN_ORG_ID pointing at its own FakeDevinServer (a fast clock, loopback only, on a thread of
this process). A block that defines `test_` functions is run with pytest instead (it is a testing
example); every other block is a program. Each run is bounded in time.

The runs are independent and mostly wait (a batch's settle, a session's lifecycle), so all of
them start together when the first example test needs them; each test then waits for its own
run and checks it (the module takes about as long as its slowest example, not their sum).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from .helpers import ThreadedServer

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
LIMIT = 60.0


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


BLOCKS = _blocks()


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 5


class Run:
    """One README block running in its own interpreter against its own fake server."""

    def __init__(self, line: int, code: str, workdir: Path, server: ThreadedServer) -> None:
        self.line = line
        fake = server.server
        env = {
            **os.environ,
            "DEVIN_BASE_URL": fake.url,
            "DEVIN_API_KEY": fake.api_key,
            "DEVIN_ORG_ID": fake.org_id,
            "PYTHONPATH": str(README.parent),
        }
        env.pop("DEVIN_ASYNC_LOG", None)
        workdir.mkdir()
        if re.search(r"^(async )?def test_", code, re.M):
            path = workdir / "test_example.py"
            path.write_text(code, encoding="utf-8")
            self.args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         "-o", "asyncio_mode=auto",
                         "-o", "asyncio_default_fixture_loop_scope=function", str(path)]
        else:
            path = workdir / "example.py"
            path.write_text(code, encoding="utf-8")
            self.args = [sys.executable, str(path)]
        # Output goes to a file: a pipe nobody reads yet could fill up and stall the example.
        self.output = workdir / "output.txt"
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(self.args, env=env, cwd=workdir, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.deadline = time.monotonic() + LIMIT

    def result(self) -> tuple[int, str]:
        """Wait for the run (within LIMIT of its start); return its status and output."""
        try:
            self.proc.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{' '.join(self.args)} did not end within {LIMIT:g} s") from None
        return self.proc.returncode, self.output.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Run]]:
    root = tmp_path_factory.mktemp("readme")
    started: dict[int, Run] = {}
    with ExitStack() as servers:
        try:
            for line, code in BLOCKS:
                server = servers.enter_context(ThreadedServer(time_scale=200.0))
                started[line] = Run(line, code, root / f"line{line}", server)
            yield started
        finally:  # every run ends before the servers stop
            for run in started.values():
                run.stop()


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_a_readme_example_runs(line: int, code: str, runs: dict[int, Run]) -> None:
    status, output = runs[line].result()
    assert status == 0, f"README.md:{line} failed:\n{output[-3000:]}"
