"""``lormail run``: one process, its main thread waiting for signals (SPEC §7).

TERM/INT/HUP are blocked in every thread and taken by the main thread with
``sigtimedwait``, so no handler runs at a random point of another thread's
work.  Its timeout is the tick (:meth:`Daemon.tick`, 60 s), measured on the
monotonic clock whatever the wall clock does.  HUP asks for a check (which
reads the files); TERM/INT finish the message in flight and exit 0.

Two environment variables shorten the waits, for tests: ``LORMAIL_TICK``
(seconds, default 60; a shorter one also shortens the retry after a check that
left something due and the grace a stopping check gets) and
``LORMAIL_CHECK_LIMIT`` (a check's time limit in seconds, default 60).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import ClassVar

from lormail.app.context import App
from lormail.daemon.service import Daemon
from lormail.errors import EXIT_OK, LormailError, Problem

log = logging.getLogger("lormail.daemon")

TICK_SECONDS = 60.0  # the longest a fallen-due message waits after the wall clock jumps
CHECK_LIMIT = 60.0  # seconds a check may take
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _Formatter(logging.Formatter):
    """Journald's ``<N>`` priority prefix instead of a timestamp under systemd."""

    PRIORITY: ClassVar[dict[int, int]] = {
        logging.DEBUG: 7,
        logging.INFO: 6,
        logging.WARNING: 4,
        logging.ERROR: 3,
    }

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"<{self.PRIORITY.get(record.levelno, 2)}>{text}"


def _under_journald() -> bool:
    """Is stderr the journal stream systemd set up (not just an inherited variable)?"""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def configure_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if _under_journald():
        handler.setFormatter(_Formatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("lormail")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False
    # APScheduler logs every job it adds and runs at INFO: noise, not decisions.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("apscheduler").addHandler(handler)


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise LormailError([Problem(f"{name}: {text!r} is not a number of seconds (0-3600]")])
    return value


def cmd_run(app: App, args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; exit 2 at once if the files are bad at start."""
    configure_logging(app.debug)
    from lormail.edge.statedir import ensure_log_intact

    ensure_log_intact(app.state_dir())  # a lost send log: exit 1 before anything goes
    tick = _seconds("LORMAIL_TICK", TICK_SECONDS)
    limit = _seconds("LORMAIL_CHECK_LIMIT", CHECK_LIMIT)
    # Blocked before any thread starts, so all threads inherit the mask and
    # only the main thread's sigtimedwait ever sees them.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    daemon = Daemon(app.config_path, tick=tick, limit=limit)
    code = EXIT_OK
    try:
        daemon.start()  # LormailError (bad files) → exit 2 in cli.py
        while True:
            info = signal.sigtimedwait(SIGNALS, tick)
            if info is None:
                daemon.tick()
                continue
            if info.si_signo == signal.SIGHUP:
                log.info("SIGHUP: reloading")
                daemon.kick("SIGHUP")
                continue
            name = signal.Signals(info.si_signo).name
            log.info("%s: finishing the message in flight, then stopping", name)
            break
    finally:
        code = daemon.stop()
        if code != EXIT_OK:
            # A check stuck outside Python (a C call that never returns) would
            # keep the interpreter from exiting: leave without it.
            logging.shutdown()
            os._exit(code)
        # A second SIGTERM or Ctrl-C during the shutdown is already answered:
        # take it, or unblocking it would kill the process at the last moment.
        while set(SIGNALS) & signal.sigpending():
            signal.sigwait(SIGNALS)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return code
