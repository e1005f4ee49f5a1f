"""Errors the fake server's endpoint code raises; the HTTP layer turns them into responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """An HTTP error answer: a status and a FastAPI-style `detail`."""

    def __init__(
        self, status: int, detail: str | list[dict[str, Any]], *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


class ValidationFailed(ApiError):
    """A 422 whose detail is the list of `{loc, msg, type}` errors, as FastAPI sends it."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(422, errors)
        self.errors = errors


def field_error(
    loc: tuple[str | int, ...], msg: str, type_: str, value: Any = None,
    ctx: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one pydantic-v2-shaped validation error entry."""
    error: dict[str, Any] = {"type": type_, "loc": list(loc), "msg": msg, "input": value}
    if ctx:
        error["ctx"] = dict(ctx)
    return error
