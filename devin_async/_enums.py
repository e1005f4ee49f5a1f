"""Open string enums: a value the server sends that we do not know yet is kept, never an error.

The API's enum lists differ between its sources and grow over time. An unknown value becomes a
pseudo-member whose `.value` is exactly what the server sent (and which compares equal to that
string), so old SDK versions keep working against a newer server.
"""

from __future__ import annotations

import enum
from typing import Any, Self

__all__ = ["OpenStrEnum", "SessionStatus", "StatusDetail"]

_MAX_UNKNOWN = 256  # pseudo-members cached per enum; hostile input cannot grow memory past this


class OpenStrEnum(enum.StrEnum):
    """A StrEnum that keeps unknown values as pseudo-members."""

    @classmethod
    def _missing_(cls, value: Any) -> Self | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        if len(cls._value2member_map_) < _MAX_UNKNOWN:
            cls._value2member_map_[value] = member
        return member

    @property
    def is_known(self) -> bool:
        """Return whether this value is one the SDK was built with."""
        return self._name_ in type(self).__members__


class SessionStatus(OpenStrEnum):
    """A session's `status`."""

    NEW = "new"
    CLAIMED = "claimed"
    RUNNING = "running"
    EXIT = "exit"
    ERROR = "error"
    SUSPENDED = "suspended"
    RESUMING = "resuming"


class StatusDetail(OpenStrEnum):
    """A session's `status_detail`: what it is doing while running, or why it is suspended."""

    WORKING = "working"
    WAITING_FOR_USER = "waiting_for_user"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    FINISHED = "finished"
    INACTIVITY = "inactivity"
    USER_REQUEST = "user_request"
    USAGE_LIMIT_EXCEEDED = "usage_limit_exceeded"
    OUT_OF_CREDITS = "out_of_credits"
    OUT_OF_QUOTA = "out_of_quota"
    NO_QUOTA_ALLOCATION = "no_quota_allocation"
    PAYMENT_DECLINED = "payment_declined"
    ORG_USAGE_LIMIT_EXCEEDED = "org_usage_limit_exceeded"
    TOTAL_SESSION_LIMIT_EXCEEDED = "total_session_limit_exceeded"
    ERROR = "error"
