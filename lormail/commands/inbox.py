"""``lormail inbox classify FILE.eml…`` and ``lormail inbox scan`` (SPEC §8): parse, call, print.

Both print ``{"events": [...]}`` with ``--json``, else one line per event.
A mailbox that cannot be read is a runtime failure (exit 1).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lormail.commands.output import print_json
from lormail.core.inbox import event_json
from lormail.errors import EXIT_OK

if TYPE_CHECKING:
    from lormail.app.context import App
    from lormail.model import InboxEvent


def cmd_inbox(app: App, args: argparse.Namespace) -> int:
    from lormail.app import inbox

    if args.action == "classify":
        events = inbox.classify_files(app, args.files)
    else:
        events = inbox.scan(app, app.now())
    if args.json:
        print_json({"events": [event_json(e) for e in events]})
    else:
        for e in events:
            print(_line(e))
        if not events and args.action == "scan":
            print("nothing new")
    return EXIT_OK


def _line(e: InboxEvent) -> str:
    where = e.file or (f"{e.folder}/{e.uid}" if e.folder else "")
    day = e.at.strftime("%Y-%m-%d %H:%MZ") if e.at else "-"
    who = e.recommender or "-"
    return f"{where}  {day}  {e.kind:<10} {who:<12} {e.detail}"
