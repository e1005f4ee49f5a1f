"""The activity half of `FakeDevinServer`'s test-facing API: events, replies, structured output,
list index lag and attachments (a mixin, so the server module keeps to serving and sessions)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ._activity_api import ActivityApi, DownloadMode
from ._attachments import AttachmentStore, upload_json
from ._events import EVENT_CATEGORIES
from ._lifecycle import ServerClock
from ._records import SessionRecord
from ._render import OutputGenerator
from ._state import REPLY_AFTER, SessionStore


class ActivityControls:
    """Scripting and observing sessions' activity and the attachment store."""

    org_id: str
    clock: ServerClock
    _store: SessionStore
    _attachments: AttachmentStore
    _activity: ActivityApi

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def listening(self) -> bool:
        raise NotImplementedError

    def _record(self, session_id: str) -> SessionRecord:
        raise NotImplementedError

    # --- scripted activity -----------------------------------------------------------------------
    def add_event(self, session_id: str, *, event_type: str, category: str, summary: str,
                  direction: str = "outgoing", contents: Mapping[str, Any] | None = None,
                  after: float = 0.0) -> dict[str, Any]:
        """Add an event to a session's timeline, `after` server seconds from now; return it.

        Like the planned events, one still in the future is dropped when the timeline is cut
        (a message, `script`, `set_status`, terminate).

        Raises:
            ValueError: an unknown category or direction, or a negative `after`.
        """
        if category not in EVENT_CATEGORIES:
            raise ValueError(f"category must be one of {EVENT_CATEGORIES}")
        if direction not in ("incoming", "outgoing") or after < 0:
            raise ValueError("direction must be 'incoming' or 'outgoing', after >= 0")
        record = self._record(session_id)
        event = self._store.events.make(self.clock.now() + after, event_type, category,
                                        direction, summary, copy.deepcopy(dict(contents or {})))
        record.add_event(event)
        return event.summary_json()

    def events(self, session_id: str) -> list[dict[str, Any]]:
        """The session's events visible now (summaries), oldest first."""
        events = self._store.events.timeline(self._record(session_id), self.clock.now())
        return [e.summary_json() for e in events]

    def script_reply(self, session_id: str, text: str, *, after: float = REPLY_AFTER) -> None:
        """Make Devin answer the session's next user message with `text`, `after` s later."""
        if after < 0:
            raise ValueError("after must be >= 0")
        self._record(session_id).replies.append((text, float(after)))

    def set_structured_output(self, session_id: str, value: Any) -> None:
        """Set the structured output the session reports once it has finished (now, if it has)."""
        self._record(session_id).output = copy.deepcopy(value)

    @property
    def output_generator(self) -> OutputGenerator | None:
        """`schema -> value` for sessions created with a schema (None: no generated output)."""
        return self._store.output_generator

    @output_generator.setter
    def output_generator(self, value: OutputGenerator | None) -> None:
        self._store.output_generator = value

    @property
    def index_lag(self) -> float:
        """Server seconds the list endpoints lag behind writes (0: none)."""
        return self._store.index_lag

    @index_lag.setter
    def index_lag(self, value: float) -> None:
        if value < 0:
            raise ValueError("index_lag must be >= 0 server seconds")
        self._store.index_lag = float(value)

    # --- attachments -----------------------------------------------------------------------------
    @property
    def download_mode(self) -> DownloadMode:
        """"redirect" (307 to the bucket) or "direct" (200 with the bytes)."""
        return self._activity.download_mode

    @download_mode.setter
    def download_mode(self, value: DownloadMode) -> None:
        if value not in ("redirect", "direct"):
            raise ValueError("download_mode must be 'redirect' or 'direct'")
        self._activity.download_mode = value

    def add_file(self, data: bytes, *, name: str, content_type: str = "application/octet-stream",
                 version: str = "v3beta1") -> dict[str, Any]:
        """Store a file as an upload would; return `{attachment_id, name, url}`.

        The url is on this server's socket when it listens, else on `http://fake.invalid`.
        """
        blob = self._attachments.add(name, content_type, bytes(data))
        origin = self.url if self.listening else "http://fake.invalid"
        path = self._attachments.api_path(blob, version=version, org_id=self.org_id)
        return upload_json(blob, origin + path)

    def file(self, attachment_id: str) -> bytes:
        """The bytes of an uploaded attachment (KeyError if unknown)."""
        return self._attachments.blobs[attachment_id].data

    @property
    def uploads(self) -> dict[str, str]:
        """`attachment_id -> name` of every uploaded file."""
        return {k: v.name for k, v in self._attachments.blobs.items()}

    @property
    def bucket_requests(self) -> int:
        """Requests the bucket origin received (socket and in process)."""
        return self._attachments.bucket_requests

    @property
    def bucket_authorization_refusals(self) -> int:
        """Requests the bucket refused because they carried an Authorization header."""
        return self._attachments.bucket_authorization

    @property
    def bucket_saw_authorization(self) -> bool:
        """Whether any request to the bucket carried an Authorization header."""
        return self._attachments.bucket_authorization > 0
