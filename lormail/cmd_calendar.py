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
import contextlib
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from lormail import files
from lormail.app import App
from lormail.calendar import Built, CalendarCache, build_calendar
from lormail.errors import EXIT_OK, EXIT_RUNTIME, LormailError, Problem
from lormail.feed import feed_url, load_or_create_token, rotate_token
from lormail.model import CalendarConfig, Plan, Roster
from lormail.store import Store


@contextlib.contextmanager
def publishing(
    roster: Roster,
    plan: Plan,
    config: CalendarConfig,
    state_dir: Path,
    now: datetime,
    cache: CalendarCache | None = None,
) -> Iterator[Built]:
    """Build the calendar and give it to the caller; then store the changed stamps.

    The stamps are stored only after the caller has published the bytes: if
    that fails, the next build still sees those events as changed and stamps
    them again.  ``cache`` is an earlier build's (see :func:`build_calendar`).
    """
    with Store.open(state_dir) as store:
        built = build_calendar(roster, plan, store.event_stamps(), config, now, cache)
        yield built
        store.save_event_stamps(built.changed)


def publish(
    roster: Roster,
    plan: Plan,
    config: CalendarConfig,
    state_dir: Path,
    now: datetime,
    output: Path | None = None,
) -> bytes:
    """Build the calendar, write it to ``output`` (if any), then store the changed stamps."""
    with publishing(roster, plan, config, state_dir, now) as built:
        if output is not None:
            write_atomic(output, built.data)
    return built.data


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` all at once (new files 0600); one clear error."""
    path = path.expanduser()
    try:
        files.write_atomic(path, data)
    except OSError as err:
        raise _cannot_write(path, err) from None


def _cannot_write(path: Path, err: OSError) -> LormailError:
    return LormailError(
        [Problem(f"{path}: cannot write the calendar: {err.strerror or err}")],
        exit_code=EXIT_RUNTIME,
    )


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
