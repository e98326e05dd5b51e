"""The commands ``send-due``, ``log``, ``retry`` and ``state reset`` (SPEC §6): parse,
call, print.

The work is in :mod:`lormail.app.send` and :mod:`lormail.edge.store`; this module only
wires signals and logging for a one-shot run and turns results into lines
and exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from lormail.commands.output import print_json
from lormail.core.instants import utc_text
from lormail.errors import EXIT_OK, EXIT_RUNTIME, LormailError, Problem

if TYPE_CHECKING:
    from lormail.app.context import App
    from lormail.app.send import SendReport
    from lormail.edge.logrows import LogRow


def ensure_logging() -> None:
    """One line per decision on stderr, unless someone (the daemon) configured logging."""
    logger = logging.getLogger("lormail")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("lormail: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop``: the message in flight finishes, then the run ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def summary(report: SendReport) -> str:
    if report.busy:
        return "another lormail is sending right now; nothing done"
    parts = []
    if len(report.sent) > len(report.local) or not report.local:
        parts.append(f"sent {len(report.sent) - len(report.local)}")
    if report.local:
        parts.append(
            f"delivered locally {len(report.local)} (into the Maildir: nobody receives these)"
        )
    if report.dry_run or report.dry_runs:
        parts.append(f"dry-run {len(report.dry_runs)} (nothing sent)")
    if report.retrying:
        parts.append(f"waiting to retry {len(report.retrying)}")
    if report.deferred:
        parts.append(f"held by max_per_hour {len(report.deferred)}")
    if report.failed:
        parts.append(f"failed {len(report.failed)}")
    if report.skipped:
        parts.append(f"skipped {len(report.skipped)}")
    if report.recovered:
        parts.append(f"recovered from an interrupted run {len(report.recovered)}")
    text = ", ".join(parts)
    if report.next_retry is not None:
        text += f"; next try at {utc_text(report.next_retry)}"
    if report.stopped:
        text += "; stopped early, the rest goes on the next run"
    return text


def cmd_send_due(app: App, args: argparse.Namespace) -> int:
    from lormail.app.send import send_due

    ensure_logging()
    stop = threading.Event()
    with stop_on_signals(stop):
        report = send_due(app, now=app.now_override, dry_run=bool(args.dry_run), stop=stop)
    print(summary(report))
    return report.exit_code


# --- log -------------------------------------------------------------------------


def _entry(row: LogRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "kind": row.kind,
        "recommender": row.recommender,
        "state": row.state,
        "to": row.to,
        "subject": row.subject,
        "message_id": row.message_id,
        "attempts": row.attempts,
        "sent_at": utc_text(row.sent_at),
        "updated_at": utc_text(row.updated_at),
        "retry_at": utc_text(row.retry_at),
        "error": row.error,
        "reply": row.reply,
    }


_STATE_STYLE = {
    "sent": "green",
    "local": "blue",
    "failed": "bold red",
    "queued": "yellow",
    "sending": "yellow",
    "skipped": "dim",
    "dry-run": "cyan",
}


def cmd_log(app: App, args: argparse.Namespace) -> int:
    from lormail.edge.statedir import DB_NAME
    from lormail.edge.store import Store

    state_dir = app.state_dir()
    rows: list[LogRow] = []
    if (state_dir / DB_NAME).exists():
        with Store.open(state_dir) as store:
            rows = store.log_rows()
    if args.json:
        print_json({"entries": [_entry(r) for r in rows]})
        return EXIT_OK
    if not rows:
        print("nothing sent, queued or dry-run yet")
        return EXIT_OK
    from rich.table import Table
    from rich.text import Text

    from lormail.commands.output import console

    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("when (UTC)", "state", "key", "to", "subject", "tries", "note"):
        table.add_column(column, overflow="fold")
    for row in rows:
        note = row.error or ""
        if row.retry_at is not None:
            note = f"retry at {utc_text(row.retry_at)}: {note}"
        elif row.state in ("sent", "local"):
            note = row.reply or ""
            if row.error:
                note += f" ({row.error})"
        when = utc_text(row.sent_at or row.updated_at) or ""
        table.add_row(
            when.replace("T", " ").rstrip("Z"),
            Text(row.state, style=_STATE_STYLE.get(row.state, "")),
            row.key,
            row.to or "",
            row.subject or "",
            str(row.attempts),
            note,
        )
    console().print(table)
    return EXIT_OK


# --- retry and state reset ------------------------------------------------------------


def cmd_retry(app: App, args: argparse.Namespace) -> int:
    """Plan a failed message again: the planner schedules it like any message waiting."""
    from lormail.edge.statedir import DB_NAME
    from lormail.edge.store import Store

    key: str = args.key
    state_dir = app.state_dir()
    if not (state_dir / DB_NAME).exists():
        raise LormailError([Problem(f"retry: no message {key!r} in the log (see 'lormail log')")])
    with Store.open(state_dir) as store:
        row = store.retry(key, app.now())
    print(f"{key} to {row.to} is planned again, with its Message-ID {row.message_id}")
    return EXIT_OK


def cmd_state(app: App, args: argparse.Namespace) -> int:
    """``state reset``: a new, empty send log, the old one kept aside; Message-IDs stay."""
    from lormail.app.send import sender_lock
    from lormail.edge.store import Store

    state_dir = app.state_dir()
    with sender_lock(state_dir) as mine:
        if not mine:
            raise LormailError(
                [Problem("another lormail is sending; stop it before resetting the state")],
                EXIT_RUNTIME,
            )
        kept = Store.reset(state_dir, app.now())
    where = f"; the old one is kept as {kept}" if kept is not None else ""
    print(f"started a new send log in {state_dir}{where}")
    return EXIT_OK
