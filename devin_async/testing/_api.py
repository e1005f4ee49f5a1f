"""The session endpoints of the fake server: validated input in, JSON-ready payload out."""

from __future__ import annotations

from typing import Any

from ._auth import Permission
from ._dispatch import Call, Endpoint
from ._errors import ValidationFailed
from ._log import RequestLog
from ._query import list_messages, list_sessions
from ._records import SessionRecord
from ._state import SessionStore
from ._validation import (
    page_params,
    parse_list_query,
    query_bool,
    validate_create,
    validate_message,
    validate_tags,
)


class SessionsApi:
    """create, list, get, terminate, archive, messages, tags and the session's attachments."""

    def __init__(self, store: SessionStore, log: RequestLog) -> None:
        self.store = store
        self.log = log

    def endpoints(self) -> dict[str, Endpoint]:
        return {
            "create": self.create, "list": self.list_sessions, "get": self.get,
            "terminate": self.terminate, "archive": self.archive,
            "send_message": self.send_message, "messages": self.messages,
            "get_tags": self.get_tags, "add_tags": self.add_tags,
            "replace_tags": self.replace_tags, "attachments": self.attachments,
        }

    def _record(self, call: Call) -> SessionRecord:
        return self.store.get(call.params["devin_id"])

    def _session(self, record: SessionRecord, *, full: bool) -> dict[str, Any]:
        return self.store.render(record, self.store.clock.now(), full=full)

    def create(self, call: Call) -> Any:
        body = validate_create(call.json())
        if body.get("create_as_user_id") is not None:
            call.principal.require(Permission.IMPERSONATE_ORG_SESSIONS)
        if body.get("advanced_mode") is not None:
            call.principal.require(Permission.USE_DEVIN_EXPERT)
        principal = call.principal
        service_user = None if principal.user_id is not None else principal.service_user_id
        record = self.store.create(body, service_user_id=service_user, user_id=principal.user_id)
        self.log.stats["creates"] += 1
        return self._session(record, full=False)

    def list_sessions(self, call: Call) -> Any:
        query = parse_list_query(call.query)
        store = self.store
        behind = store.replica.lag()
        now = store.clock.now()
        if behind is None:
            return list_sessions(store, query, now)
        page = list_sessions(store, query, now, lag=store.index_lag + behind)
        self._count_behind([item for item in page["items"]], now)
        return page

    def get(self, call: Call) -> Any:
        record = self._record(call)
        behind = self.store.replica.lag()
        if behind is None:
            return self._session(record, full=True)
        now = self.store.clock.now()
        at = max(record.created, now - behind)  # as a stale replica has it
        session = self.store.render(record, at, full=True, as_of=True)
        self._count_behind([session], now)
        return session

    def _count_behind(self, items: list[dict[str, Any]], now: float) -> None:
        records = self.store.records
        if any((item["status"], item["status_detail"])
               != records[item["session_id"]].timeline.state(now) for item in items):
            self.store.replica.behind += 1

    def terminate(self, call: Call) -> Any:
        errors: list[dict[str, Any]] = []
        archive = query_bool(call.query, "archive", errors)
        if errors:
            raise ValidationFailed(errors)
        record = self._record(call)
        self.store.terminate(record, archive=bool(archive))
        return self._session(record, full=False)

    def archive(self, call: Call) -> Any:
        record = self._record(call)
        self.store.archive(record)
        return self._session(record, full=False)

    def send_message(self, call: Call) -> Any:
        message, as_user, urls = validate_message(call.json())
        if as_user is not None:
            call.principal.require(Permission.IMPERSONATE_ORG_SESSIONS)
        record = self._record(call)
        self.store.send_message(record, message)
        self.store.link_attachments(record, urls)
        return self._session(record, full=False)

    def messages(self, call: Call) -> Any:
        errors: list[dict[str, Any]] = []
        first, after = page_params(call.query, errors)
        if errors:
            raise ValidationFailed(errors)
        record = self._record(call)
        return list_messages(self.store, record, first, after, self.store.clock.now())

    def get_tags(self, call: Call) -> Any:
        return {"tags": list(self._record(call).tags)}

    def add_tags(self, call: Call) -> Any:
        tags = validate_tags(call.json())
        return {"tags": self.store.set_tags(self._record(call), tags, append=True)}

    def replace_tags(self, call: Call) -> Any:
        tags = validate_tags(call.json())
        return {"tags": self.store.set_tags(self._record(call), tags, append=False)}

    def attachments(self, call: Call) -> Any:
        return [dict(a) for a in self._record(call).attachments]
