"""The body of a create, checked before anything is sent: `CreateSessionRequest`, `SessionSecret`.

Every documented rule of the create body is checked in `validate()` and raises a ValueError naming
the field; `extra` (newer body fields, `extra_body=` in `sessions.create`) must be plain JSON data,
so both JSON codecs encode it alike and a NaN or a datetime is refused before the request starts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "ADVANCED_MODES",
    "MAX_TAGS",
    "RESERVED_TAG_PREFIX",
    "CreateSessionRequest",
    "SessionSecret",
    "check_schema_dict",
    "check_user_tags",
]

MAX_TAGS = 50
ADVANCED_MODES = frozenset({"analyze", "create", "improve", "batch", "manage"})


def _check_str_list(name: str, value: object) -> list[str]:
    if type(value) is list:  # the common case, without the ABC checks below
        for item in value:
            if type(item) is not str:
                break
        else:
            return list(value)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
        raise ValueError(f"{name} must be a list of strings, got {type(value).__name__}")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{name} must be a list of strings, found {type(item).__name__}")
    return items


#: How deep `extra` may nest (a body deeper than this is a mistake, not a session option).
MAX_JSON_DEPTH = 128


class _NotJSONData(Exception):
    """What `_check_json_data` found wrong, and where (the path is built only on this path)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


def _check_json_data(value: object, depth: int = 0) -> None:
    """Raise _NotJSONData unless `value` is plain JSON data.

    Plain: dicts with string keys, lists and tuples, strings, ints, finite floats, bools and
    None; exactly what both JSON codecs encode alike. So a NaN, a datetime or a mapping proxy is
    a clear error before anything is sent rather than a 422 (or a silent null) after.
    """
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJSONData(f"is {value!r}, which JSON cannot carry")
        return
    if depth >= MAX_JSON_DEPTH:
        raise _NotJSONData(f"nests deeper than {MAX_JSON_DEPTH} levels")
    pairs: Iterable[tuple[object, object]]
    if isinstance(value, dict):
        pairs, keyed = value.items(), True  # a dict's keys must be strings
    elif isinstance(value, list | tuple):
        pairs, keyed = enumerate(value), False
    else:
        raise _NotJSONData(f"is a {type(value).__name__}, which is not JSON data")
    for key, item in pairs:
        if keyed and not isinstance(key, str):
            raise _NotJSONData(f"has a key that is not a string: {key!r}")
        try:
            _check_json_data(item, depth + 1)
        except _NotJSONData as exc:
            exc.path.append(f"[{key!r}]")  # an index's repr is the index
            raise


_LIST_FIELDS = ("knowledge_ids", "repos", "secret_ids", "session_links", "tags", "attachment_urls")
_STR_FIELDS = ("child_playbook_id", "create_as_user_id", "playbook_id", "title", "devin_mode")
#: Tags starting with this are the SDK's own bookkeeping (the client token, the batch tag).
RESERVED_TAG_PREFIX = "devin-async-"
MAX_SCHEMA_BYTES = 64 * 1024
MAX_URL_LENGTH = 2083
MAX_IDEMPOTENCY_KEY = 256


def _redacted(_value: object) -> str:
    return "<redacted>"


@attrs.frozen
class SessionSecret:
    """A session-only secret; its value never shows in a repr (or str)."""

    key: str
    value: str = attrs.field(repr=_redacted)
    sensitive: bool = True

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.key, str) or not 1 <= len(self.key) <= 256:
            raise ValueError("a session secret's key must be a string of 1 to 256 characters")
        if not isinstance(self.value, str) or len(self.value) > 65536:
            raise ValueError("a session secret's value must be a string of at most 65536 "
                             "characters")
        if not isinstance(self.sensitive, bool):
            raise ValueError("a session secret's sensitive flag must be a bool")

    def to_json(self) -> dict[str, Any]:
        """Return the create body's `{key, value, sensitive}` item."""
        return {"key": self.key, "value": self.value, "sensitive": self.sensitive}


def _secret(item: object) -> SessionSecret:
    if isinstance(item, SessionSecret):
        return item
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - {"key", "value", "sensitive"})
        if unknown:
            raise ValueError(f"session_secrets: unknown field(s) {', '.join(map(str, unknown))}")
        fields: dict[str, Any] = dict(item)  # types are checked by validate(), naming the field
        return SessionSecret(fields.get("key", ""), fields.get("value", ""),
                             fields.get("sensitive", True))
    raise ValueError(
        f"session_secrets must hold SessionSecret or dicts, found {type(item).__name__}")


def _secrets(value: object) -> list[SessionSecret] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValueError("session_secrets must be a list of SessionSecret (or dicts)")
    out = []
    for n, item in enumerate(value):
        try:
            out.append(_secret(item))
        except ValueError as exc:
            raise ValueError(f"session_secrets[{n}]: {exc}") from None
    return out


def _attachment_urls(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError("attachment_urls must be a list of URLs (or UploadedAttachment)")
    # An UploadedAttachment (or anything with a `url`) stands for its URL.
    urls: list[Any] = [getattr(item, "url", item) for item in value]
    return urls


def _output_schema(value: object) -> Any:
    """Return the schema dict a `structured_output_schema` stands for (a class gives its own)."""
    if isinstance(value, type):
        from ._schema import schema_for

        return schema_for(value)
    return value


@attrs.frozen
class CreateSessionRequest:
    """The body of a create; only the fields given are sent (`prompt` first, then keywords).

    `extra` passes newer body fields through unchanged. `idempotency_key` is not sent: the SDK
    derives the session's client token from it (see `sessions.create`). Call `validate()`
    (create does) to check the documented rules before sending.
    """

    prompt: str
    advanced_mode: str | None = attrs.field(default=None, kw_only=True)
    bypass_approval: bool | None = attrs.field(default=None, kw_only=True)
    child_playbook_id: str | None = attrs.field(default=None, kw_only=True)
    create_as_user_id: str | None = attrs.field(default=None, kw_only=True)
    knowledge_ids: list[str] | None = attrs.field(default=None, kw_only=True)
    max_acu_limit: int | None = attrs.field(default=None, kw_only=True)
    playbook_id: str | None = attrs.field(default=None, kw_only=True)
    repos: list[str] | None = attrs.field(default=None, kw_only=True)
    secret_ids: list[str] | None = attrs.field(default=None, kw_only=True)
    session_links: list[str] | None = attrs.field(default=None, kw_only=True)
    tags: list[str] | None = attrs.field(default=None, kw_only=True)
    title: str | None = attrs.field(default=None, kw_only=True)
    attachment_urls: list[str] | None = attrs.field(default=None, converter=_attachment_urls,
                                                    kw_only=True)
    session_secrets: list[SessionSecret] | None = attrs.field(default=None, converter=_secrets,
                                                              kw_only=True)
    #: A JSON Schema dict, or an attrs class, dataclass or pydantic model (turned into its
    #: self-contained draft-7 schema here, as `sessions.create` does).
    structured_output_schema: dict[str, Any] | None = attrs.field(
        default=None, converter=_output_schema, kw_only=True)
    structured_output_required: bool | None = attrs.field(default=None, kw_only=True)
    devin_mode: str | None = attrs.field(default=None, kw_only=True)
    extra: Mapping[str, Any] = attrs.field(factory=dict, kw_only=True)
    idempotency_key: str | None = attrs.field(default=None, kw_only=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CreateSessionRequest:
        """Build a request from a dict of its fields; newer body fields go in `extra_body`.

        Raises:
            ValueError: a key that is not a field (named), or no prompt.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a create request must be a mapping, got {type(data).__name__}")
        known = {f.name for f in attrs.fields(cls)} - {"extra"}
        unknown = sorted(str(k) for k in data if k not in known and k not in _EXTRA_KEYS)
        if unknown:
            raise ValueError(
                f"unknown create field(s): {', '.join(unknown)}; newer API fields go in "
                '"extra_body": {...}'
            )
        fields = {k: v for k, v in data.items() if k in known}
        extra: dict[str, Any] = {}
        for name in _EXTRA_KEYS:
            given = data.get(name)
            if given is not None:
                if not isinstance(given, Mapping):
                    raise ValueError(f"{name} must be a mapping of body fields")
                extra.update(given)
        if "prompt" not in fields:
            raise ValueError("prompt is required")
        return cls(**fields, extra=extra)

    def validate(self) -> None:
        """Check the documented rules; raise ValueError naming the field at fault."""
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        mode = self.advanced_mode
        if mode is not None:
            if mode not in ADVANCED_MODES:
                raise ValueError(
                    f"advanced_mode must be one of {sorted(ADVANCED_MODES)}, got {mode!r}"
                )
            if mode == "analyze" and not self.session_links:
                raise ValueError("session_links is required when advanced_mode is 'analyze'")
            if mode in ("improve", "batch") and not self.child_playbook_id:
                raise ValueError(f"child_playbook_id is required when advanced_mode is {mode!r}")
        limit = self.max_acu_limit
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0
        ):
            raise ValueError(f"max_acu_limit must be a positive int, got {limit!r}")
        for name in ("bypass_approval", "structured_output_required"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"{name} must be a bool, got {value!r}")
        for name in _STR_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {type(value).__name__}")
        for name in _LIST_FIELDS:
            value = getattr(self, name)
            if value is not None:
                _check_str_list(name, value)
        tags = self.tags
        if tags is not None:
            if len(tags) > MAX_TAGS:
                raise ValueError(f"tags must hold at most {MAX_TAGS} tags, got {len(tags)}")
            check_user_tags("tags", tags)
        self._validate_newer()
        extra = self.extra
        if type(extra) is not dict and not isinstance(extra, Mapping):
            raise ValueError("extra must be a mapping of body fields")
        if extra:
            clash = sorted(k for k in extra if k in _BODY_FIELDS)
            if clash:
                raise ValueError(f"extra repeats named fields: {', '.join(clash)}")
            try:
                # `extra` itself may be any mapping (to_body copies it into a dict).
                _check_json_data(dict(extra))
            except _NotJSONData as exc:
                where = "".join(reversed(exc.path))
                raise ValueError(f"extra{where} {exc.reason}") from None

    def _validate_newer(self) -> None:
        for url in self.attachment_urls or ():
            if not 1 <= len(url) <= MAX_URL_LENGTH or not url.startswith(("https://", "http://")):
                raise ValueError(f"attachment_urls: {url[:80]!r} is not an http(s) URL of 1-"
                                 f"{MAX_URL_LENGTH} characters")
        for n, secret in enumerate(self.session_secrets or ()):
            if not isinstance(secret.key, str) or not 1 <= len(secret.key) <= 256:
                raise ValueError(f"session_secrets[{n}].key must be a string of 1-256 characters")
            if not isinstance(secret.value, str) or len(secret.value) > 65536:
                raise ValueError(f"session_secrets[{n}].value must be a string of at most 65536 "
                                 "characters")
            if not isinstance(secret.sensitive, bool):
                raise ValueError(f"session_secrets[{n}].sensitive must be a bool")
        schema = self.structured_output_schema
        if schema is not None:
            if not isinstance(schema, dict):
                raise ValueError("structured_output_schema must be a JSON Schema dict or a class "
                                 "(attrs, dataclass or pydantic)")
            check_schema_dict(schema)
        key = self.idempotency_key
        if key is not None and (not isinstance(key, str) or not 1 <= len(key) <=
                                MAX_IDEMPOTENCY_KEY):
            raise ValueError(f"idempotency_key must be a non-empty string of at most "
                             f"{MAX_IDEMPOTENCY_KEY} characters")

    def to_body(self, *, tags: list[str] | None = None) -> dict[str, Any]:
        """Return the JSON body: given fields only, never a null, then `extra`.

        `tags`, when given, replaces the request's tags in the body (the request is unchanged).
        """
        body: dict[str, Any] = {}
        values: tuple[Any, ...] = (  # in `_BODY_FIELDS` order (checked where it is defined)
            self.prompt, self.advanced_mode, self.bypass_approval, self.child_playbook_id,
            self.create_as_user_id, self.knowledge_ids, self.max_acu_limit, self.playbook_id,
            self.repos, self.secret_ids, self.session_links, self.tags, self.title,
            self.attachment_urls, self.structured_output_schema, self.structured_output_required,
            self.devin_mode)
        i = 0  # a counter, not getattr, zip or enumerate: half the cost (a body per create)
        for value in values:
            if value is not None:
                body[_BODY_FIELDS[i]] = list(value) if _BODY_IS_LIST[i] else value
            i += 1  # noqa: SIM113
        if tags is not None:
            body["tags"] = tags
        if self.session_secrets is not None:
            body["session_secrets"] = [s.to_json() for s in self.session_secrets]
        for key, value in self.extra.items():
            if value is not None:  # "no nulls" holds for the extra fields too
                body[key] = value
        return body


def check_user_tags(name: str, tags: Iterable[str]) -> None:
    """Raise ValueError if a caller's tag uses the SDK's reserved prefix."""
    for tag in tags:
        if isinstance(tag, str) and tag.startswith(RESERVED_TAG_PREFIX):
            raise ValueError(f"{name}: {tag!r} starts with {RESERVED_TAG_PREFIX!r}, which is "
                             "reserved for the SDK's own tags")


def check_schema_dict(schema: dict[str, Any]) -> None:
    """Raise ValueError unless `schema` is JSON data of at most 64 KB without external $ref."""
    try:
        _check_json_data(schema)
    except _NotJSONData as exc:
        raise ValueError(f"structured_output_schema{''.join(reversed(exc.path))} "
                         f"{exc.reason}") from None
    size = len(json.dumps(schema, separators=(",", ":")).encode())
    if size > MAX_SCHEMA_BYTES:
        raise ValueError(f"structured_output_schema is {size} bytes; the API takes at most "
                         f"{MAX_SCHEMA_BYTES}")
    stack: list[object] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                raise ValueError(f"structured_output_schema must be self-contained: external "
                                 f"$ref {ref[:80]!r}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


_EXTRA_KEYS = ("extra_body", "extra")
_NOT_IN_BODY = ("extra", "idempotency_key", "session_secrets")
_BODY_FIELDS = tuple(f.name for f in attrs.fields(CreateSessionRequest)
                     if f.name not in _NOT_IN_BODY)
_BODY_IS_LIST = tuple(name in _LIST_FIELDS for name in _BODY_FIELDS)
# `to_body` reads the fields in this order, by name; a new field fails here, not in a request.
if _BODY_FIELDS != ("prompt", "advanced_mode", "bypass_approval", "child_playbook_id",
                    "create_as_user_id", "knowledge_ids", "max_acu_limit", "playbook_id",
                    "repos", "secret_ids", "session_links", "tags", "title", "attachment_urls",
                    "structured_output_schema", "structured_output_required", "devin_mode"):
    raise RuntimeError(f"CreateSessionRequest's body fields changed; update to_body: "
                       f"{_BODY_FIELDS}")
