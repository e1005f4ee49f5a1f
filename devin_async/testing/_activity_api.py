"""The newer endpoints of the fake server: events, insights, attachment upload/download, self."""

from __future__ import annotations

from typing import Any, Literal

from ._attachments import Answer, AttachmentStore, content_headers, parse_upload, upload_json
from ._dispatch import Call, Endpoint
from ._errors import ApiError, field_error
from ._events import event_details, page_events, parse_event_query
from ._query import list_sessions
from ._records import EventRecord, SessionRecord
from ._render import render_insights
from ._state import SessionStore
from ._validation import Errors, parse_list_query

DownloadMode = Literal["redirect", "direct"]


class ActivityApi:
    """Endpoint bodies for events, insights, attachments and GET /v3/self."""

    def __init__(self, store: SessionStore, attachments: AttachmentStore, *,
                 download_mode: DownloadMode = "redirect") -> None:
        if download_mode not in ("redirect", "direct"):
            raise ValueError("download_mode must be 'redirect' or 'direct'")
        self.store = store
        self.attachments = attachments
        self.download_mode: DownloadMode = download_mode

    def endpoints(self) -> dict[str, Endpoint]:
        return {
            "events": self.events, "event_details": self.event_details,
            "search_events": self.search_events, "insights": self.insights,
            "list_insights": self.list_insights, "generate_insights": self.generate_insights,
            "upload_attachment": self.upload, "download_attachment": self.download,
            "self": self.whoami,
        }

    def _record(self, call: Call) -> SessionRecord:
        return self.store.get(call.params["devin_id"])

    # --- events ----------------------------------------------------------------------------------
    def events(self, call: Call) -> Any:
        query = parse_event_query(call.query, [])
        return page_events(self._events(call), query)

    def _events(self, call: Call) -> list[EventRecord]:
        return self.store.events.timeline(self._record(call), self.store.clock.now())

    def event_details(self, call: Call) -> Any:
        return event_details(self._events(call), call.query)

    def search_events(self, call: Call) -> Any:
        errors: Errors = []
        needle = call.query.getall("query", [])
        if not needle:
            errors.append(field_error(("query", "query"), "Field required", "missing", None))
        query = parse_event_query(call.query, errors)
        return page_events(self._events(call), query, needle=needle[-1])

    # --- insights --------------------------------------------------------------------------------
    def _insights(self, record: SessionRecord, now: float, *, as_of: bool = False) -> Any:
        session = self.store.render(record, now, full=True, as_of=as_of)
        return render_insights(session, record, now)

    def insights(self, call: Call) -> Any:
        return self._insights(self._record(call), self.store.clock.now())

    def list_insights(self, call: Call) -> Any:
        query = parse_list_query(call.query, extended=False)
        lagged = self.store.index_lag > 0
        return list_sessions(self.store, query, self.store.clock.now(),
                             render=lambda r, t: self._insights(r, t, as_of=lagged))

    def generate_insights(self, call: Call) -> Any:
        record = self._record(call)
        started = record.insights_at is None
        if started:
            record.insights_at = self.store.clock.now()
        return {"session_id": record.session_id,
                "status": "started" if started else "already_exists"}

    # --- attachments -----------------------------------------------------------------------------
    def upload(self, call: Call) -> Any:
        name, ctype, data = parse_upload(call.incoming.headers.get("Content-Type"), call.raw)
        blob = self.attachments.add(name, ctype, data)
        path = self.attachments.api_path(blob, version=call.params["version"],
                                         org_id=self.store.org_id)
        return upload_json(blob, call.incoming.origin + path)

    def download(self, call: Call) -> Any:
        blob = self.attachments.find(call.params["uuid"], call.params["name"])
        if blob is None:
            raise ApiError(404, f"Attachment {call.params['uuid']} not found")
        if self.download_mode == "direct":
            return Answer(200, content_headers(blob), blob.data)
        location = self.attachments.presign(blob, call.incoming.bucket_origin)
        return Answer(307, {"Location": location})

    # --- self ------------------------------------------------------------------------------------
    def whoami(self, call: Call) -> Any:
        return call.principal.self_json(self.store.org_id)

