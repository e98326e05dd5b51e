"""A check's time limit, and stopping a check that will not stop (SPEC §7).

A template with a loop that never ends (Jinja2's sandbox bounds ``range``,
not nested loops) would hold the daemon's one worker for ever: no send, no
re-plan, no clean exit.  A :class:`Guard` runs each check under a deadline:

1. at the deadline the check's ``stop`` event is set, so that a send batch
   ends after the message in flight;
2. if the check is still running a grace later, :class:`Interrupted` is
   raised inside the worker thread (``PyThreadState_SetAsyncExc``), which
   unwinds it at its next Python instruction, through every ``finally``.

SIGTERM takes the same two steps at once (:meth:`Guard.interrupt`).
:class:`Interrupted` is a ``BaseException`` so that no ``except Exception``
on the way (a send batch's, Jinja2's) can swallow it.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import traceback
from collections.abc import Iterator
from types import TracebackType

from lormail.errors import Problem


class Interrupted(BaseException):
    """Raised inside the worker thread to end a check that went on too long."""


class Guard:
    """The worker's check in progress: its stop event, deadline and thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ident: int | None = None  # the worker's thread while a check runs
        self.stop = threading.Event()  # this check's; a new one for each
        self.why: str | None = None  # why the check in progress was interrupted
        self._stopping = False  # ask_stop was called: every later check starts stopped

    @contextlib.contextmanager
    def running(self, limit: float, grace: float) -> Iterator[threading.Event]:
        """Run a check on this thread under ``limit`` seconds; yields its stop event.

        :class:`Interrupted` may come out of the block, or just after it: the
        caller catches it around the ``with``.
        """
        stop = threading.Event()
        with self._lock:
            self.stop, self.why, self._ident = stop, None, threading.get_ident()
            if self._stopping:
                stop.set()
        timer = threading.Timer(limit, self._expire, (stop, limit, grace))
        timer.daemon = True
        timer.start()
        try:
            yield stop
        finally:
            while True:
                try:
                    with self._lock:
                        self._ident = None  # from now on, nothing interrupts this thread
                    break
                except Interrupted:
                    pass  # asked for as the check ended: it is over anyway
            timer.cancel()

    def _expire(self, stop: threading.Event, limit: float, grace: float) -> None:
        """On a timer's thread: stop the batch, then interrupt if still running."""
        stop.set()
        if grace > 0:
            pause(grace)
        self.interrupt(f"the check did not finish within {limit:g} s", only=stop)

    def busy(self) -> bool:
        with self._lock:
            return self._ident is not None

    def ask_stop(self) -> None:
        """Ask the check in progress, and any later one, to stop after the message in flight."""
        with self._lock:
            self._stopping = True
            self.stop.set()

    def interrupt(self, why: str, only: threading.Event | None = None) -> bool:
        """Raise :class:`Interrupted` in the check in progress; False when none runs
        (or, with ``only``, when the check in progress is not the one of that event)."""
        with self._lock:
            if self._ident is None or (only is not None and only is not self.stop):
                return False
            self.why = why
            set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
            set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
            set_async_exc(self._ident, Interrupted)
            return True


def pause(seconds: float) -> None:
    """Sleep on a lock's timed wait: libfaketime refuses a plain sleep under a moved clock."""
    threading.Event().wait(seconds)


def where(tb: TracebackType | None) -> Problem | None:
    """The template and line a traceback was rendering, innermost first, as a problem."""
    found: Problem | None = None
    for frame, lineno in traceback.walk_tb(tb):
        template = frame.f_globals.get("__jinja_template__")
        if template is not None and getattr(template, "filename", None):
            line = template.get_corresponding_lineno(lineno)
            found = Problem("", template.filename, line, 1)
    return found
