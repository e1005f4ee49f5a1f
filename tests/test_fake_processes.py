"""State across client processes: one `serve_forever` process, two client processes in turn."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

FIRST = """
import asyncio
from devin_async import DevinClient
async def main():
    async with DevinClient() as client:
        session = await client.sessions.create("Survive the restart", tags=["proc-test"])
        print(session.session_id)
asyncio.run(main())
"""
SECOND = """
import asyncio, sys
from devin_async import DevinClient
async def main():
    async with DevinClient() as client:
        ids = [s.session_id async for s in client.sessions.list(tags=["proc-test"])]
        got = await client.sessions.get(sys.argv[1])
        await client.sessions.send_message(sys.argv[1], "still there?")
        texts = [m.message async for m in client.sessions.messages(sys.argv[1])]
        print(",".join(ids), got.title, "|".join(texts), sep="\\n")
asyncio.run(main())
"""


async def run(code: str, env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


async def test_state_survives_client_processes() -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    code = ("from devin_async.testing import serve_forever; "
            "serve_forever('127.0.0.1', 0, time_scale=1.0, api_key='cog_proc_key_abcd1234', "
            "index_lag=0.0)")
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, env=env)
    try:
        assert server.stdout is not None
        line = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        client_env = {**env, **{k: fields[k] for k in
                                ("DEVIN_BASE_URL", "DEVIN_API_KEY", "DEVIN_ORG_ID")}}
        sid = await run(FIRST, client_env)
        assert sid.startswith("devin-")
        listed, title, texts = (await run(SECOND, client_env, sid)).split("\n")
        assert listed == sid and title == "Survive the restart"
        assert texts.split("|")[:2] == ["Survive the restart", "still there?"]
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 10) == 0
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
