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
- **A cheap idle tick.**  A tick that finds nothing due only rewrites the
  heartbeat; planning 10,000 letters every minute would cost more CPU than a
  laptop daemon may spend idle.  ``send_due`` runs when the plan says
  something is due, a retry or deadline comes, a first-seen fact is new,
  the inputs change, at start, and at least hourly.
- **Reloads.**  The watcher thread (and ``SIGHUP``) loads and validates the
  files; a good set replaces the old one whole, a bad one is logged one
  problem per line and changes nothing.  Then the worker re-plans.
- **Signals.**  TERM/INT/HUP are blocked in every thread and taken by the
  main thread with ``sigwait``: no handler runs at a random point of another
  thread's work.  TERM/INT ask ``send_due`` to stop after the message in
  flight; the process then exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
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

from lormail.app import App, utc_now
from lormail.errors import EXIT_OK, EXIT_RUNTIME, LormailError, Problem
from lormail.health import Health, write_health
from lormail.inputs import Inputs, load_inputs
from lormail.model import DUE, SCHEDULED, Plan
from lormail.output import utc_text

if TYPE_CHECKING:
    from lormail.feed import FeedServer
    from lormail.sending import SendReport
    from lormail.watch import Interest, Watcher

log = logging.getLogger("lormail.daemon")

TICK_SECONDS = 60  # the longest a fallen-due message waits after a suspend
FULL_CHECK_EVERY = timedelta(hours=1)  # send_due runs at least this often
BUSY_RETRY = timedelta(seconds=60)  # another sender held the lock, or a check failed
MAX_PLAN_LINES = 50  # per re-plan; the rest is summed up in one line
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _problem_lines(err: LormailError) -> list[str]:
    return [str(p) for p in err.problems]


@dataclass
class _Planned:
    """What the worker last planned (in brief), and when it must look again."""

    now: datetime
    summary: dict[str, tuple[str, datetime]]  # key -> (status, send_at)
    wake: datetime  # the next instant the plan can change
    next_send: datetime | None
    digest: bytes  # of the inputs and every message's key, status and time


class Daemon:
    """The running daemon; :func:`cmd_run` builds one, starts it and waits for a signal."""

    def __init__(self, config_path: Path, inputs: Inputs, state_dir: Path) -> None:
        self.config_path = config_path
        self.state_dir = state_dir
        self.inputs = inputs.pinned(state_dir)
        self.started_at = utc_now()
        self.stopping = threading.Event()
        self._reload_lock = threading.Lock()
        self._health_lock = threading.Lock()
        self._planned: _Planned | None = None
        self._published: bytes | None = None  # digest of the plan last published
        self._last_full = datetime.min.replace(tzinfo=UTC)
        self._last_error: str | None = None
        self._generation = 0  # bumped by every accepted reload
        self._pending: str | None = None  # why another thread asked for a check
        self._started = False  # the first wake-up (send_due at start) has run
        self._freeze_after_check = False  # a reload brought a new roster to freeze
        self.feed: FeedServer | None = None
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
        """Feed, first plan and calendar, the template check, then scheduler and watcher.

        The first plan comes before the render check of every template for
        every recommender (the slowest part of loading), so the calendar is
        up sooner; nothing is sent before the check passes.  A failed check
        raises :class:`LormailError`: exit 2, as for a broken roster.
        """
        from apscheduler.triggers.interval import IntervalTrigger

        from lormail.inputs import checked

        self._start_feed()
        self.scheduler.add_job(
            self._tick, IntervalTrigger(seconds=TICK_SECONDS, timezone=UTC), id="tick"
        )
        # One job for every wake-up; its trigger asks the last plan when next.
        self.scheduler.add_job(
            self._wake, _WakeTrigger(self), id="wake", next_run_time=datetime.now(UTC)
        )
        inputs = self.inputs
        planned, _, plan = self._plan(inputs, None)
        self._commit(inputs, planned, plan)
        del plan
        self.inputs = checked(inputs)
        # The first wake-up runs at once: it sends what is due (and recovers).
        self._schedule(datetime.now(UTC))
        self.scheduler.start()
        self._start_watcher()

    def request_reload(self, why: str) -> None:
        """Reload on a thread of its own (the caller may be the signal loop)."""
        threading.Thread(target=self.reload, args=(why,), name="lormail-reload").start()

    def shutdown(self) -> None:
        """Finish the message in flight, stop everything, leave a 'not running' heartbeat."""
        self.stopping.set()
        if self.watcher is not None:
            self.watcher.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # waits for a send_due in progress
        if self.feed is not None:
            self.feed.set_health("stopping", self._last_check(), None)
            self.feed.stop()
        self._write_health(running=False)
        log.info("stopped")

    # -- reloading ---------------------------------------------------------------

    def reload(self, why: str) -> None:
        """Load the files again; switch to them if they are good and differ."""
        if self.stopping.is_set():
            return
        with self._reload_lock:
            current = self.inputs
            try:
                fresh = load_inputs(self.config_path, current)
            except LormailError as err:
                lines = _problem_lines(err)
                for line in lines:
                    log.error("rejected edit: %s", line)
                log.warning(
                    "rejected edit (%s): keeping the last good roster, config and templates", why
                )
                self._last_error = f"rejected edit: {lines[0]}" if lines else "rejected edit"
                self._write_health(running=True)
                return
            if fresh is None:
                log.debug("%s: nothing changed", why)
                self._refresh_token()
                return
            moved = fresh.config_digest != current.config_digest and (
                fresh.app().state_dir() != self.state_dir
            )
            if moved:
                log.warning("state_dir changed in the config: restart 'lormail run' to use it")
            self._apply(current, fresh.pinned(self.state_dir), why)
        self._wake_now("reload")

    def _apply(self, old: Inputs, new: Inputs, why: str) -> None:
        changed = [
            name
            for name, a, b in (
                (new.config.path.name, old.config_digest, new.config_digest),
                (new.config.roster.name, old.roster_digest, new.roster_digest),
                ("templates", old.templates_digest, new.templates_digest),
            )
            if a != b
        ]
        self.inputs = new
        self._generation += 1
        self._last_error = None
        roster = new.roster
        log.info(
            "reloaded %s (%s): %d recommenders, %d programs",
            ", ".join(changed),
            why,
            len(roster.recommenders),
            len(roster.programs),
        )
        if self.watcher is not None and (new.config.roster, new.config.templates) != (
            old.config.roster,
            old.config.templates,
        ):
            self.watcher.set_interest(self._interest())
        if new.config.calendar.feed != old.config.calendar.feed:
            self._restart_feed()
        elif self.feed is not None:
            self._refresh_token()
        # The new roster is frozen out of the collector's sight after the
        # check that publishes it: not on the way from the edit to the feed.
        self._freeze_after_check = True

    # -- the worker's jobs (all on the scheduler thread) ---------------------------

    def _wake_now(self, why: str) -> None:
        """From another thread: run the wake job now (after one in progress)."""
        if self.stopping.is_set():
            return
        self._pending = why
        with contextlib.suppress(LookupError):
            self.scheduler.modify_job("wake", next_run_time=datetime.now(UTC))

    def _wake(self) -> None:
        """The wake job: a check, repeated while reloads arrived during it."""
        generation = -1
        while generation != self._generation and not self.stopping.is_set():
            generation = self._generation
            why, self._pending = self._pending, None
            self._check("start" if not self._started else why or "scheduled")
            self._started = True

    def next_wake(self, now: datetime) -> datetime:
        planned = self._planned
        return planned.wake if planned is not None else now + FULL_CHECK_EVERY

    def _tick(self) -> None:
        """Every minute: a check if the wall clock reached the next wake-up, else a heartbeat."""
        planned = self._planned
        now = datetime.now(UTC)
        if planned is None or now >= planned.wake or now - self._last_full >= FULL_CHECK_EVERY:
            self._check("tick")
        else:
            self._write_health(running=True, now=now)

    def _check(self, why: str) -> None:
        """Plan; if anything is due (or at start), send through the send log and plan again.

        After a reload the new calendar is published before sending, so an
        edit shows at once even when a long batch follows.
        """
        if self.stopping.is_set():
            return
        # A check allocates a plan and a calendar: hundreds of thousands of
        # objects and no cycles.  The collector would only rescan them, on the
        # way to the feed; it runs once the check is done instead.
        gc.disable()
        try:
            self._check_once(why)
        finally:
            gc.enable()
            if self._freeze_after_check:
                # A roster lives long and makes no cycles: keep the collector
                # from rescanning it on every re-plan.
                self._freeze_after_check = False
                gc.collect()
                gc.freeze()

    def _check_once(self, why: str) -> None:
        try:
            inputs = self.inputs
            planned, due, plan = self._plan(inputs, None)
            must_send = why == "start" or due or bool(plan.observed)
            if must_send and why in ("start", "reload"):
                self._commit(inputs, planned, plan)
            if must_send:
                report = self._send(inputs)
                planned, _, plan = self._plan(inputs, report)
            self._commit(inputs, planned, plan)
        except LormailError as err:
            self._failed(" ".join(_problem_lines(err)))
        except Exception as err:  # keep the daemon up; the next tick tries again
            if logging.getLogger("lormail").isEnabledFor(logging.DEBUG):
                log.exception("check failed")
            self._failed(f"{type(err).__name__}: {err}")

    def _failed(self, text: str) -> None:
        log.error("check failed: %s", text)
        self._last_error = text
        if self._planned is not None:
            self._planned.wake = min(self._planned.wake, utc_now() + BUSY_RETRY)
            self._schedule(self._planned.wake)
        self._write_health(running=True)

    def _send(self, inputs: Inputs) -> SendReport:
        from lormail.sending import send_due

        report = send_due(inputs.app(), stop=self.stopping)
        if report.busy:
            log.info("another lormail is sending; looking again in a minute")
        if report.errors:
            self._last_error = report.errors[0]
        elif report.sent or report.failed or report.skipped:
            self._last_error = None
        return report

    def _plan(self, inputs: Inputs, report: SendReport | None) -> tuple[_Planned, bool, Plan]:
        """The plan as of now, when to look again, and whether anything is due now."""
        from lormail.plan import plan as make_plan
        from lormail.sending import pick
        from lormail.store import read_snapshot

        now = utc_now()
        new = make_plan(inputs.roster, read_snapshot(self.state_dir), now)
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
        self._last_full = now
        # Never sooner than a second: a wake-up that finds nothing must not spin.
        wake = max(min(times), now + timedelta(seconds=1))
        summary = {m.key: (m.status, m.send_at) for m in new.messages}
        planned = _Planned(now, summary, wake, next_send(new), _digest(inputs, new))
        return planned, due, new

    def _commit(self, inputs: Inputs, planned: _Planned, plan: Plan) -> None:
        """Make ``planned`` current: log what changed, schedule, heartbeat, publish."""
        previous = self._planned
        self._planned = planned
        self._schedule(planned.wake)
        try:
            if planned.digest != self._published:  # before the rest: an edit waits for it
                self._publish(inputs, plan, planned.now)
                self._published = planned.digest
        finally:
            self._log_changes(previous.summary if previous else None, plan)
            self._write_health(running=True, now=planned.now)
        _release_memory()

    def _schedule(self, wake: datetime) -> None:
        # On the worker thread; inside the wake job the trigger sets the same time.
        with contextlib.suppress(LookupError):
            self.scheduler.modify_job("wake", next_run_time=wake)

    def _publish(self, inputs: Inputs, plan: Plan, now: datetime) -> None:
        from lormail.cmd_calendar import publishing, write_atomic

        calendar = inputs.config.calendar
        if self.feed is None and calendar.file is None:
            return
        with publishing(inputs.roster, plan, calendar, self.state_dir, now) as data:
            if self.feed is not None:  # the feed first: it is what an edit waits for
                self.feed.update(data)
            if calendar.file is not None:
                write_atomic(calendar.file, data)
        log.debug("calendar published (%d bytes)", len(data))

    # -- feed, watcher, health ---------------------------------------------------

    def _start_feed(self) -> None:
        from lormail.feed import FeedServer, load_or_create_token

        feed = self.inputs.config.calendar.feed
        if not feed.enabled:
            self.feed = None
            return
        token = load_or_create_token(self.state_dir)
        try:
            server = FeedServer(feed.bind, feed.port, token)
        except OSError as err:
            raise LormailError(
                [Problem(f"calendar.feed: cannot listen on {feed.bind}:{feed.port}: {err}")],
                exit_code=EXIT_RUNTIME,
            ) from None
        server.start()
        self.feed = server
        self._published = None

    def _restart_feed(self) -> None:
        if self.feed is not None:
            self.feed.stop()
            self.feed = None
        try:
            self._start_feed()
        except LormailError as err:
            self._last_error = " ".join(_problem_lines(err))
            log.error("%s", self._last_error)

    def _refresh_token(self) -> None:
        """Pick up a token rotated by ``lormail feed-url --rotate``."""
        from lormail.feed import read_token

        token = read_token(self.state_dir)
        if token is not None and self.feed is not None:
            self.feed.set_token(token)

    def _interest(self) -> Interest:
        from lormail.watch import Interest

        config = self.inputs.config
        folders = [config.templates] if config.templates is not None else []
        return Interest([self.config_path, config.roster], folders)

    def _start_watcher(self) -> None:
        from lormail.watch import Watcher

        self.watcher = Watcher(self._interest(), lambda: self.reload("file changed"))
        self.watcher.start()

    def _last_check(self) -> datetime | None:
        return self._planned.now if self._planned is not None else None

    def _write_health(self, running: bool, now: datetime | None = None) -> None:
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

    # -- logging the plan ----------------------------------------------------------

    def _log_changes(self, old: dict[str, tuple[str, datetime]] | None, new: Plan) -> None:
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


def next_send(plan: Plan) -> datetime | None:
    """The send_at of the next message the plan still has to send."""
    times = [m.send_at for m in plan.messages if m.status in (SCHEDULED, DUE)]
    return min(times) if times else None


def _digest(inputs: Inputs, plan: Plan) -> bytes:
    h = hashlib.sha256(inputs.digest.encode())
    for m in plan.messages:
        h.update(f"{m.key}\0{m.status}\0{m.send_at.timestamp()}\n".encode())
    return h.digest()


def _release_memory() -> None:
    """Hand freed heap back to the OS after a re-plan's temporaries (glibc only)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


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


def cmd_run(app: App, args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; exit 2 at once if the files are bad at start."""
    configure_logging(app.debug)
    inputs = load_inputs(app.config_path, check=False)  # LormailError → exit 2 in cli.py
    assert inputs is not None
    # The roster lives as long as the process and makes no cycles: keep the
    # collector from rescanning it on every plan.
    gc.collect()
    gc.freeze()
    state_dir = inputs.app().state_dir()
    # Block the signals before any thread starts, so all threads inherit the
    # mask and only the sigwait below ever sees them.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    daemon = Daemon(app.config_path, inputs, state_dir)
    try:
        mode = "dry run" if inputs.config.dry_run else inputs.config.transport
        log.info("lormail run: %s, state in %s (%s)", inputs.config.roster.name, state_dir, mode)
        daemon.start()
        while True:
            signum = signal.sigwait(SIGNALS)
            if signum == signal.SIGHUP:
                log.info("SIGHUP: reloading")
                daemon.request_reload("SIGHUP")
                continue
            log.info(
                "%s: finishing the message in flight, then stopping", signal.Signals(signum).name
            )
            break
    finally:
        daemon.shutdown()
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return EXIT_OK
