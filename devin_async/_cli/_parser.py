"""The `devin-async` argument parser: flags, argument types, help text.

Every usage error, argparse's own and the commands' checks alike, is one `devin-async: error:`
line and exit 2: the parser raises `UsageError` instead of printing usage and exiting.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from devin_async import __version__

from ._argtypes import field, positive, positive_int, timestamp
from ._common import UsageError

__all__ = ["build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


EPILOG = """\
examples:
  devin-async demo                              # try it: no account, no network
  export DEVIN_API_KEY=cog_... DEVIN_ORG_ID=org-...
  devin-async create "Fix the flaky test in tests/test_api.py" --tag ci --repo me/app
  devin-async wait devin-123 --until terminal --timeout 3600
  devin-async watch devin-123 devin-456
  devin-async watch --tag nightly --forever --state nightly.state.json --json
  devin-async list --tag ci --created-after 2025-01-01 --limit 20 --json
  devin-async create-many requests.jsonl --validate
  devin-async create-many requests.jsonl --json | devin-async watch -
  devin-async run "Summarize README.md" --schema summary.schema.json --timeout 1800
  devin-async ask devin-123 "Which tests did you run?"
  devin-async events devin-123 --follow --category shell
  devin-async create "Review this design" --attach design.pdf
  devin-async whoami                            # the key's organization (for DEVIN_ORG_ID)
  devin-async serve-fake --port 8765 --log     # a local fake API for your own programs

configuration: DEVIN_API_KEY, DEVIN_ORG_ID, DEVIN_BASE_URL (or --api-key, --org-id, --base-url).
--json prints one JSON object per line (sessions in the API's field names) and never ANSI;
an error is then one {"error", "status", "detail"} object on stderr.
On a terminal, long commands show a live table (install devin-async[cli] for it: rich).

exit codes:
  0    success
  1    unexpected internal error; or the demo did not go as designed
  2    usage: bad arguments, missing configuration, an invalid request, create-many
       with bad lines (nothing sent)
  3    API or network error; create-many with any failed create; watch saw a session
       vanish or not exist; run --schema: the session settled without a structured
       output (or one that does not fit)
  4    wait/watch/run: a session ended in error
  5    timeout (--timeout passed first; the session keeps running)
  130  interrupted (Ctrl-C)
"""


# -- the parser ----------------------------------------------------------------------------


def _global_flags(suppress: bool) -> _Parser:
    # The same flags on the top parser (real defaults) and on every subcommand (SUPPRESS, so a
    # subcommand that does not see a flag does not overwrite what the top parser parsed).
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parent = _Parser(add_help=False)
    group = parent.add_argument_group("connection and output (before or after the command)")
    group.add_argument(
        "--api-key",
        default=default(None),
        help="the API key; discouraged (other users can see it): set DEVIN_API_KEY",
    )
    group.add_argument(
        "--org-id", default=default(None), help="the organization id (default: DEVIN_ORG_ID)"
    )
    group.add_argument(
        "--base-url",
        default=default(None),
        help="the API origin (default: DEVIN_BASE_URL, then https://api.devin.ai)",
    )
    group.add_argument(
        "--api-version", default=default("v3beta1"), choices=("v3beta1", "v3"), help="API version"
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print one JSON object per line (no colors, no live display)",
    )
    return parent


def _wait_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--until",
        choices=("settled", "terminal"),
        default="settled",
        help="settled: needs the user or done (default); terminal: exit or error",
    )
    parser.add_argument("--timeout", type=positive, help="give up after this many seconds")
    parser.add_argument(
        "--poll-interval",
        type=positive,
        help="seconds between polls after a change (default 1; backs off to 30)",
    )


def _create_flags(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--title")
    p.add_argument("--tag", action="append", help="a tag (repeatable)")
    p.add_argument("--repo", action="append", help="a repository, owner/name (repeatable)")
    p.add_argument("--playbook-id")
    p.add_argument("--max-acu-limit", type=positive_int)
    p.add_argument("--advanced-mode", choices=("analyze", "create", "improve", "batch", "manage"))
    p.add_argument("--session-link", action="append", help="a session to analyze (repeatable)")
    p.add_argument("--child-playbook-id")
    p.add_argument("--knowledge-id", action="append", help="repeatable")
    p.add_argument("--secret-id", action="append", help="repeatable")
    p.add_argument("--bypass-approval", action="store_true")
    p.add_argument("--create-as-user-id")
    p.add_argument("--attach", action="append", metavar="FILE",
                   help="upload FILE and attach it to the session (repeatable)")
    p.add_argument(
        "--field",
        action="append",
        type=field,
        metavar="KEY=JSON",
        help="another body field, sent as is (value parsed as JSON, else a string; repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the `devin-async` argument parser."""
    parser = _Parser(
        prog="devin-async",
        description="Drive Devin sessions from the shell (an async SDK underneath).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_flags(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"devin-async {__version__}")
    common: list[_Parser] = [_global_flags(suppress=True)]
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)

    def command(name: str, help: str, more: str = "") -> argparse.ArgumentParser:
        description = f"{help[0].upper()}{help[1:]}. {more}".strip()
        return sub.add_parser(name, help=help, description=description, parents=common)

    p = command("create", "create a session")
    p.add_argument("prompt", help="the task for Devin ('-' reads it from stdin)")
    _create_flags(p)

    p = command("get", "print one session")
    p.add_argument("id", help="the session id")

    p = command("list", "list sessions, oldest first",
                "The API sends sessions oldest first and has no order parameter: "
                "--newest-first reads every matching page, then prints the newest --limit.")
    p.add_argument("--tag", action="append", help="only sessions with this tag (repeatable)")
    p.add_argument("--session-id", action="append", help="only these sessions (repeatable)")
    for name in ("created-after", "created-before", "updated-after", "updated-before"):
        p.add_argument(f"--{name}", type=timestamp, metavar="WHEN",
                       help="Unix seconds or ISO 8601 (UTC if no offset)")
    p.add_argument("--playbook-id")
    p.add_argument("--archived", action=argparse.BooleanOptionalAction, default=None,
                   help="only archived (or, with --no-archived, unarchived) sessions")
    p.add_argument("--limit", type=int, default=50, help="at most N sessions (default 50; 0: all)")
    p.add_argument("--newest-first", action="store_true",
                   help="newest first (reads all matching sessions, then keeps --limit)")

    p = command("message", "send a message to a session (wakes a suspended one)")
    p.add_argument("id", help="the session id")
    p.add_argument("text", help="the message")

    p = command("terminate", "terminate a session for good")
    p.add_argument("id", help="the session id")
    p.add_argument("--archive", action="store_true", help="archive it too")

    p = command("wait", "wait for a session to settle (exit 4 if it ends in error)",
                "Prints each change as it happens, then the final session; with --json only "
                "the final session (also on a timeout, exit 5).")
    p.add_argument("id", help="the session id")
    _wait_flags(p)

    p = command("watch", "watch sessions until each settles (exit 4 if any ends in error)",
                "Rows keep the order the ids were given (sessions found by --tag or as "
                "children follow as they appear); an id that does not exist gets a 'not "
                "found' row (exit 3). With --json: one {gone, previous, session} object per "
                "change, and {not_found: true, session_id} for an id that does not exist. "
                "--state FILE keeps the watcher's checkpoint, replaced atomically after each "
                "change: a rerun (even after kill -9) reports what changed meanwhile and "
                "repeats nothing.")
    p.add_argument("ids", nargs="*", metavar="ID",
                   help="session ids; '-' reads ids from stdin, one per line, or the --json "
                        "lines of create-many/create/list (their session_id)")
    p.add_argument("--tag", action="append", metavar="T",
                   help="also watch every session with all these tags, created later too "
                        "(repeatable)")
    p.add_argument("--follow-children", action="store_true",
                   help="also watch the child sessions of watched sessions")
    p.add_argument("--forever", action="store_true",
                   help="never stop by itself (a daemon): Ctrl-C or --timeout ends it")
    p.add_argument("--state", metavar="FILE",
                   help="resume from FILE if it exists; keep the checkpoint there")
    _wait_flags(p)

    p = command("create-many", "create a session per JSON line (one result line each)",
                "Each input line is a create body, e.g. {\"prompt\": \"...\", \"tags\": [\"x\"]}, "
                "with the create fields only (an unknown key is an error; newer API fields go "
                "in \"extra_body\": {...}, sent as is); blank lines are skipped, a UTF-8 BOM is "
                "fine. Every line is checked first: if any is bad, all bad lines are listed "
                "and nothing is sent (exit 2) unless --keep-going. Results come in completion "
                "order (--ordered: input order), one per line; with --json each is {line, ok, "
                "session | error} (and existing: true for a session an earlier run of the "
                "same --batch-key created). Exit 3 if any create failed.")
    p.add_argument("file", help="JSON lines, one create body per line ('-' for stdin)")
    p.add_argument("--concurrency", type=positive_int, default=8,
                   help="creates in flight at once (default 8)")
    p.add_argument("--validate", action="store_true",
                   help="check every line, list the bad ones, send nothing")
    p.add_argument("--keep-going", action="store_true",
                   help="send the good lines even if some are bad (bad lines are failed results)")
    p.add_argument("--ordered", action="store_true",
                   help="print results in input order once all are done "
                        "(default: as each completes; each result names its line)")
    p.add_argument("--batch-key", metavar="KEY",
                   help="make the batch resumable: line N gets the idempotency key KEY/N, so "
                        "a rerun after a crash creates only the missing sessions (the others "
                        "are reported as existing)")
    p.add_argument("--resume", metavar="KEY",
                   help="rerun a batch started with --batch-key KEY (the same as --batch-key)")

    p = command("run", "create a session, wait for it, print its result",
                "With --schema, Devin is asked for a structured output that fits the JSON "
                "Schema, and the output is printed (as JSON); without, the final session. "
                "Exit 4 if the session ended in error, 3 if it settled without a structured "
                "output, 5 on a timeout (the session keeps running).")
    p.add_argument("prompt", help="the task for Devin ('-' reads it from stdin)")
    p.add_argument("--schema", metavar="FILE",
                   help="a JSON Schema (draft 7) file for the structured output ('{...}': inline)")
    _wait_flags(p)
    _create_flags(p)

    p = command("ask", "send a message and print Devin's reply",
                "Waits for the first message from Devin after yours (exit 5 on a timeout).")
    p.add_argument("id", help="the session id")
    p.add_argument("text", help="the message ('-' reads it from stdin)")
    p.add_argument("--timeout", type=positive, help="give up after this many seconds")
    p.add_argument("--poll-interval", type=positive, help="seconds between reads (default 1)")

    p = command("events", "print a session's events, one line each",
                "Each line: time (UTC), category, type, summary. --follow prints new events "
                "as they come until the session ends (Ctrl-C stops it). With --json: one "
                "event object per line.")
    p.add_argument("id", help="the session id")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing new events until the session is terminal")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--category", action="append", metavar="C",
                      help="only this category: shell, file, git, message, status, ... "
                           "(repeatable, or a,b)")
    only.add_argument("--type", action="append", metavar="T", dest="event_type",
                      help="only this event type, e.g. file_edited (repeatable, or a,b)")
    p.add_argument("--direction", choices=("incoming", "outgoing"))
    p.add_argument("--limit", type=positive_int, help="at most N events")
    p.add_argument("--poll-interval", type=positive,
                   help="--follow: seconds between reads (default 1; backs off to 30)")

    p = command("insights", "print a session's insights (--generate: ask for them first)")
    p.add_argument("id", help="the session id")
    p.add_argument("--generate", action="store_true",
                   help="generate the analysis and wait until it is ready")
    p.add_argument("--timeout", type=positive, help="--generate: give up after this many seconds")
    p.add_argument("--poll-interval", type=positive,
                   help="--generate: seconds between reads (default 1)")

    command("whoami", "print who the API key is (type, organization, user)",
            "Needs no organization id: use it to find the one to set in DEVIN_ORG_ID.")

    p = command("upload", "upload a file; print its attachment id and URL",
                "Pass the URL to create/message (or use create --attach FILE).")
    p.add_argument("file", help="the file ('-' reads stdin; then --name is required)")
    p.add_argument("--name", help="the attachment's file name (default: the file's)")

    p = command("download", "download an attachment to a file")
    p.add_argument("url", help="the attachment URL (from upload or a session's attachments)")
    p.add_argument("dest", help="a file, a directory (the URL's file name in it), or '-' "
                                "for stdout")

    p = command("serve-fake", "serve a fake Devin API on this machine (Ctrl-C stops it)",
                "Prints the export line to copy into another shell. --api-key/DEVIN_API_KEY and "
                "--org-id/DEVIN_ORG_ID set the credentials it accepts (default: fixed by "
                "--seed). --json prints {base_url, api_key, org_id} and, with --log, one "
                "{method, path, status} object per request.")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="default 8765; 0 picks a free port")
    p.add_argument("--time-scale", type=positive, default=1.0,
                   help="server seconds per real second (default 1)")
    p.add_argument("--rate-limit", type=positive, help="requests per second per key")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of ids, lifecycle timings and default credentials (default 0)")
    p.add_argument("--log", action="store_true", help="print each request as it is served")

    p = command("demo", "create and watch sessions on an in-process fake server")
    p.add_argument("--sessions", type=positive_int, default=20, help="how many (default 20)")
    p.add_argument("--time-scale", type=positive, default=10.0,
                   help="how much faster than real Devin sessions move (default 10)")
    p.add_argument("--concurrency", type=positive_int, default=8, help="default 8")
    p.add_argument("--seed", type=int, default=0, help="seed of the fake server (default 0)")
    return parser


