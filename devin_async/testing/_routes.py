"""The fake server's routing table: (method, path template) -> endpoint name.

Paths are matched whole (`fullmatch`), so a path parameter holding any character but `/` (a
newline included) still reaches its endpoint, which then answers a JSON 404 for an unknown id.
The concrete `/sessions/insights` comes before the template `/sessions/{devin_id}`.
"""

from __future__ import annotations

import re

VERSIONS = ("v3beta1", "v3")
_ORG = "/organizations/{org_id}"
_SESSION = _ORG + "/sessions/{devin_id}"
ROUTES: tuple[tuple[str, str, str], ...] = (
    # method, path after /{version}, endpoint name
    ("POST", _ORG + "/sessions", "create"),
    ("GET", _ORG + "/sessions", "list"),
    ("GET", _ORG + "/sessions/insights", "list_insights"),
    ("GET", _SESSION, "get"),
    ("DELETE", _SESSION, "terminate"),
    ("POST", _SESSION + "/archive", "archive"),
    ("GET", _SESSION + "/messages", "messages"),
    ("POST", _SESSION + "/messages", "send_message"),
    ("GET", _SESSION + "/tags", "get_tags"),
    ("POST", _SESSION + "/tags", "add_tags"),
    ("PUT", _SESSION + "/tags", "replace_tags"),
    ("GET", _SESSION + "/attachments", "attachments"),
    ("GET", _SESSION + "/insights", "insights"),
    ("POST", _SESSION + "/insights/generate", "generate_insights"),
    ("GET", _SESSION + "/events", "events"),
    ("GET", _SESSION + "/events/details", "event_details"),
    ("GET", _SESSION + "/events/search", "search_events"),
    ("POST", _ORG + "/attachments", "upload_attachment"),
    ("GET", _ORG + "/attachments/{uuid}/{name}", "download_attachment"),
    ("GET", "/self", "self"),
)
ENDPOINTS: tuple[str, ...] = tuple(dict.fromkeys(name for _, _, name in ROUTES))
ROOT_ONLY = {"self": ("v3",)}
"""Endpoints served under fewer versions than the rest: GET /v3/self has no /v3beta1 twin."""

_VERSION = re.compile(r"/(?P<version>v3beta1|v3)(?P<rest>/.*)", re.DOTALL)
_PARAM = re.compile(r"\{(\w+)\}")
_COMPILED = [
    (method, re.compile(_PARAM.sub(lambda m: f"(?P<{m[1]}>[^/]+)", re.escape(tail)
                                   .replace(r"\{", "{").replace(r"\}", "}")), re.DOTALL), name)
    for method, tail, name in ROUTES]


def resolve(method: str, path: str) -> tuple[str | None, dict[str, str], set[str]]:
    """Return (endpoint, path params incl. `version`, methods allowed on the path)."""
    prefix = _VERSION.fullmatch(path)
    if prefix is None:
        return None, {}, set()
    version, rest = prefix["version"], prefix["rest"]
    allowed: set[str] = set()
    for route_method, pattern, name in _COMPILED:
        if version not in ROOT_ONLY.get(name, VERSIONS):
            continue
        match = pattern.fullmatch(rest)
        if match is None:
            continue
        params = {"version": version, **match.groupdict()}
        if route_method == method:
            return name, params, allowed
        allowed.add(route_method)
    return None, {}, allowed
