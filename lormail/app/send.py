"""Sending what is due: the one function both ``send-due`` and the daemon call (SPEC §4).

:func:`send_due` plans, persists the planner's first-seen facts, and sends
every message the plan says is due, in plan order, over one connection, moving
each log row ``queued → sending → sent | failed | skipped``:

- the ``sending`` row is committed before the SMTP transaction starts and the
  ``sent`` row right after the server accepts, so a crash can at worst repeat
  the one message in flight, with the same Message-ID;
- a row found in ``sending`` at start-up (a run died mid-send) is reported and
  put back in the queue, so it is retried at once with the same Message-ID; a
  key interrupted :data:`MAX_INTERRUPTIONS` times is marked ``failed`` rather
  than risk a stream of copies to the recommender;
- transient failures back off 1 min doubling to 1 h (``retry_at``) until the
  message would expire, then it is ``skipped``; permanent ones are ``failed``
  with the server's reply; a dropped connection is reopened once per batch;
- ``smtp.max_per_hour`` holds back the rest (``queued`` until a slot frees);
- ``dry_run`` renders, composes and logs ``dry-run`` rows and sends nothing;
- a ``stop`` event (SIGTERM/SIGINT) ends the batch after the message in flight.

A file lock in the state dir keeps two senders (the daemon and a manual
``send-due``) from ever sending the same key at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from lormail.core.instants import utc_z
from lormail.edge.files import ensure_private_dir
from lormail.edge.store import Outbound, Store, backoff
from lormail.model import (
    DRY_RUN,
    DUE,
    EXPIRED,
    LOG_QUEUED,
    LOG_SENDING,
    LOG_SENT,
    SKIPPED,
    LogEntry,
    PlannedMessage,
)

if TYPE_CHECKING:
    from lormail.app.context import App
    from lormail.core.compose import ComposeContext, Outgoing, RenderedLike
    from lormail.edge.transport import Transport
    from lormail.model import Config, Roster

log = logging.getLogger("lormail.send")

MAX_INTERRUPTIONS = 3  # a key found in `sending` this often is failed, not resent
# Every log commit survives a crash of lormail at once; one survives a crash of
# the machine (power cut) at most this many seconds later (Store.group_commit).
DURABLE_WITHIN = 0.1
LOCK_NAME = "send.lock"


@dataclass(frozen=True, slots=True)
class SendReport:
    """What one :func:`send_due` call did, key by key."""

    now: datetime
    dry_run: bool
    sent: tuple[str, ...] = ()
    dry_runs: tuple[str, ...] = ()
    retrying: tuple[str, ...] = ()  # queued after a transient failure (or an outage)
    deferred: tuple[str, ...] = ()  # held back by smtp.max_per_hour
    failed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # expired while waiting to be retried
    recovered: tuple[str, ...] = ()  # found in `sending` at start-up
    errors: tuple[str, ...] = ()  # distinct problems, one line each
    next_retry: datetime | None = None
    busy: bool = False  # another lormail holds the send lock; nothing was done
    stopped: bool = False  # a stop request ended the batch early

    @property
    def exit_code(self) -> int:
        """0 when everything due went (or was dry-run / held by the rate limit), else 1."""
        return 1 if (self.failed or self.retrying or self.errors) else 0


@dataclass
class _Tally:
    sent: list[str] = field(default_factory=list)
    dry_runs: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retry_times: list[datetime] = field(default_factory=list)
    stopped: bool = False

    def error(self, text: str) -> None:
        if text not in self.errors:
            self.errors.append(text)

    def report(self, now: datetime, dry_run: bool) -> SendReport:
        return SendReport(
            now=now,
            dry_run=dry_run,
            sent=tuple(self.sent),
            dry_runs=tuple(self.dry_runs),
            retrying=tuple(self.retrying),
            deferred=tuple(self.deferred),
            failed=tuple(self.failed),
            skipped=tuple(self.skipped),
            recovered=tuple(self.recovered),
            errors=tuple(self.errors),
            next_retry=min(self.retry_times) if self.retry_times else None,
            stopped=self.stopped,
        )


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@contextlib.contextmanager
def sender_lock(state_dir: Path) -> Iterator[bool]:
    """Hold the state's send lock if free; yields False when another sender has it."""
    import fcntl

    ensure_private_dir(state_dir)
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


Renderer = Callable[[PlannedMessage], "RenderedLike"]
TransportFactory = Callable[[], "contextlib.AbstractContextManager[Transport]"]


@dataclass
class Batch:
    """One run over the due messages.  Built by :func:`send_due`; tests may build one."""

    store: Store
    roster: Roster
    config: Config
    render: Renderer
    transport: TransportFactory
    clock: Callable[[], datetime]
    dry_run: bool = False
    stop: threading.Event | None = None
    tally: _Tally = field(default_factory=_Tally)
    # The snapshot's log plus what this batch sent: reminders thread under it.
    log_view: dict[str, LogEntry] = field(default_factory=dict)
    chores: _Chores = field(default_factory=lambda: _Chores())

    # -- the steps ----------------------------------------------------------------

    def recover(self) -> None:
        """Requeue rows a dead run left in ``sending``; fail a key that keeps dying."""
        rows = self.store.rows_in_state(LOG_SENDING)
        if not rows:
            return
        self.store.note_interrupted([r.key for r in rows])
        at = self.clock()
        for row in rows:
            out = Outbound(
                row.key,
                row.kind,
                row.recommender,
                row.message_id or "",
                row.to or "",
                row.subject or "",
            )
            times = row.interruptions + 1
            if times >= MAX_INTERRUPTIONS:
                text = (
                    f"sending was interrupted {times} times; not retried again so that "
                    "the recipient does not get several copies (check your Sent folder)"
                )
                self.store.mark_failed(out, at, text, None)
                self.tally.failed.append(row.key)
                log.error("failed %s: %s", row.key, text)
                continue
            self.store.mark_queued(
                out, at, at, f"interrupted while sending (attempt {row.attempts})"
            )
            self.tally.recovered.append(row.key)
            log.warning(
                "recovered %s: a run stopped while sending it (it may have gone); "
                "retrying once with the same Message-ID %s",
                row.key,
                row.message_id,
            )

    def retire_expired(self, messages: Sequence[PlannedMessage]) -> None:
        """Give queued rows whose message the plan now calls expired/skipped a final word."""
        pending = {r.key: r for r in self.store.rows_in_state(LOG_QUEUED)}
        at = self.clock()
        for msg in messages:
            row = pending.get(msg.key)
            if row is None or msg.status not in (EXPIRED, SKIPPED):
                continue
            out = Outbound(
                msg.key, msg.kind, msg.recommender, row.message_id or "", msg.to, row.subject or ""
            )
            reason = f"expired before it could be sent; last error: {row.error or 'none'}"
            self.store.mark_skipped(out, at, reason)
            self.tally.skipped.append(msg.key)
            log.warning("skipped %s: %s", msg.key, reason)

    def compose(self, msg: PlannedMessage, ctx: ComposeContext) -> Outgoing | None:
        """Render and compose; on failure log it, record the row and return None."""
        from lormail.core.compose import ComposeError, compose, domain_of, message_id, sender

        try:
            return compose(msg, self.render(msg), ctx, self.clock())
        except ComposeError as err:
            # Unsafe or unaddressable: retrying would not change it.
            _, from_addr = sender(self.roster, self.config)
            mid = message_id(msg.key, ctx.secret, domain_of(from_addr))
            out = Outbound(msg.key, msg.kind, msg.recommender, mid, msg.to, "")
            self._fail(out, f"not sent: {err}", None)
        except Exception as err:
            # A template or an attachment the user can fix: keep it queued, and
            # let the rest of the batch go.
            text = str(err).splitlines()[0] if str(err) else type(err).__name__
            out = Outbound(msg.key, msg.kind, msg.recommender, "", msg.to, "")
            self._retry(msg, out, f"cannot render or compose {msg.key}: {text}")
        return None

    def run(self, todo: Sequence[PlannedMessage], ctx: ComposeContext) -> None:
        if self.dry_run:
            for msg in todo:
                self._dry_run(msg, ctx)
            return
        todo = self._within_rate_limit(todo, ctx)
        if not todo:
            return
        with self.transport() as transport:
            self._send_all(transport, todo, ctx)

    # -- helpers ------------------------------------------------------------------

    def _dry_run(self, msg: PlannedMessage, ctx: ComposeContext) -> None:
        outgoing = self.compose(msg, ctx)
        if outgoing is None:
            return
        self.store.mark_dry_run(_outbound(msg, outgoing), self.clock())
        self.tally.dry_runs.append(msg.key)
        log.info("dry-run %s to %s: %s", msg.key, msg.to, outgoing.subject)

    def _within_rate_limit(
        self, todo: Sequence[PlannedMessage], ctx: ComposeContext
    ) -> Sequence[PlannedMessage]:
        if self.config.transport != "smtp" or self.config.smtp.max_per_hour <= 0:
            return todo
        limit = self.config.smtp.max_per_hour
        now = self.clock()
        recent = self.store.sent_since(now - timedelta(hours=1))
        budget = max(0, limit - len(recent))
        if len(todo) <= budget:
            return todo
        held = todo[budget:]
        # The earliest instant a slot frees, counting the messages about to go now.
        window = [*recent, *([now] * budget)]
        free_at = window[len(window) - limit] + timedelta(hours=1) if window else now
        free_at = max(free_at, now + timedelta(minutes=1))
        for msg in held:
            outgoing = self.compose(msg, ctx)
            if outgoing is None:
                continue
            text = f"waiting: at most {limit} messages an hour (smtp.max_per_hour)"
            self.store.mark_queued(_outbound(msg, outgoing), now, free_at, text)
            self.tally.deferred.append(msg.key)
            self.tally.retry_times.append(free_at)
        log.info("holding %d message(s) until %s (smtp.max_per_hour)", len(held), free_at)
        return todo[:budget]

    def _prepared(
        self, todo: Sequence[PlannedMessage], ctx: ComposeContext
    ) -> Iterator[tuple[PlannedMessage, Outgoing]]:
        for msg in todo:
            outgoing = self.compose(msg, ctx)
            if outgoing is not None:
                yield msg, outgoing

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _send_all(
        self, transport: Transport, todo: Sequence[PlannedMessage], ctx: ComposeContext
    ) -> None:
        """Send in order.  One commit per message: its ``sent`` row together with the
        next one's ``sending`` row, so both rules hold (``sending`` before a transaction
        starts, ``sent`` right after the server accepts) at half the commits.  The rest
        of the work (composing the next message, the log line of the last one) is done
        while the server answers this one's commands."""

        queue = _Lookahead(self._prepared(todo, ctx))
        try:
            with self.store.group_commit(DURABLE_WITHIN):
                self._send_queue(transport, queue)
        finally:
            self.chores.run_all()

    def _send_queue(self, transport: Transport, queue: _Lookahead) -> None:
        from lormail.edge.transport import TransportError

        current = None if self._stopping() else queue.take()
        if current is not None:
            self.store.mark_sending(_outbound(*current), self.clock())
        reconnects, delivered = 1, 0
        while current is not None:
            msg, outgoing = current
            out = _outbound(msg, outgoing)
            self.chores.add(queue.prepare)
            try:
                accepted = transport.send(
                    outgoing.data, outgoing.envelope_from, outgoing.recipients, self.chores.one
                )
            except TransportError as err:
                self.chores.run_all()
                if err.connection and err.transient and delivered and reconnects:
                    # The session dropped mid-batch (idle timeout, network blip):
                    # open a new one once and resend this message.
                    reconnects -= 1
                    log.warning("connection lost (%s); reconnecting once", err)
                    transport.reconnect()
                    self.store.mark_sending(out, self.clock())
                    continue
                if err.connection and err.transient:
                    retry_at = self._retry(msg, out, str(err))
                    self._queue_rest(queue.rest(), retry_at, str(err))
                    return
                if err.transient:
                    self._retry(msg, out, str(err))
                else:
                    self._fail(out, str(err), err.reply)
                current = None if self._stopping() else queue.take()
                if current is not None:
                    self.store.mark_sending(_outbound(*current), self.clock())
                continue
            current = None if self._stopping() else queue.take()
            upcoming = None if current is None else _outbound(*current)
            self._sent(out, accepted.reply, accepted.refused, upcoming)
            delivered += 1
        if self._stopping():
            self.chores.run_all()
            log.info("stopping: the rest of the due messages wait for the next run")
            self.tally.stopped = True

    def _sent(
        self,
        out: Outbound,
        reply: str,
        refused: Sequence[tuple[str, str]],
        upcoming: Outbound | None,
    ) -> None:
        at = self.clock()
        note = None
        if refused:
            note = "; ".join(f"copy to {addr} refused: {why}" for addr, why in refused)
        self.store.mark_sent(out.key, at, reply, note, then_sending=upcoming)
        self.tally.sent.append(out.key)
        # Later reminders in this batch thread under what just went.
        self.log_view[out.key] = LogEntry(key=out.key, state=LOG_SENT, at=at)

        def say() -> None:
            log.info("sent %s to %s (%s)", out.key, out.to, reply)
            if note:
                log.warning("sent %s, but %s", out.key, note)

        # Written while the server answers the next message's first command.
        self.chores.add(say)

    def _fail(self, out: Outbound, error: str, reply: str | None) -> None:
        self.store.mark_failed(out, self.clock(), error, reply)
        self.tally.failed.append(out.key)
        self.chores.run_all()  # the log lines in order
        log.error("failed %s to %s: %s", out.key, out.to, error)

    def _retry(self, msg: PlannedMessage, out: Outbound, error: str) -> datetime:
        """Queue after a transient failure, or skip when a retry would come too late."""
        now = self.clock()
        row = self.store.log_row(out.key)
        attempts = row.attempts if row is not None else 0
        retry_at = now + backoff(max(1, attempts))
        self.tally.error(error)
        self.chores.run_all()  # the log lines in order
        if msg.expires_at is not None and retry_at >= msg.expires_at:
            reason = f"expired before it could be sent; last error: {error}"
            self.store.mark_skipped(out, now, reason)
            self.tally.skipped.append(out.key)
            log.warning("skipped %s: %s", out.key, reason)
            return retry_at
        self.store.mark_queued(out, now, retry_at, error)
        self.tally.retrying.append(out.key)
        self.tally.retry_times.append(retry_at)
        log.warning("retrying %s at %s: %s", out.key, utc_z(retry_at), error)
        return retry_at

    def _queue_rest(
        self,
        rest: Sequence[tuple[PlannedMessage, Outgoing]],
        retry_at: datetime,
        error: str,
    ) -> None:
        """After a lost connection, the rest waits with the message that failed."""
        now = self.clock()
        for msg, outgoing in rest:
            if msg.expires_at is not None and retry_at >= msg.expires_at:
                self._retry(msg, _outbound(msg, outgoing), error)
                continue
            self.store.mark_queued(_outbound(msg, outgoing), now, retry_at, f"not tried: {error}")
            self.tally.retrying.append(msg.key)
        if rest:
            log.warning("%d more message(s) wait until %s", len(rest), utc_z(retry_at))


class _Chores:
    """Small jobs done one at a time while the server answers a command (the
    transport's ``meanwhile``), in the order they were added."""

    def __init__(self) -> None:
        self._jobs: deque[Callable[[], object]] = deque()

    def add(self, job: Callable[[], object]) -> None:
        self._jobs.append(job)

    def one(self) -> None:
        if self._jobs:
            self._jobs.popleft()()

    def run_all(self) -> None:
        while self._jobs:
            self._jobs.popleft()()


class _Lookahead:
    """The composed messages in order, the next one made ahead of time (see _send_all)."""

    def __init__(self, items: Iterator[tuple[PlannedMessage, Outgoing]]) -> None:
        self._items = items
        self._ahead: list[tuple[PlannedMessage, Outgoing] | None] = []

    def prepare(self) -> None:
        if not self._ahead:
            self._ahead.append(next(self._items, None))

    def take(self) -> tuple[PlannedMessage, Outgoing] | None:
        self.prepare()
        return self._ahead.pop()

    def rest(self) -> list[tuple[PlannedMessage, Outgoing]]:
        ahead = [a for a in self._ahead if a is not None]
        self._ahead = []
        return [*ahead, *self._items]


def _outbound(msg: PlannedMessage, outgoing: Outgoing) -> Outbound:
    return Outbound(
        key=msg.key,
        kind=msg.kind,
        recommender=msg.recommender,
        message_id=outgoing.message_id,
        to=outgoing.to,
        subject=outgoing.subject,
    )


def pick(messages: Sequence[PlannedMessage], dry_run: bool) -> list[PlannedMessage]:
    """The messages to act on now, in plan order.

    ``dry-run`` rows do not count as sent: once dry-running is off they go like due ones.
    """
    wanted = {DUE} if dry_run else {DUE, DRY_RUN}
    return [m for m in messages if m.status in wanted]


def run_batch(batch: Batch, now: datetime) -> SendReport:
    """Recover, plan, persist first-seen facts, and act on what is due (lock held)."""
    from lormail.core.compose import ComposeContext
    from lormail.core.plan import plan as make_plan

    batch.recover()
    snapshot = batch.store.snapshot()
    planned = make_plan(batch.roster, snapshot, now)
    batch.store.record_first_seen(planned.observed)
    batch.retire_expired(planned.messages)
    todo = pick(planned.messages, batch.dry_run)
    if todo:
        batch.log_view = dict(snapshot.log)
        ctx = ComposeContext(
            roster=batch.roster,
            config=batch.config,
            secret=batch.store.message_id_secret(),
            log=batch.log_view,
        )
        batch.run(todo, ctx)
    return batch.tally.report(now, batch.dry_run)


def send_due(
    app: App,
    now: datetime | None = None,
    dry_run: bool = False,
    stop: threading.Event | None = None,
) -> SendReport:
    """Send (or dry-run) everything due at ``now``; the daemon calls this every minute.

    ``now`` None means the real clock, also for the log's timestamps; a given
    ``now`` (``--now``) is used for both the plan and the stamps.  ``dry_run``
    adds to config ``dry_run``; it never turns it off.
    """
    from lormail.edge.transport import open_transport

    config = app.config()
    roster = app.roster()
    templates = app.templates()
    dry = dry_run or config.dry_run
    clock: Callable[[], datetime] = _utc_now if now is None else (lambda: now)
    at = clock()

    def transport() -> contextlib.AbstractContextManager[Transport]:
        from lormail.edge.credentials import secret_source

        return open_transport(config, lambda: secret_source(config.smtp))

    def render(msg: PlannedMessage) -> RenderedLike:
        return templates.render(msg, roster)

    state_dir = app.state_dir()
    with sender_lock(state_dir) as mine:
        if not mine:
            log.info("another lormail is sending; nothing done")
            return SendReport(now=at, dry_run=dry, busy=True)
        with Store.open(state_dir) as store:
            batch = Batch(
                store=store,
                roster=roster,
                config=config,
                render=render,
                transport=transport,
                clock=clock,
                dry_run=dry,
                stop=stop,
            )
            return run_batch(batch, at)
