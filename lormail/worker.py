"""One job in a forked child, its results streamed back: the daemon's heap never holds a peak.

Reading a 10,000-letter roster, planning it and building its calendar
allocate several times what the daemon keeps, interleaved with what it
keeps; a long-lived process that did that work itself would sit on the
fragments for ever.  So the daemon forks for each check: the child inherits
every object (copy-on-write, nothing is copied up front), runs the job with
the cyclic collector off, sends each result as soon as it has it, and exits;
its whole heap goes back to the system with it.  A crash in the job cannot
take the daemon down either.

The child runs only lormail's own code.  It takes no lock that another
thread of the daemon could hold at the fork: its logging goes straight to
the file descriptor (see ``daemon._FdHandler``), its database connections
and locks are its own, and it leaves with ``os._exit`` (no atexit, no
flushing of buffers it shares with the parent).

A frame on the pipe is an 8-byte length and a pickle.  Pickles come only
from this child of this process, through a pipe nobody else holds.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from typing import Any

log = logging.getLogger("lormail.worker")

Emit = Callable[..., None]
_HEADER = 8
# The child's exit status when the job raised (the reason comes as a frame).
_CRASHED = 70


class WorkerDied(Exception):
    """The child ended without finishing its job (killed, or crashed)."""


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def child_signals(stop: threading.Event) -> None:
    """In the child: TERM and INT ask the job to stop after what is in flight.

    The child inherits the daemon's mask, in which the daemon's signals are
    blocked (the daemon's main thread takes them with ``sigwait``); one sent
    before this runs stays pending and arrives here.  HUP stays blocked: a
    reload is the daemon's business.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT))


def run_forked(
    job: Callable[[Emit], None],
    handle: Callable[[tuple[Any, ...]], None],
    started: Callable[[int | None], None] = lambda pid: None,
) -> None:
    """Run ``job(emit)`` in a child; call ``handle(frame)`` here for each ``emit(*frame)``.

    ``started`` is told the child's pid once it runs, and ``None`` once it has
    ended.  Raises :class:`WorkerDied` when the child did not finish its job,
    after handling every frame it did send.
    """
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about any fork in a process with threads; see the
        # module docstring for why this child is safe.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (measured through the daemon's tests)
        os.close(read_fd)
        _child(job, write_fd)
    os.close(write_fd)
    started(pid)
    try:
        crash = _pump(read_fd, handle)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        started(None)
    if crash is not None:
        code = os.waitstatus_to_exitcode(status)
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise WorkerDied(crash or f"the check's worker {how}")


def _pump(fd: int, handle: Callable[[tuple[Any, ...]], None]) -> str | None:
    """Handle frames until the end frame (``None``), or say why there was none."""
    while True:
        try:
            size = int.from_bytes(_read_exactly(fd, _HEADER), "little")
            frame = pickle.loads(_read_exactly(fd, size))
        except EOFError:
            return ""
        if frame[0] == "end":
            return None
        if frame[0] == "crashed":
            return str(frame[1])
        handle(frame)


def _child(job: Callable[[Emit], None], fd: int) -> None:  # pragma: no cover - see above
    gc.disable()  # the child lives for one job; it frees everything at once by leaving
    code = 0

    def emit(*frame: Any) -> None:
        data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(len(data).to_bytes(_HEADER, "little") + data)
        while view:
            view = view[os.write(fd, view) :]

    try:
        job(emit)
        emit("end")
    except BaseException as err:  # reported to the daemon, which carries on
        code = _CRASHED
        if logging.getLogger("lormail").isEnabledFor(logging.DEBUG):
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
        with contextlib.suppress(BaseException):  # else the parent sees the exit status
            emit("crashed", f"{type(err).__name__}: {err}")
    os._exit(code)
