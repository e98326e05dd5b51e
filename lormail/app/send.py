"""Sending what is due: the one function both ``send-due`` and the daemon call (SPEC §4).

:func:`send_due` plans, persists the planner's first-seen facts, and sends
every message the plan says is due, in plan order, over one connection, moving
each log row ``queued → sending → sent | failed | skipped``:

- the ``sending`` row is committed (durably) before the SMTP transaction starts
  and the ``sent`` row right after the server accepts, so a crash can at worst
  repeat the one message in flight, with the same Message-ID;
- a row found in ``sending`` at start-up (a run died mid-send) is reported and
  put back in the queue, so it is retried at once with the same Message-ID; a
  key interrupted :data:`MAX_INTERRUPTIONS` times is marked ``failed`` rather
  than risk a stream of copies to the recommender;
- transient failures back off 1 min doubling to 1 h (``retry_at``) until the
  message would expire, then it is ``skipped``; permanent ones are ``failed``
  with the server's reply; a dropped connection is reopened once per batch;
- ``smtp.max_per_hour`` holds back the rest (``queued`` until a slot frees);
- a delivery into the local Maildir is logged ``local``: it reached nobody;
- ``dry_run`` renders, composes and logs ``dry-run`` rows and sends nothing;
- a ``stop`` event (SIGTERM/SIGINT) ends the batch after the message in flight.

A file lock in the state dir keeps two senders (the daemon and a manual
``send-due``) from ever sending the same key at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from lormail.app.report import SendReport as SendReport
from lormail.app.report import Tally
from lormail.core.instants import utc_z
from lormail.edge.files import read_attachment
from lormail.edge.logrows import Outbound
from lormail.edge.statedir import StateError
from lormail.edge.statedir import sender_lock as sender_lock
from lormail.edge.store import Store
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
    from lormail.edge.transport import Accepted, Transport
    from lormail.model import Config, Roster

log = logging.getLogger("lormail.send")

MAX_INTERRUPTIONS = 3  # a key found in `sending` this often is failed, not resent


@dataclass(frozen=True, slots=True)
class _Unlogged:
    """A delivery the log could not record (the state folder was full or read-only)."""

    key: str
    at: datetime
    reply: str
    note: str | None
    local: bool
    joined: tuple[str, ...] = ()  # a reminder round's other keys


# By state database: deliveries this process made but could not log.  The next
# batch in the same process (the daemon's) records them before anything else,
# so that a message that went is neither sent again nor, after repeated
# failures of the disk, counted as interrupted and marked failed.
_UNLOGGED: dict[Path, dict[str, _Unlogged]] = {}


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


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
    holds: Mapping[str, datetime] = field(default_factory=dict)  # edit holds (the daemon's)
    tally: Tally = field(default_factory=Tally)
    # The snapshot's log plus what this batch sent: reminders thread under it.
    log_view: dict[str, LogEntry] = field(default_factory=dict)

    # -- the steps ----------------------------------------------------------------

    def record_unlogged(self) -> None:
        """Log the deliveries an earlier batch of this process could not (see _UNLOGGED)."""
        waiting = _UNLOGGED.get(self.store.path, {})
        for key, done in list(waiting.items()):
            if done.local:
                self.store.mark_local(key, done.at, done.reply, done.joined)
            else:
                self.store.mark_sent(key, done.at, done.reply, done.note, done.joined)
            del waiting[key]
            log.info(
                "logged %s, which went at %s while the state folder could not be written",
                key,
                utc_z(done.at),
            )

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

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _send_all(
        self, transport: Transport, todo: Sequence[PlannedMessage], ctx: ComposeContext
    ) -> None:
        """Send in order over one connection; each log commit is durable before the
        next step (``sending`` before the transaction, ``sent`` right after it)."""
        from lormail.edge.transport import TransportError

        reconnects, delivered = 1, 0
        for index, msg in enumerate(todo):
            if self._stopping():
                log.info("stopping: the rest of the due messages wait for the next run")
                self.tally.stopped = True
                return
            outgoing = self.compose(msg, ctx)
            if outgoing is None:
                continue
            out = _outbound(msg, outgoing)
            while True:
                self.store.mark_sending(out, self.clock())
                try:
                    accepted = transport.send(
                        outgoing.data, outgoing.envelope_from, outgoing.recipients
                    )
                except TransportError as err:
                    if err.connection and err.transient and delivered and reconnects:
                        # The session dropped mid-batch (idle timeout, network blip):
                        # open a new one once and resend this message.
                        reconnects -= 1
                        log.warning("connection lost (%s); reconnecting once", err)
                        transport.reconnect()
                        continue
                    if err.connection and err.transient:
                        retry_at = self._retry(msg, out, str(err))
                        self._queue_rest(todo[index + 1 :], ctx, retry_at, str(err))
                        return
                    if err.transient:
                        self._retry(msg, out, str(err))
                    else:
                        self._fail(out, str(err), err.reply)
                    break
                self._sent(out, accepted)
                delivered += 1
                break

    def _sent(self, out: Outbound, accepted: Accepted) -> None:
        at = self.clock()
        note = None
        if accepted.refused:
            note = "; ".join(f"copy to {addr} refused: {why}" for addr, why in accepted.refused)
        try:
            if accepted.local:
                self.store.mark_local(out.key, at, accepted.reply, out.joined)
            else:
                self.store.mark_sent(out.key, at, accepted.reply, note, out.joined)
        except StateError as err:
            # It went; only the log cannot say so.  The next batch of this process
            # logs it; a new process finds it `sending` and sends it once more,
            # with the same Message-ID.
            unlogged = _Unlogged(out.key, at, accepted.reply, note, accepted.local, out.joined)
            _UNLOGGED.setdefault(self.store.path, {})[out.key] = unlogged
            raise StateError(
                f"{err.problems[0].message}; {out.key} went to {out.to} but could not be "
                "logged, so it may go once more (with the same Message-ID)"
            ) from None
        self.tally.sent.append(out.key)
        if accepted.local:
            self.tally.local.append(out.key)
        # Later reminders in this batch thread under what just went.
        if not accepted.local or self.config.transport == "maildir":
            self.log_view[out.key] = LogEntry(
                key=out.key, state=LOG_SENT, at=at, to=out.to, subject=out.subject
            )
        if accepted.local:
            log.info(
                "local %s: %s (transport maildir: %s gets nothing)", out.key, accepted.reply, out.to
            )
        else:
            log.info("sent %s to %s (%s)", out.key, out.to, accepted.reply)
        if note:
            log.warning("sent %s, but %s", out.key, note)

    def _fail(self, out: Outbound, error: str, reply: str | None) -> None:
        self.store.mark_failed(out, self.clock(), error, reply)
        self.tally.failed.append(out.key)
        log.error("failed %s to %s: %s", out.key, out.to, error)

    def _retry(self, msg: PlannedMessage, out: Outbound, error: str) -> datetime:
        """Queue after a transient failure, or skip when a retry would come too late."""
        now = self.clock()
        row = self.store.log_row(out.key)
        attempts = row.attempts if row is not None else 0
        retry_at = now + backoff(max(1, attempts))
        self.tally.error(error)
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
        rest: Sequence[PlannedMessage],
        ctx: ComposeContext,
        retry_at: datetime,
        error: str,
    ) -> None:
        """After a lost connection, the rest waits with the message that failed."""
        now = self.clock()
        waiting = 0
        for msg in rest:
            outgoing = self.compose(msg, ctx)
            if outgoing is None:
                continue
            if msg.expires_at is not None and retry_at >= msg.expires_at:
                self._retry(msg, _outbound(msg, outgoing), error)
                continue
            self.store.mark_queued(_outbound(msg, outgoing), now, retry_at, f"not tried: {error}")
            self.tally.retrying.append(msg.key)
            waiting += 1
        if waiting:
            log.warning("%d more message(s) wait until %s", waiting, utc_z(retry_at))


def _outbound(msg: PlannedMessage, outgoing: Outgoing) -> Outbound:
    return Outbound(
        key=msg.key,
        kind=msg.kind,
        recommender=msg.recommender,
        message_id=outgoing.message_id,
        to=outgoing.to,
        subject=outgoing.subject,
        joined=msg.joined,
    )


def backoff(attempts: int) -> timedelta:
    """The wait after ``attempts`` failed tries: 1 min, doubling, at most 1 h."""
    return timedelta(minutes=min(60, 2 ** max(0, min(attempts - 1, 6))))


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

    batch.record_unlogged()
    batch.recover()
    snapshot = batch.store.snapshot(batch.config.transport)
    planned = make_plan(batch.roster, snapshot, now)
    if batch.holds:
        from lormail.core.holds import apply_holds

        planned = apply_holds(planned, batch.holds)
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
            read_bytes=read_attachment,
        )
        batch.run(todo, ctx)
    return batch.tally.report(now, batch.dry_run)


def send_due(
    app: App,
    now: datetime | None = None,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    holds: Mapping[str, datetime] | None = None,
) -> SendReport:
    """Send (or dry-run) everything due at ``now``; the daemon calls this every minute.

    ``now`` None means the real clock, also for the log's timestamps; a given
    ``now`` (``--now``) is used for both the plan and the stamps.  ``dry_run``
    adds to config ``dry_run``; it never turns it off.  ``holds`` (the
    daemon's edit holds, :mod:`lormail.core.holds`) keep what they hold back.
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
                holds=holds or {},
            )
            return run_batch(batch, at)
