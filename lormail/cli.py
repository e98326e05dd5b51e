"""The command line: parse arguments, call one function, print, exit.

Command implementations are imported only when their command runs, so that
``lormail --help`` stays fast.  Every :class:`LormailError` is caught here,
printed one problem per line, and turned into the exit code (SPEC §6); any
other exception is one line too, unless ``--debug`` asks for the traceback.

To add a command: a line in :data:`COMMANDS` and its sub-parser in
:func:`_commands`.  The global options (``--config``, ``--debug``) are
added to every sub-parser there, so they work before or after the command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from lormail import __version__
from lormail.errors import EXIT_RUNTIME, EXIT_USAGE, LormailError

# command -> "module:function"; each function is (App, argparse.Namespace) -> int.
COMMANDS: dict[str, str] = {
    "init": "lormail.commands.init:cmd_init",
    "check": "lormail.commands.check:cmd_check",
    "plan": "lormail.commands.plan:cmd_plan",
    "status": "lormail.commands.status:cmd_status",
    "preview": "lormail.commands.preview:cmd_preview",
    "send-due": "lormail.commands.send:cmd_send_due",
    "run": "lormail.daemon.main:cmd_run",
    "ics": "lormail.commands.calendar:cmd_ics",
    "credentials": "lormail.commands.credentials:cmd_credentials",
    "feed-url": "lormail.commands.calendar:cmd_feed_url",
    "log": "lormail.commands.send:cmd_log",
    "mark": "lormail.commands.mark:cmd_mark",
    "retry": "lormail.commands.send:cmd_retry",
    "state": "lormail.commands.send:cmd_state",
    "inbox": "lormail.commands.inbox:cmd_inbox",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, exit 2, as for every other bad input.
        self.exit(EXIT_USAGE, f"lormail: {message} (see 'lormail --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Every command's parser, each taking the global options too."""
    p = _commands()
    _share_global_options(p)
    return p


def _commands() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lormail",
        description="Plans, sends and calendars the e-mails around your letters of recommendation.",
        epilog="Exit codes: 0 success, 1 runtime failure (SMTP down, keyring locked), "
        "2 bad input or usage.",
    )
    p.add_argument("--version", action="version", version=f"lormail {__version__}")
    _global_options(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def now_opt(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--now", metavar="TIMESTAMP", help="evaluate as of this RFC 3339 instant")

    sp = sub.add_parser("init", help="write a commented config, an example roster and templates")
    sp.add_argument("dir", nargs="?", type=Path, default=None, metavar="DIR")
    sp.add_argument("--force", action="store_true", help="overwrite existing files")
    sp.add_argument("--name", help="your name, as recipients see it (asked on a terminal)")
    sp.add_argument("--email", help="your e-mail address (asked on a terminal)")
    sp.add_argument(
        "--timezone", metavar="ZONE", help="your IANA time zone (default: this machine's)"
    )

    sub.add_parser("check", help="validate config, roster and templates")

    sp = sub.add_parser("plan", help="upcoming messages")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--all", action="store_true", help="also sent, skipped and expired messages")
    now_opt(sp)

    sp = sub.add_parser("status", help="recommenders and their letters, and daemon health")
    sp.add_argument("recommender", nargs="?", metavar="R", help="only this recommender")
    sp.add_argument("--programs", action="store_true", help="a row per program, with outcomes")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    now_opt(sp)

    sp = sub.add_parser("preview", help="the full message as it would be sent")
    sp.add_argument("key", metavar="KEY", help="a message key from 'lormail plan'")
    now_opt(sp)

    sp = sub.add_parser("send-due", help="send what is due now, once, and exit")
    sp.add_argument("--dry-run", action="store_true", help="render and log, send nothing")
    now_opt(sp)

    sub.add_parser("run", help="the daemon: send on time, serve the calendar feed")

    sp = sub.add_parser("ics", help="write the calendar (stdout without -o)")
    sp.add_argument("-o", "--output", metavar="FILE", type=Path, default=None)
    now_opt(sp)

    sp = sub.add_parser(
        "credentials", help="store, test or delete the mail password in the keyring (SMTP and IMAP)"
    )
    sp.add_argument("action", choices=["set", "test", "delete"])
    sp.add_argument(
        "--imap",
        action="store_true",
        help="the inbox's entry (imap.username), or only the IMAP login for 'test'",
    )

    sp = sub.add_parser("feed-url", help="the calendar subscription URL")
    sp.add_argument("--rotate", action="store_true", help="make a new token (old URL stops)")

    sp = sub.add_parser("log", help="what was sent, failed or skipped, with times")
    sp.add_argument("--json", action="store_true", help="machine-readable output")

    sp = sub.add_parser(
        "mark",
        help="record what happened in the roster: asked, agreed, submitted, outcomes",
        description="Records what happened in roster.yaml itself, keeping its comments and "
        "layout, and prints the diff. Examples: 'mark johnson agreed', "
        "'mark johnson submitted eras', 'mark mph interview --on 2026-11-20'.",
    )
    sp.add_argument("target", nargs="?", metavar="R|P", help="a recommender's or program's id")
    sp.add_argument(
        "what", nargs="?", metavar="WHAT",
        help="asked, agreed, declined, planned or submitted; for a program, its outcome",
    )  # fmt: skip
    sp.add_argument("letters", nargs="*", metavar="LETTER", help="with submitted: letter keys")
    sp.add_argument("--all", action="store_true", help="with submitted: every letter not yet in")
    sp.add_argument(
        "--on", metavar="DATE", help="the day it happened (default: today in your zone)"
    )
    sp.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    sp.add_argument(
        "--inbox",
        action="store_true",
        help="record the letters portal mails confirmed (read by inbox scan or the daemon)",
    )

    sp = sub.add_parser("retry", help="plan a failed message again (same key and Message-ID)")
    sp.add_argument("key", metavar="KEY", help="a failed message's key from 'lormail log'")
    now_opt(sp)

    sp = sub.add_parser("state", help="the state folder: 'reset' starts a new send log")
    sp.add_argument("action", choices=["reset"])

    sp = sub.add_parser("inbox", help="read replies, auto-replies, bounces and portal mails")
    inbox = sp.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser)
    sp = inbox.add_parser("classify", help="classify message files (.eml), offline")
    sp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp = inbox.add_parser("scan", help="read what is new in the mailbox and record it")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    now_opt(sp)
    return p


def _global_options(p: argparse.ArgumentParser, after_command: bool = False) -> None:
    # After the command, an option left out must not overwrite one given before it.
    p.add_argument(
        "--config",
        metavar="PATH",
        type=Path,
        default=argparse.SUPPRESS if after_command else None,
        help="config file (default: $LORMAIL_CONFIG, else ~/.config/lormail/config.yaml)",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if after_command else False,
        help="show tracebacks",
    )


def _share_global_options(parser: argparse.ArgumentParser) -> None:
    """``lormail plan --config X`` as well as ``lormail --config X plan``, at every depth."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _global_options(sub, after_command=True)
                _share_global_options(sub)


def run() -> NoReturn:
    """The console entry point (and ``python -m lormail``)."""
    sys.exit(main())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    debug: bool = args.debug
    try:
        from lormail.app.context import App, default_config_path, parse_instant

        now_text = getattr(args, "now", None)
        app = App(
            config_path=(args.config or default_config_path()).expanduser(),
            now_override=parse_instant(now_text) if now_text else None,
            debug=debug,
        )
        module_name, func_name = COMMANDS[args.command].split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        code: int = func(app, args)
        return code
    except LormailError as err:
        if debug:
            raise
        for problem in err.problems:
            print(str(problem), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `lormail plan | head`: not an error worth a word.  Python flushes
        # stdout once more on the way out; into nothing, so that stays quiet.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # the last line of defence: one line, no traceback
        if debug:
            raise
        print(
            f"lormail: internal error: {type(err).__name__}: {err} (run with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
