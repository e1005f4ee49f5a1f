"""Bearer tokens of the fake server and the permissions each one carries."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, Literal

import attrs

from ._errors import ApiError


class Permission(enum.StrEnum):
    """Org permissions the session endpoints check (names as the Devin docs spell them)."""

    MANAGE_ORG_SESSIONS = "ManageOrgSessions"  # create, message, terminate, archive, tag writes
    VIEW_ORG_SESSIONS = "ViewOrgSessions"  # every read
    USE_DEVIN_EXPERT = "UseDevinExpert"  # create with advanced_mode
    IMPERSONATE_ORG_SESSIONS = "ImpersonateOrgSessions"  # create_as_user_id, message_as_user_id
    USE_DEVIN_SESSIONS = "UseDevinSessions"  # attachment upload


ALL_PERMISSIONS: frozenset[str] = frozenset(p.value for p in Permission)

ENDPOINT_PERMISSION: dict[str, Permission | None] = {
    "create": Permission.MANAGE_ORG_SESSIONS,
    "list": Permission.VIEW_ORG_SESSIONS,
    "get": Permission.VIEW_ORG_SESSIONS,
    "terminate": Permission.MANAGE_ORG_SESSIONS,
    "archive": Permission.MANAGE_ORG_SESSIONS,
    "send_message": Permission.MANAGE_ORG_SESSIONS,
    "messages": Permission.VIEW_ORG_SESSIONS,
    "get_tags": Permission.VIEW_ORG_SESSIONS,
    "add_tags": Permission.MANAGE_ORG_SESSIONS,
    "replace_tags": Permission.MANAGE_ORG_SESSIONS,
    "attachments": Permission.VIEW_ORG_SESSIONS,
    "list_insights": Permission.VIEW_ORG_SESSIONS,
    "insights": Permission.VIEW_ORG_SESSIONS,
    "generate_insights": Permission.MANAGE_ORG_SESSIONS,
    "events": Permission.VIEW_ORG_SESSIONS,
    "event_details": Permission.VIEW_ORG_SESSIONS,
    "search_events": Permission.VIEW_ORG_SESSIONS,
    "upload_attachment": Permission.USE_DEVIN_SESSIONS,
    "download_attachment": Permission.VIEW_ORG_SESSIONS,
    "self": None,
}
"""The permission each endpoint needs before it looks at the request body (None: any token)."""
PrincipalType = Literal["service_user", "pat_user"]


@attrs.frozen
class Principal:
    """Who a token is: a service user (or a PAT user) with a set of permissions."""

    token: str
    service_user_id: str
    permissions: frozenset[str]
    principal_type: PrincipalType = "service_user"
    name: str = "fake-service-user"

    def require(self, permission: str | None) -> None:
        if permission is not None and permission not in self.permissions:
            raise ApiError(403, f"Missing permission: {permission}")

    @property
    def user_id(self) -> str | None:
        """The user a PAT acts as (sessions it creates carry it); None for a service user."""
        return self.service_user_id if self.principal_type == "pat_user" else None

    def self_json(self, org_id: str) -> dict[str, Any]:
        """The GET /v3/self body for this principal."""
        if self.principal_type == "pat_user":
            return {"principal_type": "pat_user", "user_id": self.service_user_id,
                    "user_name": self.name, "api_key_id": f"apikey-{self.service_user_id[-12:]}",
                    "api_key_name": f"{self.name}-key", "org_id": org_id}
        return {"principal_type": "service_user", "service_user_id": self.service_user_id,
                "service_user_name": self.name, "org_id": org_id}


class TokenRegistry:
    """Known tokens; an unknown or missing one is a 401."""

    def __init__(self) -> None:
        self._tokens: dict[str, Principal] = {}

    def add(self, token: str, service_user_id: str, permissions: Iterable[str], *,
            principal_type: PrincipalType = "service_user",
            name: str = "fake-service-user") -> Principal:
        perms = frozenset(str(p.value if isinstance(p, Permission) else p) for p in permissions)
        unknown = perms - ALL_PERMISSIONS
        if unknown:
            raise ValueError(f"unknown permissions: {sorted(unknown)}")
        if principal_type not in ("service_user", "pat_user"):
            raise ValueError("principal_type must be 'service_user' or 'pat_user'")
        principal = Principal(token, service_user_id, perms, principal_type, name)
        self._tokens[token] = principal
        return principal

    def remove(self, token: str) -> None:
        self._tokens.pop(token, None)

    def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
        principal = self._tokens.get(token.strip())
        if principal is None:
            raise ApiError(401, "Invalid API key", headers={"WWW-Authenticate": "Bearer"})
        return principal


def mask_token(token: str) -> str:
    """Show at most a `cog_` prefix and the last 4 characters: `cog_…1a2b`."""
    prefix = "cog_" if token.startswith("cog_") else ""
    tail = token[len(prefix):]
    return f"{prefix}…{tail[-4:]}" if len(tail) > 8 else f"{prefix}…"


def mask_authorization(value: str) -> str:
    scheme, sep, token = value.partition(" ")
    return f"{scheme} {mask_token(token.strip())}" if sep else mask_token(value)
