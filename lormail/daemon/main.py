"""``lormail run``: the daemon — wiring only (SPEC §7).

Owns *when* things run, never *what* is sent: the planner decides, the send
log (``send_due``) guarantees each key goes once, and this module only wakes
the process at the right moments and keeps the last good inputs in force.

- **One worker.**  An APScheduler ``BackgroundScheduler`` whose only executor
  runs jobs inline on the scheduler's own thread, so every check, send and
  re-plan is serial: two wake-ups can never race.  One job (``wake``), whose
  trigger asks the last plan, fires at the next instant the plan can change
  (the next send, retry or deadline); an ``interval`` job (``tick``) looks
  every 60 s whether the wall clock has reached it — after a suspend,
  monotonic waits lag but the tick sees the jump within a minute.  ``misfire_grace_time=None`` and
  ``coalesce=True``: a missed run is run once, late, never dropped.
- **A cheap idle tick.**  A tick that finds nothing due does nothing else
  (not even the heartbeat, which checks write); planning 10,000 letters every
  minute would cost more CPU than a laptop daemon may spend idle.
  ``send_due`` runs when the plan says something is due, a retry or
  deadline comes, a first-seen fact is new, the inputs change, at start,
  and at least hourly.
- **Reloads.**  The watcher thread (and ``SIGHUP``) asks for a check that
  reads the files first; a good set replaces the old one whole, a bad one is
  logged one problem per line and changes nothing.
- **Checks in a worker.**  Each check runs in a worker process of the check
  server (:mod:`lormail.daemon.checker`), forked before any thread started: the
  heap a large roster's check needs goes back to the system when it ends.
  The daemon keeps the config, the plan's next instants and the feed's
  bytes; the server keeps the last good inputs.
- **Signals.**  TERM/INT/HUP are blocked in every thread and taken by the
  main thread with ``sigwait``: no handler runs at a random point of another
  thread's work.  TERM/INT ask ``send_due`` to stop after the message in
  flight; the process then exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from apscheduler.triggers.base import BaseTrigger

from lormail.app.context import App, utc_now
from lormail.core.instants import utc_text
from lormail.daemon.checker import (
    BUSY_RETRY,
    FULL_CHECK_EVERY,
    CheckServerHandle,
    ServerGone,
    preload,
)
from lormail.edge.health import Health, write_health
from lormail.errors import EXIT_OK, EXIT_RUNTIME, LormailError, Problem
from lormail.model import Config, FeedConfig

if TYPE_CHECKING:
    from lormail.edge.feed import FeedServer
    from lormail.edge.watch import Interest, Watcher

log = logging.getLogger("lormail.daemon")

TICK_SECONDS = 60  # the longest a fallen-due message waits after a suspend
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _problem_lines(err: LormailError) -> list[str]:
    return [str(p) for p in err.problems]


@dataclass
class _Planned:
    """When the last check planned, when to look again, and the next send."""

    now: datetime
    wake: datetime  # the next instant the plan can change
    next_send: datetime | None


class Daemon:
    """The running daemon; :func:`cmd_run` builds one, starts it and waits for a signal.

    It schedules, watches the files, serves the feed and writes the
    heartbeat; every check runs in a worker of the check server
    (:mod:`lormail.daemon.checker`), whose results are applied here as they come.
    """

    def __init__(self, config_path: Path, server: CheckServerHandle) -> None:
        self.config_path = config_path
        self.server = server
        self.config: Config | None = None  # of the last good inputs
        self.state_dir: Path | None = None  # from the config at start; fixed while up
        self.started_at = utc_now()
        self.stopping = threading.Event()
        self.exit_code = EXIT_OK
        self._flags = threading.Lock()
        self._reload_wanted = False  # guarded by _flags
        self._pending: str | None = None  # why another thread asked for a check (_flags)
        self._reason = "start"  # what asked for the check in progress, for the log
        self._health_lock = threading.Lock()
        self._planned: _Planned | None = None
        self._last_error: str | None = None
        self._started = False  # the first wake-up (send_due at start) has run
        self.feed: FeedServer | None = None
        self.feed_config: FeedConfig | None = None
        self.watcher: Watcher | None = None
        from apscheduler.executors.debug import DebugExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        # DebugExecutor runs each job on the scheduler's thread: that thread is
        # the one worker, and an idle tick wakes one thread, not two.
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": DebugExecutor()},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        """Feed, first plan and calendar, the template check; then scheduler and watcher.

        The first plan comes before the render check of every template for
        every recommender (the slowest part of loading), so the calendar is
        up sooner; nothing is sent before the check passes.  Bad files raise
        :class:`LormailError`: exit 2.
        """
        from apscheduler.triggers.interval import IntervalTrigger

        # The config alone first (a small file): the feed listens before the first plan.
        app = App(config_path=self.config_path)
        self.state_dir = app.state_dir()
        self._start_feed(app.config().calendar.feed)
        self._run_check("start", reload=True, first=True)
        self.scheduler.add_job(
            self._tick, IntervalTrigger(seconds=TICK_SECONDS, timezone=UTC), id="tick"
        )
        # One job for every wake-up; its trigger asks the last plan when next.
        # The first runs at once: it sends what is due (and recovers).
        self.scheduler.add_job(
            self._wake, _WakeTrigger(self), id="wake", next_run_time=datetime.now(UTC)
        )
        self.scheduler.start()
        self._start_watcher()

    def request_reload(self, why: str) -> None:
        """From any thread: read the files again before the next check, which runs now."""
        if self.stopping.is_set():
            return
        with self._flags:
            self._reload_wanted = True
            self._pending = why
        with contextlib.suppress(LookupError):
            self.scheduler.modify_job("wake", next_run_time=datetime.now(UTC))

    def shutdown(self) -> None:
        """Finish the message in flight, stop everything, leave a 'not running' heartbeat."""
        self.stopping.set()
        self.server.stop_check()
        if self.watcher is not None:
            self.watcher.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # waits for a check in progress
        self.server.close()
        if self.feed is not None:
            self.feed.set_health("stopping", self._last_check(), None)
            self.feed.stop()
        if self.config is not None:  # else it never started: the error says it all
            self._write_health(running=False)
            log.info("stopped")

    # -- the worker's jobs (all on the scheduler thread) ---------------------------

    def _wake(self) -> None:
        """The wake job: a check; another at once if a reload was asked for meanwhile."""
        while not self.stopping.is_set():
            with self._flags:
                reload, self._reload_wanted = self._reload_wanted, False
                why, self._pending = self._pending, None
            self._reason = why or "reload"
            if not self._started:
                why = "start"
            elif reload:
                why = "reload"
            elif why is None:
                planned = self._planned
                if planned is not None and datetime.now(UTC) + timedelta(seconds=1) < planned.wake:
                    return  # a wake-up asked for by a reload that has already run
                why = "scheduled"
            self._run_check(why, reload)
            self._started = True
            with self._flags:
                if not self._reload_wanted:
                    return

    def next_wake(self, now: datetime) -> datetime:
        planned = self._planned
        return planned.wake if planned is not None else now + FULL_CHECK_EVERY

    def _tick(self) -> None:
        """Every minute: a check if the wall clock reached the next wake-up, else nothing.

        The heartbeat is written by checks, not by ticks: writing it each
        minute would double the idle wake-ups (the write blocks), and the
        process's liveness is what ``status`` checks anyway.
        """
        planned = self._planned
        now = datetime.now(UTC)
        if planned is None or now >= planned.wake or now - planned.now >= FULL_CHECK_EVERY:
            self._run_check("tick", reload=False)

    def _run_check(self, why: str, reload: bool, first: bool = False) -> None:
        """A check in the check server; what it sends back is applied here as it comes."""
        if self.stopping.is_set():
            return
        refused: list[LormailError] = []
        try:
            self.server.check(why, reload, first, self._last_error)
            for frame in self.server.frames():
                kind = frame[0]
                if kind == "calendar":
                    if self.feed is not None:
                        self.feed.update(frame[1])
                elif kind == "planned":
                    self._adopt_plan(*frame[1:])
                elif kind == "config":
                    _, config, changed, recommenders, programs = frame
                    self._adopt_config(config, changed, recommenders, programs, first)
                elif kind == "rejected":
                    if first:
                        refused.append(LormailError(frame[1]))
                    else:
                        self._rejected(frame[1], self._reason)
                elif kind == "unchanged":
                    log.debug("%s: nothing changed", self._reason)
                    self._refresh_token()
                elif kind == "failed":
                    if first:
                        refused.append(LormailError([frame[1]], exit_code=EXIT_RUNTIME))
                    else:
                        self._failed(frame[1])
                elif kind == "again":
                    with self._flags:
                        self._reload_wanted = True
        except ServerGone as err:
            if first:
                raise LormailError([str(err)], exit_code=EXIT_RUNTIME) from None
            log.error("%s: stopping", err)
            self.exit_code = EXIT_RUNTIME
            os.kill(os.getpid(), signal.SIGTERM)  # the main thread shuts down
            return
        if refused:
            raise refused[0]

    # -- applying what a check sends ----------------------------------------------------

    def _adopt_config(
        self, config: Config, changed: list[str], recommenders: int, programs: int, first: bool
    ) -> None:
        """Inputs were accepted: follow their config (feed, watched files)."""
        old, self.config = self.config, config
        if first or old is None:
            mode = "dry run" if config.dry_run else config.transport
            log.info("lormail run: %s, state in %s (%s)", config.roster.name, self.state_dir, mode)
            if self.feed_config != config.calendar.feed:  # the config was saved meanwhile
                self._restart_feed()
            return
        self._last_error = None
        log.info(
            "reloaded %s (%s): %d recommenders, %d programs",
            ", ".join(changed),
            self._reason,
            recommenders,
            programs,
        )
        if self.watcher is not None and (config.roster, config.templates) != (
            old.roster,
            old.templates,
        ):
            self.watcher.set_interest(self._interest())
        if config.calendar.feed != old.calendar.feed:
            self._restart_feed()
        elif self.feed is not None:
            self._refresh_token()

    def _rejected(self, problems: tuple[Problem, ...], why: str) -> None:
        lines = [str(p) for p in problems]
        for line in lines:
            log.error("rejected edit: %s", line)
        log.warning("rejected edit (%s): keeping the last good roster, config and templates", why)
        self._last_error = f"rejected edit: {lines[0]}" if lines else "rejected edit"
        self._write_health(running=True)

    def _adopt_plan(
        self, now: datetime, wake: datetime, next_at: datetime | None, error: str | None
    ) -> None:
        self._planned = _Planned(now, wake, next_at)
        self._last_error = error
        self._schedule(wake)
        self._write_health(running=True, now=now)

    def _failed(self, text: str) -> None:
        log.error("check failed: %s", text)
        self._last_error = text
        if self._planned is not None:
            self._planned.wake = min(self._planned.wake, utc_now() + BUSY_RETRY)
            self._schedule(self._planned.wake)
        self._write_health(running=True)

    def _schedule(self, wake: datetime) -> None:
        # On the worker thread; inside the wake job the trigger sets the same time.
        with contextlib.suppress(LookupError):
            self.scheduler.modify_job("wake", next_run_time=wake)

    # -- feed, watcher, health ---------------------------------------------------

    def _start_feed(self, feed: FeedConfig) -> None:
        from lormail.edge.feed import FeedServer, load_or_create_token

        self.feed_config = feed
        if not feed.enabled:
            self.feed = None
            return
        token = load_or_create_token(self._state())
        try:
            server = FeedServer(feed.bind, feed.port, token)
        except OSError as err:
            raise LormailError(
                [Problem(f"calendar.feed: cannot listen on {feed.bind}:{feed.port}: {err}")],
                exit_code=EXIT_RUNTIME,
            ) from None
        server.start()
        self.feed = server

    def _restart_feed(self) -> None:
        if self.feed is not None:
            self.feed.stop()
            self.feed = None
        assert self.config is not None
        try:
            self._start_feed(self.config.calendar.feed)
        except LormailError as err:
            self._last_error = " ".join(_problem_lines(err))
            log.error("%s", self._last_error)

    def _refresh_token(self) -> None:
        """Pick up a token rotated by ``lormail feed-url --rotate``."""
        from lormail.edge.feed import read_token

        if self.feed is None or self.state_dir is None:
            return
        token = read_token(self.state_dir)
        if token is not None:
            self.feed.set_token(token)

    def _interest(self) -> Interest:
        from lormail.edge.watch import Interest

        assert self.config is not None
        config = self.config
        folders = [config.templates] if config.templates is not None else []
        return Interest([self.config_path, config.roster], folders)

    def _start_watcher(self) -> None:
        from lormail.edge.watch import Watcher

        self.watcher = Watcher(self._interest(), lambda: self.request_reload("file changed"))
        self.watcher.start()

    def _state(self) -> Path:
        assert self.state_dir is not None, "known from the first good config"
        return self.state_dir

    def _last_check(self) -> datetime | None:
        return self._planned.now if self._planned is not None else None

    def _write_health(self, running: bool, now: datetime | None = None) -> None:
        if self.state_dir is None:
            return
        planned = self._planned
        next_at = planned.next_send if planned is not None and running else None
        checked = now or self._last_check()
        with self._health_lock, contextlib.suppress(OSError):
            write_health(
                self.state_dir,
                Health(
                    running=running,
                    pid=os.getpid(),
                    started_at=utc_text(self.started_at),
                    last_check=utc_text(checked),
                    next_send=utc_text(next_at),
                    last_error=self._last_error,
                ),
            )
        if self.feed is not None and running:
            status = "ok" if self._last_error is None else f"error: {self._last_error}"
            self.feed.set_health(status, checked, next_at)


class _WakeTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires when the daemon's last plan says to look again (never in a tight loop)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        return max(self.daemon.next_wake(now), now + timedelta(seconds=1))

    def __str__(self) -> str:
        return "the plan's next instant"


# --- the command -------------------------------------------------------------------


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


def _fixed_mmap_threshold() -> None:
    """Keep glibc serving large blocks (a calendar's bytes) from their own mappings.

    By default the threshold rises to the size of the last mapped block freed,
    after which blocks of that size come from the heap, where what is freed
    below a live block is never given back: each new calendar would leave
    the last one's memory behind.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        m_mmap_threshold = -3
        ctypes.CDLL("libc.so.6").mallopt(m_mmap_threshold, 128 * 1024)


def cmd_run(app: App, args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; exit 2 at once if the files are bad at start."""
    configure_logging(app.debug)
    _fixed_mmap_threshold()
    preload()
    # The check server is forked first, while this process has one thread.
    server = CheckServerHandle.spawn(app.config_path)
    # Block the signals before any thread starts, so all threads inherit the
    # mask and only the sigwait below ever sees them.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    daemon = Daemon(app.config_path, server)
    try:
        daemon.start()  # LormailError (bad files) → exit 2 in cli.py
        while True:
            signum = signal.sigwait(SIGNALS)
            if signum == signal.SIGHUP:
                log.info("SIGHUP: reloading")
                daemon.request_reload("SIGHUP")
                continue
            if daemon.exit_code == EXIT_OK:
                log.info(
                    "%s: finishing the message in flight, then stopping",
                    signal.Signals(signum).name,
                )
            break
    finally:
        daemon.shutdown()
        # A second SIGTERM or Ctrl-C during the shutdown is already answered:
        # take it, or unblocking it would kill the process at the last moment.
        while set(SIGNALS) & signal.sigpending():
            signal.sigwait(SIGNALS)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return daemon.exit_code
