"""Watching the roster, config and template files for the daemon (SPEC §7).

Owns one thing: calling ``on_change()`` on a thread of its own shortly after
one of the files of interest may have changed.  What changed, and whether it
matters, is the caller's business (it compares contents).

Editors save by writing a temporary file and renaming it over the old one, so
the *folders* are watched, and events are filtered to the names of interest:
the files themselves, and anything inside the templates folder.

Two backends:

- Linux: inotify through ``ctypes``.  The thread sleeps in ``select()`` with
  no timeout until an event (or :meth:`Watcher.stop`) arrives, so an idle
  daemon does not wake at all.  watchfiles cannot do that: its loop sleeps
  ``step`` milliseconds between checks (20 wake-ups a second by default).
- elsewhere (macOS): watchfiles ``watch()`` with ``rust_timeout=0`` (no
  timeout) and a ``step`` of :data:`POLL_STEP_MS`; it wakes twice a second.

A complete write (a rename into place, or a file closed after writing) is
acted on after :data:`SETTLE` of quiet; a write still in progress after
``debounce`` of quiet.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import selectors
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("lormail.watch")

SETTLE = 0.05  # seconds of quiet after a complete write
POLL_STEP_MS = 500  # watchfiles backend: how often its loop looks for changes

_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_ONLYDIR
)
# Events after which the file is whole: act soon.
_COMPLETE = _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_MOVED_FROM | _IN_DELETE
_EVENT = struct.Struct("iIII")


def _norm(path: Path) -> str:
    return os.path.abspath(os.path.expanduser(path))


class Interest:
    """Which paths matter: some files, and everything inside some folders."""

    def __init__(self, files: Iterable[Path], folders: Iterable[Path] = ()) -> None:
        self.files: set[str] = set()
        self.folders: set[str] = set()
        for f in files:
            # A symlinked file (dotfile managers) is edited where it points.
            self.files.update({_norm(f), os.path.realpath(f)})
        for d in folders:
            self.folders.update({_norm(d), os.path.realpath(d)})

    def watched_dirs(self) -> list[str]:
        """The folders to watch: each file's, each folder and its parent (it may be replaced)."""
        dirs = {os.path.dirname(f) for f in self.files}
        dirs |= self.folders | {os.path.dirname(d) for d in self.folders}
        return sorted(dirs)

    def __call__(self, path: str) -> bool:
        return path in self.files or path in self.folders or os.path.dirname(path) in self.folders


class Watcher:
    """Calls ``on_change()`` on its own daemon thread when files of interest change.

    >>> w = Watcher(Interest([roster, config], [templates]), reload)
    >>> w.start(); ...; w.stop()
    """

    def __init__(
        self,
        interest: Interest,
        on_change: Callable[[], None],
        debounce: float = 0.2,
        backend: str | None = None,
    ) -> None:
        self.interest = interest
        self.on_change = on_change
        self.debounce = debounce
        if backend is None:
            backend = "inotify" if sys.platform.startswith("linux") else "watchfiles"
        self.backend = backend
        self._stop = threading.Event()
        self._restart = threading.Event()  # watchfiles: watch other folders
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._inotify: _Inotify | None = None
        if backend == "inotify":
            try:
                self._inotify = _Inotify()
            except OSError as err:
                log.warning("inotify unavailable (%s); watching with watchfiles", err)
                self.backend = "watchfiles"

    def start(self) -> None:
        target = self._run_inotify if self._inotify is not None else self._run_watchfiles
        self._thread = threading.Thread(target=target, name="lormail-watch", daemon=True)
        self._thread.start()

    def set_interest(self, interest: Interest) -> None:
        """Follow other files from now on (the config moved the roster or templates)."""
        self.interest = interest
        if self._inotify is not None:
            self._inotify.watch(interest.watched_dirs())
        else:
            self._restart.set()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- backends --------------------------------------------------------------

    def _fire(self) -> None:
        try:
            self.on_change()
        except Exception as err:  # a reload must never kill the watcher
            log.error("reload failed: %s: %s", type(err).__name__, err)

    def _run_inotify(self) -> None:
        ino = self._inotify
        assert ino is not None
        ino.watch(self.interest.watched_dirs())
        sel = selectors.DefaultSelector()
        sel.register(ino.fd, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        deadline: float | None = None
        try:
            while not self._stop.is_set():
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = sel.select(timeout)
                if self._stop.is_set():
                    return
                if any(key.fd == ino.fd for key, _ in ready):
                    wait = None
                    for path, mask in ino.read():
                        if mask & _IN_Q_OVERFLOW or self.interest(path):
                            settle = SETTLE if mask & _COMPLETE else self.debounce
                            wait = settle if wait is None else max(wait, settle)
                    if wait is not None:
                        candidate = time.monotonic() + wait
                        deadline = candidate if deadline is None else max(deadline, candidate)
                if deadline is not None and time.monotonic() >= deadline:
                    deadline = None
                    # A replaced templates folder is a new inode: watch it again.
                    ino.watch(self.interest.watched_dirs())
                    self._fire()
        finally:
            sel.close()

    def _run_watchfiles(self) -> None:
        import watchfiles

        def wanted(_change: object, path: str) -> bool:
            return self.interest(_norm(Path(path)))

        stop_or_restart = _Either(self._stop, self._restart)
        while not self._stop.is_set():
            self._restart.clear()
            dirs = [d for d in self.interest.watched_dirs() if os.path.isdir(d)]
            for _changes in watchfiles.watch(
                *dirs,
                watch_filter=wanted,
                debounce=max(1, int(self.debounce * 1000) * 5),
                step=POLL_STEP_MS,
                stop_event=stop_or_restart,
                rust_timeout=0,  # 0: no timeout; stop_event is checked every step
                recursive=False,
                raise_interrupt=False,
            ):
                if self._stop.is_set():
                    return
                self._fire()


class _Either:
    """Set when either event is (watchfiles asks only for ``is_set()``)."""

    def __init__(self, a: threading.Event, b: threading.Event) -> None:
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return self.a.is_set() or self.b.is_set()


class _Inotify:
    """The few inotify calls needed, through libc."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c") or "libc.so.6"
        self._libc = ctypes.CDLL(name, use_errno=True)
        fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd
        self._dirs: dict[int, str] = {}
        self._missing: set[str] = set()
        self._lock = threading.Lock()  # watch() may come from a reload thread

    def watch(self, dirs: Iterable[str]) -> None:
        """Add (or refresh) a watch per folder; a missing folder is skipped quietly."""
        with self._lock:
            for d in dirs:
                self._add(d)

    def _add(self, d: str) -> None:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(d), _MASK)
        if wd < 0:
            if d not in self._missing:
                self._missing.add(d)
                err = ctypes.get_errno()
                log.debug("not watching %s: %s", d, os.strerror(err))
            return
        self._missing.discard(d)
        self._dirs[wd] = d

    def read(self) -> list[tuple[str, int]]:
        """The pending events as (path, mask); the path is the folder's for its own events."""
        out: list[tuple[str, int]] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                raw = data[offset : offset + length].rstrip(b"\0")
                offset += length
                with self._lock:
                    folder = self._dirs.get(wd)
                    if mask & _IN_IGNORED:
                        self._dirs.pop(wd, None)
                if folder is None:
                    if mask & _IN_Q_OVERFLOW:
                        out.append(("", mask))
                    continue
                out.append((os.path.join(folder, os.fsdecode(raw)) if raw else folder, mask))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
