"""OpenTelemetry tracing, optional (`pip install devin-async[otel]`: opentelemetry-api only).

With the API installed and `DevinClient(tracing=True)` (the default), every request attempt is a
CLIENT span following the HTTP client semantic conventions, and `poll`/`wait`/`run`/
`create_many`/a watcher cycle are INTERNAL spans around them. Without the package, or with
`tracing=False`, `make_tracer` returns None and no span object is ever made (one `is None` test
per attempt). The key and session secrets never reach an attribute: attributes are built from
the method, the URL (whose query is dropped for hosts other than the API's: a presigned URL's
query is its signature) and the status, never from headers or bodies.

With the API installed but no tracer provider configured (yet), `trace.get_tracer` hands out
a proxy tracer whose spans record nothing until an app sets one: the Tracer then skips its spans
(no attributes built, no span started), and takes them up once a provider is set: every request
made RECHECK (10 ms) or more after it is traced (`python -m benchmarks --only tracing` measures
all three cases).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ._version import __version__

__all__ = ["Tracer", "internal", "make_tracer"]

_SESSION_RE = re.compile(r"/sessions/(devin-[A-Za-z0-9._:-]+)")
_ORG_RE = re.compile(r"/organizations/[^/]+")
_ATTACHMENT_RE = re.compile(r"/attachments/[^/]+/[^/]+$")
#: Seconds an "idle" answer (no tracer provider set) is trusted before the API is asked again.
RECHECK = 0.01

#: What `internal` returns: a context manager entering a span (or nothing).
SpanScope = contextlib.AbstractContextManager[Any]


class Tracer:
    """The SDK's spans on one OpenTelemetry tracer."""

    def __init__(self, tracer: Any, api_origin: str) -> None:
        from opentelemetry import trace

        self._tracer = tracer
        self._trace = trace
        #: True while the tracer is the API's proxy and no provider is set (then nothing records).
        self._unset = isinstance(tracer, trace.ProxyTracer)
        self._idle = trace.INVALID_SPAN
        self._recheck_at = 0.0  # on time.monotonic(): until then, `idle()` answers from memory
        self._origin = api_origin
        parts = urlsplit(api_origin)
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)

    def idle(self) -> bool:
        """Tell whether spans would record nothing (no provider configured yet).

        Asking the API costs more than the rest of a request's bookkeeping (it looks the
        provider up in the environment), so an "idle" answer is trusted for RECHECK seconds.
        """
        if not self._unset:
            return False
        now = time.monotonic()
        if now < self._recheck_at:
            return True
        trace = self._trace
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            self._recheck_at = now + RECHECK
            return True
        self._unset = False  # a global provider is set once per process, for good
        return False

    def internal(self, name: str, attributes: Mapping[str, Any] | None = None) -> SpanScope:
        """Open an INTERNAL span (a parent of the requests made inside it)."""
        if self.idle():
            return contextlib.nullcontext(self._idle)
        scope: SpanScope = self._tracer.start_as_current_span(
            name, kind=self._trace.SpanKind.INTERNAL, attributes=dict(attributes or {}))
        return scope

    def client_span(self, method: str, url: str, attempt: int) -> Any:
        """Start (not enter) the CLIENT span of one attempt; end it with `finish`.

        Called only when `idle()` said no (and once a provider is set, it stays set).
        """
        parts = urlsplit(url)
        external = not url.startswith(self._origin)
        route = _ATTACHMENT_RE.sub("/attachments/{uuid}/{name}",
                                   _SESSION_RE.sub("/sessions/{devin_id}",
                                                   _ORG_RE.sub("/organizations/{org_id}",
                                                               parts.path)))
        full = f"{parts.scheme}://{parts.netloc}{parts.path}" if external or not parts.query \
            else f"{parts.scheme}://{parts.netloc}{parts.path}?{parts.query}"
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.full": full,
            "server.address": parts.hostname or self._host,
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
        }
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        session = _SESSION_RE.search(parts.path)
        if session is not None:
            attributes["devin.session_id"] = session.group(1)
        name = f"{method} {route}" if not external else method
        return self._tracer.start_span(name, kind=self._trace.SpanKind.CLIENT,
                                       attributes=attributes)

    def finish(self, span: Any, status: int | None, error: BaseException | None) -> None:
        """End an attempt's span with its status code or error type."""
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error is not None or (status is not None and status >= 400):
            by_status = status is not None and (status >= 400 or error is None)
            span.set_attribute("error.type",
                               str(status) if by_status else type(error).__name__)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end()


def internal(tracer: Tracer | None, name: str,
             attributes: Mapping[str, Any] | None = None) -> SpanScope:
    """Return an INTERNAL span's context manager, or a no-op one when tracing is off."""
    if tracer is None:
        return contextlib.nullcontext()
    return tracer.internal(name, attributes)


def make_tracer(tracing: bool | Any, api_origin: str) -> Tracer | None:
    """Return the SDK's Tracer, or None when tracing is off or opentelemetry is missing.

    `tracing` is a bool, or a TracerProvider to take the tracer from (tests, or an app with
    several providers).
    """
    if tracing is False or tracing is None:
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    if tracing is True:
        tracer = trace.get_tracer("devin_async", __version__)
    else:
        tracer = tracing.get_tracer("devin_async", __version__)
    return Tracer(tracer, api_origin)
