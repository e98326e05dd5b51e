"""The ``ics`` and ``feed-url`` commands, and the atomic file write they need.

``lormail ics [-o FILE] [--now TS]`` plans, builds the calendar against the
stored event stamps, writes it (stdout without ``-o``; otherwise a temp file
in the same folder, fsync, rename) and then stores the stamps that changed,
so the next build keeps SEQUENCE and DTSTAMP of unchanged events.

``lormail feed-url [--rotate]`` prints the subscription URL, making the token
at first use.  :func:`publish` and :func:`write_atomic` are what the daemon
reuses on every re-plan.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lormail.app.context import App
from lormail.app.publish import publish
from lormail.edge.feed import feed_url, load_or_create_token, rotate_token
from lormail.errors import EXIT_OK, EXIT_RUNTIME, LormailError, Problem


def cmd_ics(app: App, args: argparse.Namespace) -> int:
    output: Path | None = args.output
    now = app.now()
    roster = app.roster()
    plan = app.plan(now)
    data = publish(roster, plan, app.config().calendar, app.state_dir(), now, output)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return EXIT_OK


def cmd_feed_url(app: App, args: argparse.Namespace) -> int:
    feed = app.config().calendar.feed
    state_dir = app.state_dir()
    try:
        token = rotate_token(state_dir) if args.rotate else load_or_create_token(state_dir)
    except OSError as err:
        raise LormailError(
            [Problem(f"{state_dir}: cannot keep the feed token: {err.strerror or err}")],
            exit_code=EXIT_RUNTIME,
        ) from None
    print(feed_url(feed.bind, feed.port, token))
    if args.rotate:
        print(
            "the old URL no longer works; a running 'lormail run' serves the new one "
            "once reloaded (SIGHUP)",
            file=sys.stderr,
        )
    if not feed.enabled:
        print("note: the feed is off (calendar.feed.enabled: false in the config)", file=sys.stderr)
    return EXIT_OK
