"""The running daemon: when checks run, and the threads around them (SPEC §7).

Owns *when*, never *what*: a check (:mod:`lormail.daemon.check`) decides and
sends; this module runs checks one at a time and at the right moments.

- **One worker.**  An APScheduler ``BackgroundScheduler`` with a one-thread
  pool: every check runs there, in order.  A date job waits at each instant
  the plan can change within the hour (each planned send, a retry, a
  deadline), and one at the hour; ``misfire_grace_time=None`` and
  ``coalesce=True``, so a run missed while the laptop slept is run late,
  never dropped.  Jobs that come due together cost one check: a job finds a
  later check already done and returns.
- **The tick.**  APScheduler computes its waits on the wall clock but sleeps
  on the monotonic one: after the wall clock steps back, or a suspend, it
  sleeps too long.  The main thread wakes every tick (60 s) on the monotonic
  clock and asks for a check when the wall clock has reached the earliest
  job, so nothing that falls due waits more than a tick.
- **Kicks.**  The file watcher and SIGHUP ask for a check at once; a check
  reads the files first, so one check answers any number of kicks.
- **The time limit** (:mod:`lormail.daemon.limit`): checking new files, and
  sending with publishing, each have one; a check cut short is reported,
  and what was good before stays in force.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from lormail.app.context import App, utc_now
from lormail.core.instants import utc_text
from lormail.daemon.check import Checker, Outcome
from lormail.daemon.inbox import DaemonInbox
from lormail.daemon.limit import Guard, Interrupted, pause, where
from lormail.edge.health import Health, write_health
from lormail.errors import EXIT_RUNTIME, LormailError, Problem

if TYPE_CHECKING:
    from lormail.app.inputs import Inputs
    from lormail.edge.feed import FeedServer
    from lormail.edge.watch import Interest, Watcher
    from lormail.model import FeedConfig

log = logging.getLogger("lormail.daemon")

STOP_GRACE = 5.0  # seconds a stopping check may take before it is interrupted
_AT = "at "  # the id prefix of the date jobs


class Daemon:
    """Built by :func:`lormail.daemon.main.cmd_run`: :meth:`start`, :meth:`tick`, :meth:`stop`."""

    def __init__(self, config_path: Path, tick: float, limit: float) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self.config_path = config_path
        self.tick_seconds = tick
        self.limit = limit
        # A shorter tick (tests) shortens this wait too.
        self.stop_grace = min(STOP_GRACE, tick)
        self.started_at = utc_now()
        self.stopping = threading.Event()
        self.guard = Guard()
        self.checker: Checker | None = None
        self.feed: FeedServer | None = None
        self.feed_config: FeedConfig | None = None
        self.watcher: Watcher | None = None
        self.inbox = DaemonInbox(self._app, self.kick, lambda: self._write_health(running=True))
        self._lock = threading.Lock()
        self._health_lock = threading.Lock()
        self._kicked: str | None = None  # why a kick is waiting to run (under _lock)
        self._next_at: datetime | None = None  # the earliest job; the tick checks it
        self._outcome: Outcome | None = None
        self._error: str | None = None
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    # -- life cycle (main thread) --------------------------------------------------------

    def start(self) -> None:
        """Feed, the first inputs (bad ones raise LormailError: exit 2), scheduler, watcher."""
        app = App(config_path=self.config_path)
        state_dir = app.state_dir()
        retry = timedelta(seconds=min(60.0, self.tick_seconds))
        self.checker = Checker(
            self.config_path,
            state_dir,
            retry,
            on_inputs=self._follow,
            before_send=self._before_send,
        )
        self._start_feed(app.config().calendar.feed)
        try:
            with self.guard.running(self.limit, 0.0):
                self.checker.load("start")
        except Interrupted as err:
            raise LormailError([self._cut_short(err)]) from None
        self.scheduler.start()
        self.kick("start")
        self._start_watcher()
        self.inbox.follow(self.checker.inputs.config.imap if self.checker.inputs else None)

    def tick(self) -> None:
        """Every tick: a check if the wall clock reached the earliest job (see above)."""
        next_at = self._next_at
        if next_at is not None and datetime.now(UTC) >= next_at:
            self.kick("tick")

    def kick(self, why: str) -> None:
        """From any thread: a check as soon as the worker is free."""
        if self.stopping.is_set():
            return
        with self._lock:
            waiting, self._kicked = self._kicked is not None, why
        if not waiting:
            self.scheduler.add_job(self._on_kick)

    def stop(self) -> int:
        """Finish the message in flight, stop everything, leave a 'not running' heartbeat.

        Returns 0, or 1 when a check would not stop (the caller then exits at once).
        """
        self.stopping.set()
        self.guard.ask_stop()
        if self.watcher is not None:
            self.watcher.stop()
        self.inbox.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        code = 0 if self._wait_idle(self.stop_grace) else EXIT_RUNTIME
        if code and self.guard.interrupt("stopping"):
            code = 0 if self._wait_idle(2.0) else EXIT_RUNTIME
        if code:
            log.error("a check would not stop; exiting without it")
        if self.feed is not None:
            self.feed.set_health("stopping", self._last_check(), None)
            self.feed.stop()
        if self.checker is not None and self.checker.inputs is not None:
            self._write_health(running=False)
            log.info("stopped")
        return code

    def _wait_idle(self, seconds: float) -> bool:
        end = time.monotonic() + seconds
        while self.guard.busy():
            if time.monotonic() > end:
                return False
            pause(0.05)
        return True

    # -- the worker's jobs ------------------------------------------------------------

    def _on_kick(self) -> None:
        with self._lock:
            why, self._kicked = self._kicked, None
        self._check(why or "kick")

    def _on_time(self, at: datetime) -> None:
        done = self._outcome
        if done is not None and done.now >= at:
            return  # a check since then has seen everything due by `at`
        self._check("scheduled")

    def _check(self, why: str) -> None:
        """Bring the inputs up to date, then send and publish: each under the time limit."""
        checker = self.checker
        if self.stopping.is_set() or checker is None:
            return
        try:
            try:
                # No send batch to wind down here: cut short at the limit itself.
                with self.guard.running(self.limit, 0.0):
                    checker.load(why)
            except Interrupted as err:
                if self.stopping.is_set():
                    return
                checker.cut_short(LormailError([self._cut_short(err)]), why)
            if self.stopping.is_set():
                return
            with self.guard.running(self.limit, self.stop_grace) as stop:
                outcome = checker.run(stop)
            # In the try: an interruption asked for as the check ended lands here.
            self._adopt(outcome)
        except Interrupted:
            if not self.stopping.is_set():
                self._failed(self.guard.why or "interrupted")
        except LormailError as err:
            self._failed(" ".join(str(p) for p in err.problems))
        except Exception as err:  # the daemon carries on; the next check tries again
            log.debug("check failed", exc_info=True)
            self._failed(f"{type(err).__name__}: {err}")

    def _cut_short(self, err: Interrupted) -> Problem:
        """Where checking the files was when its time ran out, as a problem."""
        found = where(err.__traceback__)
        if found is None:
            return Problem(f"checking the files did not finish within {self.limit:g} s")
        message = f"rendering did not finish within {self.limit:g} s (a loop that never ends?)"
        return Problem(message, found.file, found.line, found.col)

    def _adopt(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self._error = outcome.error
        if self.feed is not None and outcome.calendar is not None:
            self.feed.update(outcome.calendar)
        self._refresh_token()
        self._schedule(outcome.wake_times)
        self._write_health(running=True)

    def _failed(self, text: str) -> None:
        log.error("check failed: %s", text)
        self._error = text
        retry = self.checker.retry if self.checker is not None else timedelta(minutes=1)
        self._schedule((utc_now() + retry,))
        self._write_health(running=True)

    def _schedule(self, times: tuple[datetime, ...]) -> None:
        """A date job at each instant; jobs for instants no longer planned go."""
        from apscheduler.triggers.date import DateTrigger

        wanted = {f"{_AT}{utc_text(t)}": t for t in times}
        for job in self.scheduler.get_jobs():
            if job.id in wanted:
                del wanted[job.id]  # already waiting
            elif job.id.startswith(_AT):
                with contextlib.suppress(LookupError):
                    job.remove()
        for ident, at in wanted.items():
            self.scheduler.add_job(
                self._on_time, DateTrigger(at, timezone=UTC), args=(at,), id=ident
            )
        self._next_at = min(times) if times else None

    # -- feed, watcher, health ---------------------------------------------------------

    def _follow(self, new: Inputs, old: Inputs | None) -> None:
        """New inputs: follow their config (feed, watched files)."""
        config = new.config
        if old is None:
            mode = "dry run" if config.dry_run else config.transport
            state = config.state_dir
            log.info("lormail run: %s, state in %s (%s)", config.roster.name, state, mode)
        if config.calendar.feed != self.feed_config:
            self._restart_feed(config.calendar.feed)
        moved = old is not None and (config.roster, config.templates) != (
            old.config.roster,
            old.config.templates,
        )
        if self.watcher is not None and moved:
            self.watcher.set_interest(self._interest())
        if old is not None and config.imap != old.config.imap:
            self.inbox.follow(config.imap)

    def _app(self) -> App:
        """The inputs in force, for the inbox."""
        assert self.checker is not None and self.checker.inputs is not None
        return self.checker.inputs.app()

    def _before_send(self) -> None:
        """On the worker, before a check sends: the inbox's quick scan, when something
        may be due (the last check planned a send by now, or there was none yet)."""
        outcome = self._outcome
        if outcome is None or (outcome.next_send is not None and outcome.next_send <= utc_now()):
            self.inbox.quick_scan()

    def _start_feed(self, feed: FeedConfig) -> None:
        from lormail.edge.feed import FeedServer, load_or_create_token

        self.feed_config = feed
        if not feed.enabled:
            self.feed = None
            return
        assert self.checker is not None
        token = load_or_create_token(self.checker.state_dir)
        try:
            server = FeedServer(feed.bind, feed.port, token)
        except OSError as err:
            raise LormailError(
                [Problem(f"calendar.feed: cannot listen on {feed.bind}:{feed.port}: {err}")],
                exit_code=EXIT_RUNTIME,
            ) from None
        server.start()
        self.feed = server
        if self._outcome is not None and self._outcome.calendar is not None:
            server.update(self._outcome.calendar)

    def _restart_feed(self, feed: FeedConfig) -> None:
        if self.feed is not None:
            self.feed.stop()
            self.feed = None
        try:
            self._start_feed(feed)
        except LormailError as err:
            self._error = " ".join(str(p) for p in err.problems)
            log.error("%s", self._error)

    def _refresh_token(self) -> None:
        """Pick up a token rotated by ``lormail feed-url --rotate``."""
        from lormail.edge.feed import read_token

        if self.feed is None or self.checker is None:
            return
        token = read_token(self.checker.state_dir)
        if token is not None:
            self.feed.set_token(token)

    def _interest(self) -> Interest:
        from lormail.edge.watch import Interest

        assert self.checker is not None and self.checker.inputs is not None
        config = self.checker.inputs.config
        folders = [config.templates] if config.templates is not None else []
        return Interest([self.config_path, config.roster], folders)

    def _start_watcher(self) -> None:
        from lormail.edge.watch import Watcher

        self.watcher = Watcher(self._interest(), lambda: self.kick("file changed"))
        self.watcher.start()

    def _last_check(self) -> datetime | None:
        return self._outcome.now if self._outcome is not None else None

    def _write_health(self, running: bool) -> None:
        # The check and the inbox thread both write it: one at a time, each reading
        # the state inside the lock, so the last write is never an older state.
        with self._health_lock:
            self._write_health_locked(running)

    def _write_health_locked(self, running: bool) -> None:
        # Once stopping, a check or the inbox thread finishing late must not
        # overwrite the final 'not running' heartbeat.
        if self.checker is None or (running and self.stopping.is_set()):
            return
        outcome = self._outcome
        next_send = outcome.next_send if outcome is not None and running else None
        with contextlib.suppress(OSError):
            write_health(
                self.checker.state_dir,
                Health(
                    running=running,
                    pid=os.getpid(),
                    started_at=utc_text(self.started_at),
                    last_check=utc_text(self._last_check()),
                    next_send=utc_text(next_send),
                    last_error=self._error,
                    inbox=self.inbox.state(),
                ),
            )
        if self.feed is not None and running:
            inbox = self.inbox.state()
            status = "ok" if self._error is None else f"error: {self._error}"
            if self._error is None and inbox is not None and inbox.startswith("failing: "):
                status = f"inbox {inbox}"
            self.feed.set_health(status, self._last_check(), next_send)
