"""``lormail preview KEY``: the full message as it would be sent."""

from __future__ import annotations

import argparse
import difflib
import sys

from lormail.app.context import App
from lormail.core.instants import utc_text
from lormail.errors import EXIT_OK, EXIT_USAGE, LormailError, Problem


def cmd_preview(app: App, args: argparse.Namespace) -> int:
    roster = app.roster()
    plan = app.plan()
    by_key = {m.key: m for m in plan.messages}
    msg = by_key.get(args.key)
    if msg is None:
        close = difflib.get_close_matches(args.key, list(by_key), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else " (see 'lormail plan --all')"
        raise LormailError([Problem(f"no message with key '{args.key}'{hint}")], EXIT_USAGE)
    rendered = app.templates().render(msg, roster)
    try:
        from lormail.app.preview import preview_text
    except ImportError:
        text = f"To: {msg.to}\nSubject: {rendered.subject}\n\n{rendered.body}"
    else:
        text = preview_text(app, msg, rendered)
    sys.stdout.write(f"# {msg.key} — {msg.status} at {utc_text(msg.send_at)}: {msg.reason}\n")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK
