"""The daemon's checks, each in a child of a single-threaded check server.

Reading a 10,000-letter roster, planning it and building its calendar
allocate several times what is kept, interleaved with what is kept; a
long-lived process that did that work itself would sit on the fragments for
ever.  So ``lormail run`` forks, before it starts any thread, a *check
server*: a copy of itself that keeps the last good inputs and, for each
check the daemon asks for, forks a *worker*.  The worker inherits the inputs
(copy-on-write), reads edited files, plans, sends what is due and builds the
calendar with the cyclic collector off, sends its results as it goes, and
exits: its whole heap goes back to the system with it.  A crash in a check
cannot take the daemon down either.

Forking only from the check server, which never starts a thread, keeps every
fork clean: no lock of another thread (the interpreter's, the C library's,
or one of a library preloaded into the process) can be held in the child.

The daemon (:mod:`lormail.daemon.main`) keeps the feed, the schedule and the
heartbeat; the server keeps the inputs, the plan's summary (for the log of
what changed) and the digest of the calendar last published.  Messages on
the pipes are frames: an 8-byte length and a pickle, between processes of
this one program only.

Frames a worker sends, and who takes them:

- ``("config", Config, changed, recommenders, programs)`` → daemon: inputs
  were accepted (``changed`` names the files);
- ``("calendar", bytes)`` → daemon, for the feed (the file is written by
  the worker);
- ``("planned", now, wake, next_send, last_error)`` → daemon;
- ``("rejected", problems)``, ``("unchanged",)``, ``("failed", text)`` → daemon;
- ``("state", summary, published)`` and ``("inputs", _Loaded)`` → server.

A check leaves a *memo* for the next (:class:`_Memo`): each recommender's
part of its plan, with the instant until which it holds, and the calendar's
events grouped by program and recommender.  The next check plans and builds
again only what an edit or the passing time changed (see
:func:`lormail.core.plan.plan_parts` and :func:`lormail.core.calendar.build_calendar`,
whose results are the same with or without it).  It is a file in the state
folder (about 12 MB for a 10,000-letter roster), not a part of any process
that stays.

The server adds ``("again",)`` (read the files again) and ends every check
with ``("end",)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gc
import hashlib
import io
import logging
import os
import pickle
import secrets
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lormail.app.context import utc_now
from lormail.app.inputs import Inputs, load_inputs
from lormail.core.instants import utc_text
from lormail.errors import LormailError
from lormail.model import DUE, SCHEDULED, Config, Plan, Program, Recommender, Roster

if TYPE_CHECKING:
    from lormail.app.send import SendReport
    from lormail.core.calendar import CalendarCache
    from lormail.core.plan import Parts

log = logging.getLogger("lormail.daemon")

MEMO_NAME = "check-memo"  # in the state folder (see _Memo)
FULL_CHECK_EVERY = timedelta(hours=1)  # send_due runs at least this often
BUSY_RETRY = timedelta(seconds=60)  # another sender held the lock, or a check failed
MAX_PLAN_LINES = 50  # per re-plan; the rest is summed up in one line
_HEADER = 8
# A worker puts one byte before each frame: for the server, or for the daemon.
_MINE, _THEIRS = 1, 2
_MINE_BYTE, _THEIRS_BYTE = bytes([_MINE]), bytes([_THEIRS])


# --- frames --------------------------------------------------------------------------


def _pack(frame: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_HEADER, "little") + data


def write_frame(fd: int, *frame: Any) -> None:
    _write_all(fd, _pack(frame))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_frame(fd: int) -> tuple[Any, ...] | None:
    """The next frame, or ``None`` at the end of the pipe."""
    raw = _read_raw(fd)
    if raw is None:
        return None
    frame: tuple[Any, ...] = pickle.loads(memoryview(raw)[_HEADER:])
    return frame


def _read_raw(fd: int) -> bytes | None:
    """The next frame whole, header included; ``None`` at the end (or a cut-off frame)."""
    try:
        header = _read_exactly(fd, _HEADER)
        return header + _read_exactly(fd, int.from_bytes(header, "little"))
    except EOFError:
        return None


def _read_routed(fd: int) -> tuple[int, bytes] | None:
    """A worker's next frame and whom it is for (see :meth:`_Worker.emit`)."""
    try:
        to = _read_exactly(fd, 1)[0]
    except EOFError:
        return None
    raw = _read_raw(fd)
    return None if raw is None else (to, raw)


def _pipe() -> tuple[int, int]:
    """A pipe that holds a megabyte where the system allows: a calendar's few
    megabytes then pass in a few writes, not a hundred 64 KB turns."""
    read_fd, write_fd = os.pipe()
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    return read_fd, write_fd


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# --- the daemon's end ----------------------------------------------------------------


class ServerGone(Exception):
    """The check server ended: the daemon cannot check any more."""


@dataclass
class CheckServerHandle:
    """The daemon's side of the check server: ask for a check, read what comes back."""

    pid: int
    requests: int  # fd the daemon writes to
    replies: int  # fd the daemon reads from

    @classmethod
    def spawn(cls, config_path: Path) -> CheckServerHandle:
        """Fork the server.  Call before the process starts any thread."""
        to_server, from_daemon = os.pipe()[::-1]
        from_server, to_daemon = _pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the server (measured through the daemon's tests)
            os.close(to_server)
            os.close(from_server)
            code = 0
            try:
                CheckServer(config_path).serve(from_daemon, to_daemon)
            except BaseException:  # a broken server; the daemon sees it end
                traceback.print_exc(file=sys.stderr)
                sys.stderr.flush()
                code = 70
            os._exit(code)
        os.close(from_daemon)
        os.close(to_daemon)
        return cls(pid, to_server, from_server)

    def check(self, why: str, reload: bool, first: bool, last_error: str | None) -> None:
        """Ask for a check; then read what it sends with :meth:`frames`."""
        try:
            write_frame(self.requests, why, reload, first, last_error)
        except OSError as err:
            raise ServerGone("the check server is gone") from err

    def frames(self) -> Iterator[tuple[Any, ...]]:
        """Each frame of the check in progress, up to its end."""
        while True:
            frame = read_frame(self.replies)
            if frame is None:
                raise ServerGone("the check server is gone")
            if frame[0] == "end":
                return
            yield frame

    def stop_check(self) -> None:
        """Ask the check in progress to stop after the message in flight."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def close(self) -> None:
        """Let the server finish and leave; wait for it."""
        with contextlib.suppress(OSError):
            os.close(self.requests)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        with contextlib.suppress(OSError):
            os.close(self.replies)


# --- the server ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    """Newly accepted inputs, as a worker sends them (templates are compiled by the server)."""

    config: Config
    roster: Roster
    config_digest: str
    roster_digest: str
    templates_digest: str


class CheckServer:
    """Single-threaded: keeps the last good inputs and forks a worker per check."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.inputs: Inputs | None = None
        self.summary: bytes | None = None  # pickled {key: (status, send_at)} of the last plan
        self.published: bytes | None = None  # digest of the plan last published
        # Memos are read only by the run that wrote them (its code, its roster).
        self.run = secrets.token_hex(8)
        self.worker: int | None = None
        self.stopping = False

    def serve(self, requests: int, replies: int) -> None:
        # Signals: TERM/INT stop the check in progress after its message in
        # flight, then the server leaves when the daemon closes its pipe.
        # HUP is the daemon's.
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT))
        while True:
            request = read_frame(requests)
            if request is None:
                return
            why, reload, first, last_error = request
            self._one(replies, why, reload, first, last_error)
            write_frame(replies, "end")

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        if self.worker is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.worker, signal.SIGTERM)

    def _one(
        self, replies: int, why: str, reload: bool, first: bool, last_error: str | None
    ) -> None:
        # Frames come through here whole (a worker killed while writing one
        # leaves half a frame, which goes no further); the daemon's are passed
        # on as they are, without unpickling.
        read_fd, write_fd = _pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the worker
            os.close(read_fd)
            os.close(replies)
            _work(self, write_fd, why, reload, first, last_error)
        os.close(write_fd)
        self.worker = pid
        if self.stopping:
            self._on_stop(signal.SIGTERM, None)
        crashed: str | None = None
        again = False
        try:
            while (routed := _read_routed(read_fd)) is not None:
                to, raw = routed
                if to != _MINE:
                    _write_all(replies, raw)
                    continue
                frame = pickle.loads(memoryview(raw)[_HEADER:])
                kind = frame[0]
                if kind == "state":
                    self.summary, self.published = frame[1], frame[2]
                elif kind == "inputs":
                    again = not self._adopt(frame[1])
                elif kind == "crashed":
                    crashed = frame[1]
        finally:
            os.close(read_fd)
            _, status = os.waitpid(pid, 0)
            self.worker = None
        if again:
            write_frame(replies, "again")
        code = os.waitstatus_to_exitcode(status)
        if crashed is not None or code != 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            write_frame(replies, "failed", crashed or f"the check's worker {how}")

    def _adopt(self, loaded: _Loaded) -> bool:
        """Keep inputs a worker accepted; compile their templates here if they changed.

        False when the templates changed on disk since the worker read them
        (the last good set stays; the daemon reads the files again).
        """
        from lormail.app.inputs import templates_digest_of
        from lormail.core.render import Templates

        old = self.inputs
        if old is not None and loaded.templates_digest == old.templates_digest:
            templates = old.templates
        else:
            folder = loaded.config.templates
            try:
                templates = Templates(folder).load_all()
                again = templates_digest_of(folder)
            except LormailError:
                again = None
            if again != loaded.templates_digest:
                log.info("templates changed while loading; reading them again")
                if old is not None:
                    return False
        self.inputs = Inputs(
            loaded.config,
            loaded.roster,
            templates,
            loaded.config_digest,
            loaded.roster_digest,
            loaded.templates_digest,
        )
        # Long-lived and without cycles: keep the collector from rescanning
        # them (workers run without one).
        gc.collect()
        gc.freeze()
        return True


# --- a worker ----------------------------------------------------------------------------


def _work(
    server: CheckServer,
    fd: int,
    why: str,
    reload: bool,
    first: bool,
    last_error: str | None,
) -> None:  # pragma: no cover - runs in the worker
    gc.disable()  # one check, then the whole heap goes at once
    code = 0
    try:
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        if server.stopping:
            stop.set()
        _Worker(server, fd, stop, last_error).run(why, reload, first)
    except BaseException as err:  # reported to the daemon, which carries on
        code = 70
        if logging.getLogger("lormail").isEnabledFor(logging.DEBUG):
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
        with contextlib.suppress(BaseException):
            _write_all(fd, _MINE_BYTE + _pack(("crashed", f"{type(err).__name__}: {err}")))
    os._exit(code)


class _Worker:
    """One check: reload if asked, plan, send what is due, publish; report each step."""

    def __init__(
        self,
        server: CheckServer,
        fd: int,
        stop: threading.Event,
        last_error: str | None,
    ) -> None:
        self.server = server
        self.fd = fd
        self.stop = stop
        self.last_error = last_error
        self.summary = server.summary
        self.published = server.published
        self.accepted: _Loaded | None = None
        self.memo: _Memo | None = None

    def emit(self, *frame: Any) -> None:
        """A frame for the daemon, or (``state``, ``inputs``) for the server."""
        mine = frame[0] in ("state", "inputs")
        _write_all(self.fd, (_MINE_BYTE if mine else _THEIRS_BYTE) + _pack(frame))

    def run(self, why: str, reload: bool, first: bool) -> None:
        self.memo = loaded = _Memo.load(self.server.run, self.server.inputs)
        try:
            self._run(why, reload, first)
        finally:
            if self.memo is not None and self.memo is not loaded:  # a check that planned
                self.memo.save()

    def _run(self, why: str, reload: bool, first: bool) -> None:
        from lormail.app.inputs import checked

        inputs = self.server.inputs
        if reload:
            try:
                fresh = load_inputs(self.server.config_path, inputs, check=not first)
            except LormailError as err:
                self.emit("rejected", err.problems)
                return
            if fresh is None:
                self.emit("unchanged")
                if why == "reload":
                    return
            else:
                inputs = self._accept(inputs, fresh)
        assert inputs is not None
        if first:
            # Plan and publish at once; nothing is sent before every template renders.
            summary, _, plan = self._plan(inputs, None)
            self._commit(inputs, summary, plan)
            del plan
            try:
                checked(inputs)
            except LormailError as err:
                self.emit("rejected", err.problems)
            return
        try:
            summary, due, plan = self._plan(inputs, None)
            must_send = why == "start" or due or bool(plan.observed)
            if must_send and why in ("start", "reload"):
                self._commit(inputs, summary, plan)
            if must_send:
                report = self._send(inputs)
                summary, _, plan = self._plan(inputs, report)
            self._commit(inputs, summary, plan)
        except LormailError as err:
            self._send_accepted()
            self.emit("failed", " ".join(str(p) for p in err.problems))
        except Exception as err:  # the daemon carries on; the next tick tries again
            if logging.getLogger("lormail").isEnabledFor(logging.DEBUG):
                log.exception("check failed")
            self._send_accepted()
            self.emit("failed", f"{type(err).__name__}: {err}")

    def _accept(self, old: Inputs | None, fresh: Inputs) -> Inputs:
        state_dir = fresh.app().state_dir()
        if old is not None:
            pinned = old.config.state_dir
            if fresh.config_digest != old.config_digest and state_dir != pinned:
                log.warning("state_dir changed in the config: restart 'lormail run' to use it")
            assert pinned is not None
            state_dir = pinned
        fresh = fresh.pinned(state_dir)
        changed = [
            name
            for name, a, b in (
                (fresh.config.path.name, old and old.config_digest, fresh.config_digest),
                (fresh.config.roster.name, old and old.roster_digest, fresh.roster_digest),
                ("templates", old and old.templates_digest, fresh.templates_digest),
            )
            if a != b
        ]
        roster = fresh.roster
        self.emit("config", fresh.config, changed, len(roster.recommenders), len(roster.programs))
        # The roster goes to the server with the plan, after the calendar:
        # pickling it is not on the way from an edit to the feed.
        self.accepted = _Loaded(
            fresh.config,
            fresh.roster,
            fresh.config_digest,
            fresh.roster_digest,
            fresh.templates_digest,
        )
        return fresh

    def _send_accepted(self) -> None:
        if self.accepted is not None:
            self.emit("inputs", self.accepted)
            self.accepted = None

    def _send(self, inputs: Inputs) -> SendReport:
        from lormail.app.send import send_due

        report = send_due(inputs.app(), stop=self.stop)
        if report.busy:
            log.info("another lormail is sending; looking again in a minute")
        if report.errors:
            self.last_error = report.errors[0]
        elif report.sent or report.failed or report.skipped:
            self.last_error = None
        return report

    def _plan(self, inputs: Inputs, report: SendReport | None) -> tuple[_Summary, bool, Plan]:
        """The plan as of now, when to look again, and whether anything is due now."""
        from lormail.app.send import pick
        from lormail.core.plan import plan_parts
        from lormail.edge.store import read_snapshot

        assert inputs.config.state_dir is not None
        now = utc_now()
        snapshot = read_snapshot(inputs.config.state_dir)
        earlier = self.memo.parts if self.memo is not None else None
        new, parts = plan_parts(inputs.roster, snapshot, now, earlier)
        calendar = self.memo.calendar if self.memo is not None else None
        self.memo = _Memo(self.server.run, inputs.digest, inputs.config.state_dir, parts, calendar)
        due = bool(pick(new.messages, inputs.config.dry_run))
        times = [now + FULL_CHECK_EVERY]
        times += [m.send_at for m in new.messages if m.status == SCHEDULED and m.send_at > now]
        # When a deadline passes, the next letter's reminders start.
        times += [p.deadline for p in inputs.roster.programs if p.deadline > now]
        retry = report.next_retry if report is not None else None
        if retry is not None:
            times.append(retry if retry > now else now + BUSY_RETRY)
        if due or (report is not None and report.busy):
            # Still due after sending: held back, stopped, or another sender had the lock.
            times.append(now + BUSY_RETRY)
        # Never sooner than a second: a wake-up that finds nothing must not spin.
        wake = max(min(times), now + timedelta(seconds=1))
        return _Summary(now, wake, next_send(new), _digest(inputs, new)), due, new

    def _commit(self, inputs: Inputs, summary: _Summary, plan: Plan) -> None:
        """Publish if the plan changed (the feed first), log what changed, report."""
        try:
            if summary.digest != self.published:  # before the rest: an edit waits for it
                self._publish(inputs, plan, summary.now)
                self.published = summary.digest
        finally:
            old = pickle.loads(self.summary) if self.summary is not None else None
            _log_changes(old, plan)
            self.summary = pickle.dumps(
                {m.key: (m.status, m.send_at) for m in plan.messages}, pickle.HIGHEST_PROTOCOL
            )
            self.emit("planned", summary.now, summary.wake, summary.next_send, self.last_error)
            self._send_accepted()
            self.emit("state", self.summary, self.published)

    def _publish(self, inputs: Inputs, plan: Plan, now: datetime) -> None:
        """The calendar to the feed (through the daemon), then to its file."""
        from lormail.app.publish import publishing, write_atomic

        calendar = inputs.config.calendar
        if not calendar.feed.enabled and calendar.file is None:
            return
        assert inputs.config.state_dir is not None
        cache = self.memo.calendar if self.memo is not None else None
        state_dir = inputs.config.state_dir
        with publishing(inputs.roster, plan, calendar, state_dir, now, cache) as built:
            if calendar.feed.enabled:  # the feed first: it is what an edit waits for
                self.emit("calendar", built.data)
            if calendar.file is not None:
                write_atomic(calendar.file, built.data)
        if self.memo is not None:
            self.memo = dataclasses.replace(self.memo, calendar=built.cache)
        log.debug("calendar published (%d bytes)", len(built.data))


@dataclass(frozen=True)
class _Memo:
    """What a check leaves for the next: its plan's parts and its calendar's groups.

    Pickled with the roster's entries and programs by id, for the server's
    copy of the roster to stand in for them: the next check finds them
    identical, not merely equal, to its own when the roster is unchanged.
    """

    run: str  # the CheckServer.run that made it
    inputs: str  # the digest of the inputs they were made from
    state_dir: Path
    parts: Parts
    calendar: CalendarCache | None

    def save(self) -> None:
        """Write it to the state folder (no fsync: a memo lost is only time lost)."""
        path = self.state_dir / MEMO_NAME
        out = io.BytesIO()
        out.write(_memo_head(self.run, self.inputs))
        _MemoPickler(out, self.parts.roster).dump((self.parts, self.calendar))
        tmp = path.with_name(path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(out.getbuffer())
            os.replace(tmp, path)
        except OSError as err:
            log.debug("could not keep the check's memo: %s", err)

    @classmethod
    def load(cls, run: str, inputs: Inputs | None) -> _Memo | None:
        """The memo in the state folder, if this ``run`` made it from ``inputs``."""
        if inputs is None or inputs.config.state_dir is None:
            return None
        path = inputs.config.state_dir / MEMO_NAME
        head = _memo_head(run, inputs.digest)
        # A pickle, read from the user's own state folder (0700): whatever can
        # write there can already do all that lormail can.
        try:
            data = path.read_bytes()
            if not data.startswith(head):
                return None
            raw = io.BytesIO(memoryview(data)[len(head) :])
            parts, calendar = _MemoUnpickler(raw, inputs.roster).load()
        except FileNotFoundError:
            return None
        except Exception as err:  # a memo is only a shortcut: without it, all is made again
            log.debug("the check's memo is unusable: %s: %s", type(err).__name__, err)
            return None
        return cls(run, inputs.digest, inputs.config.state_dir, parts, calendar)


def _memo_head(run: str, inputs: str) -> bytes:
    return f"lormail check memo {run} {inputs}\n".encode()


class _MemoPickler(pickle.Pickler):
    """Pickles the roster's own entries and programs as references by id."""

    def __init__(self, file: io.BytesIO, roster: Roster) -> None:
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self.roster = roster
        # Consulted for these types only: other objects pay nothing.
        self.dispatch_table = {
            Recommender: self._recommender,
            Program: self._program,
            Roster: self._roster,
        }

    def _recommender(self, rec: Recommender) -> Any:
        if self.roster.recommenders_by_id.get(rec.id) is rec:
            return _roster_entry, (rec.id,)
        return rec.__reduce_ex__(pickle.HIGHEST_PROTOCOL)

    def _program(self, program: Program) -> Any:
        if self.roster.programs_by_id.get(program.id) is program:
            return _roster_program, (program.id,)
        return program.__reduce_ex__(pickle.HIGHEST_PROTOCOL)

    def _roster(self, roster: Roster) -> Any:
        if roster is self.roster:
            return _the_roster, ()
        return roster.__reduce_ex__(pickle.HIGHEST_PROTOCOL)


class _MemoUnpickler(pickle.Unpickler):
    """Reads what :class:`_MemoPickler` wrote, with ``roster`` for the references."""

    def __init__(self, file: io.BytesIO, roster: Roster) -> None:
        super().__init__(file)
        self.roster = roster

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__:
            if name == _roster_entry.__name__:
                return self.roster.recommenders_by_id.__getitem__
            if name == _roster_program.__name__:
                return self.roster.programs_by_id.__getitem__
            if name == _the_roster.__name__:
                return lambda: self.roster
        return super().find_class(module, name)


def _roster_entry(ident: str) -> Recommender:
    raise LookupError("a memo's reference, resolved by its unpickler")


def _roster_program(ident: str) -> Program:
    raise LookupError("a memo's reference, resolved by its unpickler")


def _the_roster() -> Roster:
    raise LookupError("a memo's reference, resolved by its unpickler")


@dataclass(frozen=True)
class _Summary:
    now: datetime
    wake: datetime  # the next instant the plan can change
    next_send: datetime | None
    digest: bytes  # of the inputs and every message's key, status and time


def next_send(plan: Plan) -> datetime | None:
    """The send_at of the next message the plan still has to send."""
    times = [m.send_at for m in plan.messages if m.status in (SCHEDULED, DUE)]
    return min(times) if times else None


def _digest(inputs: Inputs, plan: Plan) -> bytes:
    h = hashlib.sha256(inputs.digest.encode())
    for m in plan.messages:
        h.update(f"{m.key}\0{m.status}\0{m.send_at.timestamp()}\n".encode())
    return h.digest()


def _log_changes(old: dict[str, tuple[str, datetime]] | None, new: Plan) -> None:
    """One line per message that is newly planned, moved, cancelled or skipped."""
    upcoming = [m for m in new.messages if m.status in (SCHEDULED, DUE)]
    if old is None:
        head = upcoming[0] if upcoming else None
        log.info(
            "planned %d message(s)%s",
            len(upcoming),
            f"; next {head.key} at {utc_text(head.send_at)}" if head else "",
        )
        return
    upcoming_before = {k for k, (status, _) in old.items() if status in (SCHEDULED, DUE)}
    lines: list[str] = []
    now_keys = set()
    for m in new.messages:
        now_keys.add(m.key)
        was = old.get(m.key)
        if m.status in (SCHEDULED, DUE):
            if was is None or was[1] != m.send_at or m.key not in upcoming_before:
                lines.append(f"planned {m.key} at {utc_text(m.send_at)}: {m.reason}")
        elif m.key in upcoming_before and m.status != "sent":
            lines.append(f"{m.status} {m.key}: {m.reason}")
    for key in sorted(upcoming_before - now_keys):
        lines.append(f"cancelled {key}: no longer in the plan")
    for line in lines[:MAX_PLAN_LINES]:
        log.info("%s", line)
    if len(lines) > MAX_PLAN_LINES:
        log.info("... and %d more plan change(s)", len(lines) - MAX_PLAN_LINES)


def preload() -> None:
    """Import what every worker uses, once, before the server is forked."""
