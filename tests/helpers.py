"""Test helpers shared by the unit tests: an instant clock and a session sample."""

from __future__ import annotations

import asyncio
from typing import Any

BASE = "https://api.devin.ai/v3beta1/organizations/org-test"
KEY = "cog_TESTKEYdistinctive9f3Q"


class FakeClock:
    """A monotonic clock whose sleep advances time instantly (and yields to the loop)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def session_json(session_id: str = "devin-abc123", **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "session_id": session_id,
        "url": f"https://app.devin.ai/sessions/{session_id[6:]}",
        "status": "new",
        "tags": [],
        "org_id": "org-test",
        "created_at": 1764288000,
        "updated_at": 1764288000,
        "acus_consumed": 0,
        "pull_requests": [],
        "title": None,
        "user_id": None,
        "is_archived": False,
    }
    data.update(fields)
    return data
