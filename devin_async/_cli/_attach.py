"""Files: `upload`, `download`, and the `--attach FILE` of create and run.

Every `--attach` file is checked before anything is sent (a missing one is a usage error, no
upload, no create); then each is uploaded and its URL added to the create's `attachment_urls`.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs

from devin_async import CreateSessionRequest, DevinClient, UploadedAttachment

from . import _commands  # its make_client, looked up at call time
from ._common import UsageError
from ._display import Output, model_dict

__all__ = ["attach_files", "check_files", "cmd_download", "cmd_upload"]


def check_files(paths: list[str] | None) -> list[pathlib.Path]:
    """Return the `--attach` paths, each an existing regular file.

    Raises:
        UsageError: a path that is not a readable file.
    """
    files = [pathlib.Path(p) for p in paths or ()]
    for path in files:
        if not path.is_file() or not os.access(path, os.R_OK):
            raise UsageError(f"--attach {str(path)!r}: not a readable file")
    return files


async def attach_files(client: DevinClient, request: CreateSessionRequest,
                       files: list[pathlib.Path]) -> CreateSessionRequest:
    """Upload each file; return the request with their URLs added to `attachment_urls`."""
    if not files:
        return request
    urls = list(request.attachment_urls or ())
    for path in files:
        uploaded = await client.attachments.upload(path)
        urls.append(uploaded.url)
    return attrs.evolve(request, attachment_urls=urls)


def _attachment_lines(out: Output, uploaded: UploadedAttachment) -> None:
    rows = (("attachment_id", uploaded.attachment_id), ("name", uploaded.name),
            ("url", uploaded.url))
    width = max(len(k) for k, _ in rows)
    out.lines(f"{k.ljust(width)}  {v}" for k, v in rows)


async def cmd_upload(args: argparse.Namespace, out: Output) -> int:
    """Upload a file (or stdin) and print the attachment's id, name and URL."""
    source: Any
    if args.file == "-":
        if not args.name:
            raise UsageError("upload -: --name is required (stdin has no file name)")
        source = sys.stdin.buffer.read()
    else:
        source = pathlib.Path(args.file)
        if not source.is_file():
            raise UsageError(f"{args.file!r} is not a readable file")
    async with _commands.make_client(args) as client:
        uploaded = await client.attachments.upload(source, name=args.name)
    if out.json_mode:
        out.json(model_dict(uploaded))
    else:
        _attachment_lines(out, uploaded)
    return 0


def _destination(dest: str, url: str) -> pathlib.Path:
    path = pathlib.Path(dest)
    if path.is_dir():
        name = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise UsageError(f"cannot name a file in {dest!r} after {url!r}: give a file path")
        path = path / name
    return path


async def cmd_download(args: argparse.Namespace, out: Output) -> int:
    """Download an attachment to a file, into a directory, or to stdout (`-`)."""
    if args.dest == "-":
        if out.json_mode:
            raise UsageError("download ... -: the file goes to stdout, so --json cannot")
        async with _commands.make_client(args) as client:
            await client.attachments.download(args.url, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    path = _destination(args.dest, args.url)
    async with _commands.make_client(args) as client:
        written = await client.attachments.download(args.url, path)
    if out.json_mode:
        out.json({"url": args.url, "path": str(path), "bytes": written})
    else:
        out.line(f"{written} bytes written to {path}")
    return 0
