"""Logging and event hooks: what the client tells the outside world about its requests.

Hooks are plain callables fed frozen event objects, for users' metrics (the way stamina feeds its
instrumentation). A hook that raises is logged and ignored: metrics must never break a request.
Nothing here ever sees the API key: events carry the method, the path and what came back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import attrs

__all__ = ["Hooks", "RequestEvent", "ResponseEvent", "RetryEvent", "logger"]

logger = logging.getLogger("devin_async")


@attrs.frozen
class RequestEvent:
    """A request is about to be sent (`attempt` counts from 1)."""

    method: str
    path: str
    attempt: int


@attrs.frozen
class ResponseEvent:
    """An attempt ended: `status` is None when no HTTP answer came (see `error`)."""

    method: str
    path: str
    attempt: int
    status: int | None
    elapsed: float
    request_id: str | None = None
    error: BaseException | None = None


@attrs.frozen
class RetryEvent:
    """A failed attempt will be tried again after `delay` seconds."""

    method: str
    path: str
    attempt: int
    delay: float
    error: BaseException


Hook = Callable[[Any], object]


def as_hooks(value: Hook | Iterable[Hook] | None) -> tuple[Hook, ...]:
    """Normalize a hook argument (None, one callable, or several) to a tuple."""
    if value is None:
        return ()
    if callable(value):
        return (value,)
    hooks = tuple(value)
    for hook in hooks:
        if not callable(hook):
            raise ValueError(f"hooks must be callables, got {type(hook).__name__}")
    return hooks


@attrs.frozen
class Hooks:
    """The client's event hooks, each a tuple of callables (empty: nothing is built)."""

    on_request: tuple[Hook, ...] = ()
    on_response: tuple[Hook, ...] = ()
    on_retry: tuple[Hook, ...] = ()


def fire(hooks: tuple[Hook, ...], event: object) -> None:
    """Call every hook with `event`; log and swallow a hook's own failure."""
    for hook in hooks:
        try:
            hook(event)
        except Exception:
            logger.exception("devin_async event hook %r failed", hook)


_configured = False


def configure_from_env() -> None:
    """Honour DEVIN_ASYNC_LOG=debug|info: attach one stderr handler at that level (once)."""
    global _configured
    level_name = os.environ.get("DEVIN_ASYNC_LOG", "").strip().upper()
    if _configured or level_name not in ("DEBUG", "INFO", "WARNING"):
        return
    _configured = True
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, level_name))
