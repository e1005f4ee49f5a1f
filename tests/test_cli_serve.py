"""`serve-fake` as a subprocess on a free loopback port: credentials, the export line, --log."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import pytest

from devin_async._cli import amain

KEY = "cog_stable_key_for_my_shell_0001"
ORG = "org-mine"


class Lines:
    """The lines a process prints, read on a thread, so that no read blocks the test for long."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self._queue.put(line)
        except (OSError, ValueError):  # closed under us once the test is done
            pass

    def readline(self, timeout: float = 10.0) -> str:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s") from None


@contextmanager
def serving(*argv: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DEVIN_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devin_async", "serve-fake", "--port", "0", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**base, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def exported(stream: Lines) -> dict[str, str]:
    line = stream.readline()
    assert line.startswith("export DEVIN_BASE_URL=http://127.0.0.1:")
    return dict(re.findall(r"(DEVIN_\w+)=(\S+)", line))


def list_sessions(found: dict[str, str], key: str | None = None) -> int:
    request = urllib.request.Request(
        f"{found['DEVIN_BASE_URL']}/v3beta1/organizations/{found['DEVIN_ORG_ID']}/sessions",
        headers={"Authorization": f"Bearer {key or found['DEVIN_API_KEY']}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize(("argv", "env"), [
    (["--api-key", KEY, "--org-id", ORG], {}),
    ([], {"DEVIN_API_KEY": KEY + "\n", "DEVIN_ORG_ID": ORG}),
])
def test_credentials_are_honoured(argv: list[str], env: dict[str, str]) -> None:
    with serving(*argv, env=env) as proc:
        found = exported(Lines(proc.stdout))
        assert (found["DEVIN_API_KEY"], found["DEVIN_ORG_ID"]) == (KEY, ORG)
        assert list_sessions(found) == 200
        assert list_sessions(found, key="cog_some_other_key") == 401
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_default_credentials_are_stable_for_a_seed() -> None:
    seen = []
    with serving("--seed", "7") as one, serving("--seed", "7") as two:  # two runs, side by side
        for proc in (one, two):
            found = exported(Lines(proc.stdout))
            seen.append((found["DEVIN_API_KEY"], found["DEVIN_ORG_ID"], found["DEVIN_BASE_URL"]))
    assert seen[0][:2] == seen[1][:2]
    assert seen[0][2] != seen[1][2]  # each on its own free port


def test_log_prints_each_request() -> None:
    with serving("--log", "--api-key", KEY, "--org-id", ORG) as proc:
        out = Lines(proc.stdout)
        found = exported(out)
        assert out.readline().startswith("# a fake Devin API on ")
        assert list_sessions(found) == 200
        assert list_sessions(found, key="cog_wrong") == 401
        logged = [out.readline().strip() for _ in range(2)]
    path = f"/v3beta1/organizations/{ORG}/sessions"
    assert logged == [f"GET {path} 200", f"GET {path} 401"]


def test_json_and_log() -> None:
    with serving("--json", "--log", "--api-key", KEY, "--org-id", ORG) as proc:
        out = Lines(proc.stdout)
        first = json.loads(out.readline())
        assert first == {"base_url": first["base_url"], "api_key": KEY, "org_id": ORG}
        found = {"DEVIN_BASE_URL": first["base_url"], "DEVIN_ORG_ID": ORG, "DEVIN_API_KEY": KEY}
        assert list_sessions(found) == 200
        entry = json.loads(out.readline())
    assert entry == {"method": "GET", "path": f"/v3beta1/organizations/{ORG}/sessions",
                     "status": 200, "fault": None}


def test_base_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from devin_async._cli import main

    assert main(["serve-fake", "--base-url", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("devin-async: error: serve-fake serves the API, --base-url is for")
    assert err.count("\n") == 1


async def test_help_describes_the_export_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert await amain(["serve-fake", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "export line" in out and "--log" in out and "DEVIN_API_KEY" in out
