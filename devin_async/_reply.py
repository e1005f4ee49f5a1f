"""What the engine hands back and takes: a decoded answer, a create's look-up, a download's sink."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, Protocol

from ._headers import request_id

__all__ = ["LookUp", "Reply", "Sink"]


class Reply(NamedTuple):
    """A decoded 2xx answer with its metadata (what gidgethub's `decipher_response` returns)."""

    data: Any
    status: int
    headers: Mapping[str, str]
    #: The server's wait hint on this answer, capped by `RetryPolicy.max_retry_after`.
    retry_after: float | None

    @property
    def request_id(self) -> str | None:
        """The server's request id header, if any."""
        return request_id(self.headers)


#: A create's look-up: given the call's deadline, the session's reply if one carries the token,
#: else None. It raises CreateUnconfirmedError when it cannot tell.
LookUp = Callable[[float], Awaitable["Reply | None"]]

class Sink(Protocol):
    """Where a streamed 2xx body goes (a download): chunks, a size cap, and a restart."""

    limit: int

    async def write(self, chunk: bytes) -> None:
        """Take the next chunk."""

    def reset(self) -> bool:
        """Forget what was written, for a retry; False if that is impossible."""
