"""Request validation of the fake server, answered like FastAPI/pydantic v2: 422, every error.

Bodies: JSON objects checked against the field table below; unknown fields are kept (forward
compatibility). Queries: repeated keys and comma-joined values are both accepted for array filters;
an empty `after=` is no cursor (the first page) on every paged endpoint.
Secret values never reach an error: the `input` of every error is scrubbed of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from multidict import MultiMapping

from ._errors import ValidationFailed, field_error
from ._query import ListQuery, session_cursor
from ._records import MAX_TAGS

ADVANCED_MODES = ("analyze", "create", "improve", "batch", "manage")
ORIGINS = ("webapp", "slack", "teams", "api", "linear", "jira", "scheduled", "automation", "cli",
           "desktop", "other")
CATEGORIES = (
    "bug_fixing", "ci_cd_and_devops", "code_quality_and_security", "code_review_and_analysis",
    "data_and_automation", "documentation_and_content", "feature_development",
    "migrations_and_upgrades", "other", "refactoring_and_optimization", "research_and_exploration",
    "unit_test_generation")
MAX_STRUCTURED_SCHEMA_BYTES = 64 * 1024
PAGE_MAX = 200
URL_MAX = 2083
SECRET_KEY_MAX, SECRET_VALUE_MAX = 256, 65536
REDACTED = "<redacted>"
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")

Errors = list[dict[str, Any]]


def _enum_msg(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return "Input should be " + ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


# --- field checkers: (loc, value, errors) -> None ------------------------------------------------
def _str(loc: tuple[str | int, ...], value: Any, errors: Errors) -> None:
    if not isinstance(value, str):
        errors.append(field_error(loc, "Input should be a valid string", "string_type", value))


def _str_list(loc: tuple[str | int, ...], value: Any, errors: Errors) -> None:
    if not isinstance(value, list):
        errors.append(field_error(loc, "Input should be a valid list", "list_type", value))
        return
    for i, item in enumerate(value):
        _str((*loc, i), item, errors)


def _bool(loc: tuple[str | int, ...], value: Any, errors: Errors) -> None:
    if not isinstance(value, bool):
        errors.append(field_error(loc, "Input should be a valid boolean", "bool_type", value))


def _positive_int(loc: tuple[str | int, ...], value: Any, errors: Errors) -> None:
    """An int > 0; an integral float (1697.0) is an int, as in JSON Schema and pydantic."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, float):
        errors.append(field_error(loc, "Input should be a valid integer, got a number with a "
                                  "fractional part", "int_from_float", value))
    elif not isinstance(value, int) or isinstance(value, bool):
        errors.append(field_error(loc, "Input should be a valid integer", "int_type", value))
    elif value <= 0:
        errors.append(field_error(loc, "Input should be greater than 0", "greater_than", value,
                                  {"gt": 0}))


def enum_check(values: tuple[str, ...]) -> Callable[[tuple[str | int, ...], Any, Errors], None]:
    def check(loc: tuple[str | int, ...], value: Any, errors: Errors) -> None:
        if value not in values:
            errors.append(field_error(loc, _enum_msg(values), "enum", value,
                                      {"expected": _enum_msg(values)[len("Input should be "):]}))
    return check


def _json_schema(loc: tuple[str | int, ...], value: Any, errors: Errors) -> None:
    if not isinstance(value, dict):
        errors.append(field_error(loc, "Input should be a valid dictionary", "dict_type", value))
    elif len(json.dumps(value).encode()) > MAX_STRUCTURED_SCHEMA_BYTES:
        errors.append(field_error(loc, "Value error, the schema must be at most 64 KB",
                                  "value_error", None))
    elif any(not ref.startswith("#") for ref in _refs(value)):
        errors.append(field_error(loc, "Value error, the schema must be self-contained (no "
                                  "external $ref)", "value_error", None))


def _refs(value: Any) -> list[str]:
    found: list[str] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                found.append(ref)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _urls(loc: tuple[str | int, ...], value: Any, errors: Errors) -> None:
    """A list of URIs, each 1..2083 characters (the create body's attachment_urls)."""
    if not isinstance(value, list):
        errors.append(field_error(loc, "Input should be a valid list", "list_type", value))
        return
    for i, item in enumerate(value):
        if not isinstance(item, str):
            _str((*loc, i), item, errors)
        elif not 1 <= len(item) <= URL_MAX:
            short = not item
            errors.append(field_error(
                (*loc, i), f"String should have at {'least 1 character' if short else 'most '}"
                f"{'' if short else f'{URL_MAX} characters'}",
                "string_too_short" if short else "string_too_long", item,
                {"min_length": 1} if short else {"max_length": URL_MAX}))
        elif _URI.fullmatch(item) is None:
            errors.append(field_error((*loc, i), "Input should be a valid URL, relative URL "
                                      "without a base", "url_parsing", item))


def _secrets(loc: tuple[str | int, ...], value: Any, errors: Errors) -> None:
    if not isinstance(value, list):
        errors.append(field_error(loc, "Input should be a valid list", "list_type", value))
        return
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            errors.append(field_error((*loc, i), "Input should be a valid dictionary",
                                      "dict_type", item))
            continue
        for key, lo, hi in (("key", 1, SECRET_KEY_MAX), ("value", 0, SECRET_VALUE_MAX)):
            if key not in item:
                errors.append(field_error((*loc, i, key), "Field required", "missing", item))
            elif not isinstance(item[key], str):
                _str((*loc, i, key), item[key], errors)
            elif len(item[key]) < lo:
                errors.append(field_error((*loc, i, key), "String should have at least 1 "
                                          "character", "string_too_short", item[key],
                                          {"min_length": lo}))
            elif len(item[key]) > hi:
                errors.append(field_error((*loc, i, key), f"String should have at most {hi} "
                                          "characters", "string_too_long", item[key],
                                          {"max_length": hi}))
        if "sensitive" in item:
            _bool((*loc, i, "sensitive"), item["sensitive"], errors)


Checker = Callable[[tuple[str | int, ...], Any, Errors], None]
CREATE_FIELDS: dict[str, Checker] = {
    "advanced_mode": enum_check(ADVANCED_MODES), "attachment_urls": _urls,
    "bypass_approval": _bool, "child_playbook_id": _str, "create_as_user_id": _str,
    "devin_mode": _str,  # open: known modes grow (normal, fast, lite, ultra, fusion, ...)
    "knowledge_ids": _str_list, "max_acu_limit": _positive_int, "platform": _str,
    "playbook_id": _str, "repos": _str_list, "secret_ids": _str_list, "session_links": _str_list,
    "session_secrets": _secrets, "structured_output_required": _bool,
    "structured_output_schema": _json_schema, "tags": _str_list, "title": _str,
}
"""Optional create fields (each may also be null) and their checks."""


def redact_secrets(body: Any) -> Any:
    """Return `body` with every `session_secrets[].value` replaced (a copy; else `body` itself)."""
    if not isinstance(body, dict) or not isinstance(body.get("session_secrets"), list):
        return body
    scrubbed = [{**item, "value": REDACTED} if isinstance(item, dict) and "value" in item
                else item for item in body["session_secrets"]]
    return {**body, "session_secrets": scrubbed}


def _scrub(errors: Errors) -> Errors:
    """Keep secret values out of the errors' `input` (FastAPI would echo them)."""
    for error in errors:
        loc, value = error["loc"], error["input"]
        in_secrets = loc[:2] == ["body", "session_secrets"]
        if in_secrets and len(loc) >= 4 and loc[3] == "value":
            error["input"] = REDACTED
        elif in_secrets and len(loc) == 2:
            error["input"] = redact_secrets({"session_secrets": value})["session_secrets"]
        elif in_secrets and isinstance(value, dict) and "value" in value:
            error["input"] = {**value, "value": REDACTED}
        elif not in_secrets:
            error["input"] = redact_secrets(value)
    return errors


# --- bodies --------------------------------------------------------------------------------------
def parse_json(raw: bytes) -> Any:
    """Decode a request body, or raise the 422 FastAPI sends for a missing or broken one."""
    if not raw.strip():
        raise ValidationFailed([field_error(("body",), "Field required", "missing", None)])
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        pos = getattr(exc, "pos", 0)
        raise ValidationFailed([field_error(("body", pos), "JSON decode error", "json_invalid",
                                            {}, {"error": str(exc)})]) from exc


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed([field_error(
            ("body",), "Input should be a valid dictionary or object to extract fields from",
            "model_attributes_type", body)])
    return body


def _required_str(body: dict[str, Any], name: str, errors: Errors, *, min_length: int) -> None:
    if name not in body:
        errors.append(field_error(("body", name), "Field required", "missing", body))
    elif not isinstance(body[name], str):
        errors.append(field_error(("body", name), "Input should be a valid string", "string_type",
                                  body[name]))
    elif len(body[name]) < min_length:
        errors.append(field_error(("body", name), "String should have at least 1 character",
                                  "string_too_short", body[name], {"min_length": min_length}))


def validate_create(payload: Any) -> dict[str, Any]:
    """Check a create body; return it (extra fields included) or raise ValidationFailed."""
    body = _object(payload)
    errors: Errors = []
    _required_str(body, "prompt", errors, min_length=1)
    for name, check in CREATE_FIELDS.items():
        if body.get(name) is not None:
            check(("body", name), body[name], errors)
    tags = body.get("tags")
    if isinstance(tags, list) and len(tags) > MAX_TAGS:
        errors.append(_too_many_tags(tags))
    mode = body.get("advanced_mode")
    if mode == "analyze" and not body.get("session_links"):
        errors.append(field_error(("body", "session_links"),
                                  "Value error, advanced_mode 'analyze' requires session_links",
                                  "value_error", body.get("session_links")))
    if mode in ("improve", "batch") and not body.get("child_playbook_id"):
        errors.append(field_error(("body", "child_playbook_id"),
                                  f"Value error, advanced_mode '{mode}' requires child_playbook_id",
                                  "value_error", body.get("child_playbook_id")))
    if errors:
        raise ValidationFailed(_scrub(errors))
    limit = body.get("max_acu_limit")
    if isinstance(limit, float):
        body = {**body, "max_acu_limit": int(limit)}
    return body


def _too_many_tags(tags: list[Any]) -> dict[str, Any]:
    msg = f"List should have at most {MAX_TAGS} items after validation, not {len(tags)}"
    return field_error(("body", "tags"), msg, "too_long", tags,
                       {"field_type": "List", "max_length": MAX_TAGS, "actual_length": len(tags)})


def validate_message(payload: Any) -> tuple[str, str | None, list[str]]:
    """Check a send-message body; return (message, message_as_user_id, attachment_urls)."""
    body = _object(payload)
    errors: Errors = []
    _required_str(body, "message", errors, min_length=0)
    as_user = body.get("message_as_user_id")
    if as_user is not None:
        _str(("body", "message_as_user_id"), as_user, errors)
    urls = body.get("attachment_urls")
    if urls is not None:
        _str_list(("body", "attachment_urls"), urls, errors)
    if errors:
        raise ValidationFailed(errors)
    return body["message"], as_user, list(urls or [])


def validate_tags(payload: Any) -> list[str]:
    """Check a tags body `{tags: [...]}` (at most 50); return the tags."""
    body = _object(payload)
    errors: Errors = []
    if "tags" not in body:
        errors.append(field_error(("body", "tags"), "Field required", "missing", body))
    else:
        _str_list(("body", "tags"), body["tags"], errors)
        if not errors and len(body["tags"]) > MAX_TAGS:
            errors.append(_too_many_tags(body["tags"]))
    if errors:
        raise ValidationFailed(errors)
    return list(body["tags"])


# --- queries -------------------------------------------------------------------------------------
def last(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    return values[-1] if values else None


def query_int(query: MultiMapping[str], name: str, errors: Errors, *,
              lo: int | None = None, hi: int | None = None) -> int | None:
    raw = last(query, name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        errors.append(field_error(("query", name), "Input should be a valid integer, unable to "
                                  "parse string as an integer", "int_parsing", raw))
        return None
    if lo is not None and value < lo:
        errors.append(field_error(("query", name), f"Input should be greater than or equal to {lo}",
                                  "greater_than_equal", raw, {"ge": lo}))
    elif hi is not None and value > hi:
        errors.append(field_error(("query", name), f"Input should be less than or equal to {hi}",
                                  "less_than_equal", raw, {"le": hi}))
    return value


_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})


def query_bool(query: MultiMapping[str], name: str, errors: Errors) -> bool | None:
    raw = last(query, name)
    if raw is None:
        return None
    if raw.lower() in _TRUE | _FALSE:
        return raw.lower() in _TRUE
    errors.append(field_error(("query", name), "Input should be a valid boolean, unable to "
                              "interpret input", "bool_parsing", raw))
    return None


def query_list(query: MultiMapping[str], name: str) -> tuple[str, ...] | None:
    """An array filter: `a=x&a=y` and `a=x,y` both give ('x', 'y'); absent or empty gives None."""
    values = [part.strip() for raw in query.getall(name, []) for part in raw.split(",")]
    values = [v for v in values if v]
    return tuple(dict.fromkeys(values)) if values else None


def page_params(query: MultiMapping[str], errors: Errors) -> tuple[int, str | None]:
    first = query_int(query, "first", errors, lo=1, hi=PAGE_MAX)
    return (first if first is not None else 100), last(query, "after") or None


def parse_list_query(query: MultiMapping[str], *, extended: bool = True) -> ListQuery:
    """Parse GET /sessions parameters into a ListQuery, or raise ValidationFailed.

    `extended=False` (the insights list) ignores is_archived, repo_names and category, which
    that endpoint does not offer.
    """
    errors: Errors = []
    first, after = page_params(query, errors)
    ints = {name: query_int(query, name, errors) for name in
            ("created_after", "created_before", "updated_after", "updated_before")}
    is_archived = query_bool(query, "is_archived", errors) if extended else None
    origins = query_list(query, "origins")
    for i, origin in enumerate(origins or ()):
        enum_check(ORIGINS)(("query", "origins", i), origin, errors)
    category = last(query, "category") if extended else None
    if category is not None:
        enum_check(CATEGORIES)(("query", "category"), category, errors)
    if errors:
        raise ValidationFailed(errors)
    return ListQuery(
        first=first, after=session_cursor(after) if after else None,
        session_ids=query_list(query, "session_ids"), tags=query_list(query, "tags"),
        playbook_id=last(query, "playbook_id"), origins=origins,
        user_ids=query_list(query, "user_ids"),
        service_user_ids=query_list(query, "service_user_ids"),
        schedule_id=last(query, "schedule_id"), is_archived=is_archived,
        repo_names=query_list(query, "repo_names") if extended else None, category=category,
        **ints,
    )
