"""What `client.sessions` does to one session: message, terminate, archive, tags.

A base class of `Sessions` (it needs only the engine): each method checks its arguments, sends one
request (two for `replace_tags`, under one deadline) and structures the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._create_request import CreateSessionRequest, check_user_tags
from ._decisions import Kind
from ._engine import Engine
from ._models import RESERVED_TAG_PREFIX, Session
from ._protocol import Request, check_id, check_tags, parse_session, parse_tags

__all__ = ["SessionActions"]


class SessionActions:
    """Message, terminate, archive and tag a session (part of `client.sessions`)."""

    engine: Engine

    # -- act --------------------------------------------------------------------------------

    async def send_message(
        self, session_id: str, message: str, *, message_as_user_id: str | None = None,
        attachment_urls: Iterable[Any] | None = None,
    ) -> Session:
        """Send a message to a session (a suspended one wakes up); return the session."""
        sid = check_id("session_id", session_id)
        if not isinstance(message, str) or not message.strip():
            raise ValueError("message must be a non-empty string")
        body: dict[str, Any] = {"message": message}
        if message_as_user_id is not None:
            body["message_as_user_id"] = check_id("message_as_user_id", message_as_user_id)
        if attachment_urls is not None:
            urls = CreateSessionRequest("x", attachment_urls=attachment_urls)
            urls.validate()
            body["attachment_urls"] = urls.attachment_urls
        reply = await self.engine.request(
            Request("POST", f"/sessions/{sid}/messages", Kind.UNSAFE, json=body))
        return parse_session(reply.data)

    async def terminate(self, session_id: str, *, archive: bool = False) -> Session:
        """End a session for good (it cannot be resumed); optionally archive it."""
        sid = check_id("session_id", session_id)
        if not isinstance(archive, bool):
            raise ValueError("archive must be a bool")
        params = (("archive", "true" if archive else "false"),)
        reply = await self.engine.request(
            Request("DELETE", f"/sessions/{sid}", Kind.IDEMPOTENT, params=params))
        return parse_session(reply.data)

    async def archive(self, session_id: str) -> Session:
        """Archive a session (and put it to sleep if it runs)."""
        sid = check_id("session_id", session_id)
        reply = await self.engine.request(
            Request("POST", f"/sessions/{sid}/archive", Kind.IDEMPOTENT))
        return parse_session(reply.data)

    async def get_tags(self, session_id: str) -> list[str]:
        """Return a session's tags (the SDK's own client-token tag left out)."""
        sid = check_id("session_id", session_id)
        reply = await self.engine.request(Request("GET", f"/sessions/{sid}/tags", Kind.READ))
        return parse_tags(reply.data)

    async def add_tags(self, session_id: str, tags: Iterable[str]) -> list[str]:
        """Append tags (the server drops duplicates); return all tags.

        Raises:
            ValueError: more than 50 tags, or a tag with the reserved `devin-async-` prefix.
        """
        sid = check_id("session_id", session_id)
        items = check_tags("tags", tags)
        check_user_tags("tags", items)
        reply = await self.engine.request(
            Request("POST", f"/sessions/{sid}/tags", Kind.IDEMPOTENT, json={"tags": items}))
        return parse_tags(reply.data)

    async def replace_tags(self, session_id: str, tags: Iterable[str]) -> list[str]:
        """Replace a session's tags; return them. The SDK's own tags (`devin-async-`) are kept.

        Raises:
            ValueError: more than 50 tags, or a tag with the reserved `devin-async-` prefix.
        """
        sid = check_id("session_id", session_id)
        items = check_tags("tags", tags)
        check_user_tags("tags", items)
        deadline = self.engine.deadline()
        current = await self.engine.request(
            Request("GET", f"/sessions/{sid}/tags", Kind.READ), deadline=deadline)
        raw = current.data.get("tags") if isinstance(current.data, dict) else None
        kept = [t for t in raw or () if isinstance(t, str) and t.startswith(RESERVED_TAG_PREFIX)]
        reply = await self.engine.request(
            Request("PUT", f"/sessions/{sid}/tags", Kind.IDEMPOTENT,
                    json={"tags": [*items, *kept]}), deadline=deadline)
        return parse_tags(reply.data)
