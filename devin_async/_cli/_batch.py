"""`create-many`: a create per JSON line, every line checked before anything is sent.

A line is a create body with the create fields only (`CreateSessionRequest`'s, read from the
class so a new field is accepted as soon as the SDK knows it); an unknown key is an error naming
it (a typo must not silently become a body field); `extra_body` carries newer API fields through
unchanged. All the bad lines are listed, with their numbers, before anything is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import operator
import sys
from typing import Any

import attrs

from devin_async import CreateSessionRequest, Session

from . import _commands  # its make_client, looked up at call time
from ._common import EXIT_API_ERROR, EXIT_OK, UsageError, closing, error_dict
from ._display import Output, session_dict, status_cell
from ._text import Cell, Text, plural

__all__ = ["allowed_keys", "cmd_create_many", "parse_line", "read_requests"]

EXTRA_KEY = "extra_body"


def allowed_keys() -> list[str]:
    """Return the keys a create-many line may have: the create fields, then `extra_body`."""
    return [f.name for f in attrs.fields(CreateSessionRequest) if f.name != "extra"] + [EXTRA_KEY]


def _unknown(keys: list[str], allowed: list[str]) -> str:
    hints = []
    for key in keys:
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.8)
        hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    word = "key" if len(keys) == 1 else "keys"
    return (f"unknown {word} {', '.join(hints)}; newer API fields go in "
            f'"{EXTRA_KEY}": {{...}}')


def parse_line(line: str) -> CreateSessionRequest:
    """Parse and check one line (a create body as JSON).

    Raises:
        ValueError: not JSON, not an object, an unknown key, or a field the create refuses.
    """
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object (a create body), got {type(data).__name__}")
    allowed = allowed_keys()
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise ValueError(_unknown(unknown, allowed))
    if "prompt" not in data:
        raise ValueError("prompt is required")
    fields = dict(data)
    extra = fields.pop(EXTRA_KEY, None) or {}
    if not isinstance(extra, dict):
        raise ValueError(f"{EXTRA_KEY} must be a JSON object of body fields")
    # A field sent through extra_body before the SDK knew it stays valid once it does.
    for key in [k for k in extra if k in allowed and k != EXTRA_KEY]:
        if key in fields:
            raise ValueError(f"{key} is given twice (and in {EXTRA_KEY})")
        fields[key] = extra.pop(key)
    try:
        request = CreateSessionRequest(**fields, extra=extra)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    request.validate()
    return request


def read_requests(source: str) -> list[tuple[int, CreateSessionRequest | ValueError]]:
    """Read and check every non-blank line of a file (`-`: stdin); a UTF-8 BOM is skipped.

    Raises:
        UsageError: the file cannot be read, is not UTF-8, or has no request at all.
    """
    name = "stdin" if source == "-" else source
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8-sig") as handle:
                text = handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not UTF-8 text (byte {exc.start})") from None
    parsed: list[tuple[int, CreateSessionRequest | ValueError]] = []
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed.append((number, parse_line(line)))
        except (ValueError, TypeError) as exc:
            parsed.append((number, ValueError(str(exc))))
    if not parsed:
        raise UsageError(f"no create requests in {name} (one JSON object per line)")
    return parsed


def _list_bad(out: Output, source: str, bad: list[tuple[int, ValueError]]) -> None:
    name = "stdin" if source == "-" else source
    for number, error in bad:
        if out.json_mode:
            out.json({"line": number, "ok": False, "error": error_dict(error)})
        else:
            print(f"devin-async: error: {name} line {number}: {error}", file=sys.stderr)


async def cmd_create_many(args: argparse.Namespace, out: Output) -> int:
    """Create a session per JSON line; print one result per line; exit 3 if any failed."""
    parsed = await asyncio.to_thread(read_requests, args.file)
    good = [(n, r) for n, r in parsed if isinstance(r, CreateSessionRequest)]
    bad = [(n, r) for n, r in parsed if isinstance(r, ValueError)]
    if args.validate or (bad and not args.keep_going):
        _list_bad(out, args.file, bad)
        if bad:
            hint = "" if args.validate else " (--keep-going sends the good ones)"
            raise UsageError(f"{plural(len(bad), 'bad line')} of {len(parsed)}; "
                             f"nothing was sent{hint}")
        if out.json_mode:
            out.json({"valid": len(good), "invalid": 0})
        else:
            out.line(f"{plural(len(good), 'request')} OK; nothing was sent (--validate)")
        return EXIT_OK
    return await _send(args, out, parsed, good)


async def _send(args: argparse.Namespace, out: Output,
                parsed: list[tuple[int, CreateSessionRequest | ValueError]],
                good: list[tuple[int, CreateSessionRequest]]) -> int:
    done = failed = 0
    held: list[tuple[int, dict[str, Any], Text]] = []

    def report(line: int, session: Session | None, error: BaseException | None) -> None:
        nonlocal done, failed
        done += 1
        record: dict[str, Any] = {"line": line, "ok": error is None}
        text: Text
        if session is not None:
            record["session"] = session_dict(session)
            title = f"  {session.title}" if session.title else ""
            text = [f"line {line}: {session.session_id}  ", status_cell(session), title]
        else:
            failed += 1
            assert error is not None
            record["error"] = error_dict(error)
            text = [f"line {line}: ", Cell("failed", "error"), f": {error}"]
        if args.ordered:
            held.append((line, record, text))
        elif out.json_mode:
            out.json(record)
        else:
            out.line(text)

    for number, item in parsed:
        if isinstance(item, ValueError):
            report(number, None, item)
    async with _commands.make_client(args) as client, out.progress(len(good), "creating") as bar:
        results = client.sessions.create_many([r for _, r in good], concurrency=args.concurrency)
        async with closing(results):
            async for result in results:
                report(good[result.index][0], result.session, result.error)
                bar.advance(failed=result.error is not None)
    for _, record, text in sorted(held, key=operator.itemgetter(0)):
        if out.json_mode:
            out.json(record)
        else:
            out.line(text)
    if not out.json_mode:
        out.line(f"{done - failed} created, {failed} failed in {out.elapsed():.1f}s")
    return EXIT_API_ERROR if failed else EXIT_OK

