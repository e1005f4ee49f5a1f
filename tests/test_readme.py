"""Every Python example in README.md runs, against the fake server, so none can rot.

Each ```python block is run in a fresh interpreter with DEVIN_BASE_URL / DEVIN_API_KEY /
DEVIN_ORG_ID pointing at a FakeDevinServer served by this test (a fast clock, loopback only). A
block that defines `test_` functions is run with pytest instead (it is a testing example); every
other block is a program. Each run is bounded in time.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from devin_async.testing import FakeDevinServer

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
LIMIT = 60.0


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


BLOCKS = _blocks()


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 5


async def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(LIMIT):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{' '.join(args)} did not end within {LIMIT:g} s") from None
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
async def test_a_readme_example_runs(line: int, code: str, tmp_path: Path) -> None:
    async with FakeDevinServer(time_scale=200.0) as server:
        env = {
            **os.environ,
            "DEVIN_BASE_URL": server.url,
            "DEVIN_API_KEY": server.api_key,
            "DEVIN_ORG_ID": server.org_id,
            "PYTHONPATH": str(README.parent),
        }
        env.pop("DEVIN_ASYNC_LOG", None)
        if re.search(r"^(async )?def test_", code, re.M):
            path = tmp_path / "test_example.py"
            path.write_text(code, encoding="utf-8")
            args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
                    str(path)]
        else:
            path = tmp_path / "example.py"
            path.write_text(code, encoding="utf-8")
            args = [sys.executable, str(path)]
        status, output = await _run(args, env, tmp_path)
    assert status == 0, f"README.md:{line} failed:\n{output[-3000:]}"
