"""One daemon check: read the files, plan, send what is due, publish the calendar.

Everything from scratch each time, on the scheduler's one worker thread:

1. **Inputs.**  The config, roster and templates are read and digested.
   Unchanged bytes keep the last good :class:`~lormail.app.inputs.Inputs`;
   bytes already refused stay refused (a template that never finishes is not
   tried again each hour); new bytes are validated whole and either replace
   the last good set or are refused with one log line per problem, the last
   good set staying in force.
2. **Edit holds.**  An accepted edit holds what it made due for
   ``edit_grace`` (:mod:`lormail.core.holds`), recorded in the state.
3. **Send** with :func:`lormail.app.send.send_due`, which logs each message
   it acts on.
4. **Plan** again as of now, log each change once, and **publish** the
   calendar (feed first, then ``calendar.file``).

The result says when the plan next changes, for the scheduler.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from lormail.app.context import utc_now
from lormail.app.inputs import Inputs, Sources, accept, read_sources
from lormail.core.holds import apply_holds, going, holds_after_edit, merge_holds
from lormail.core.instants import utc_text
from lormail.errors import LormailError
from lormail.model import DRY_RUN, DUE, FAILED, HELD, SCHEDULED, SENT, Plan

log = logging.getLogger("lormail.daemon")

HOURLY = timedelta(hours=1)  # a check at least this often, whatever the plan says
MAX_PLAN_LINES = 50  # per check; the rest is summed up in one line
_UPCOMING = (SCHEDULED, DUE)


@dataclass(frozen=True)
class Outcome:
    """What one check leaves for the scheduler and the heartbeat."""

    now: datetime
    wake_times: tuple[datetime, ...]  # when the plan can change within the hour, and the hour
    next_send: datetime | None
    calendar: bytes | None  # published, for the feed
    error: str | None  # what stands in the way, or None after a good check


@dataclass
class Checker:
    """Keeps the last good inputs, what was refused, and the last plan (for the log)."""

    config_path: Path
    state_dir: Path  # fixed while the daemon runs
    retry: timedelta  # how soon to look again when something is still due
    inputs: Inputs | None = None
    refused: str | None = None  # the digest of the bytes last refused
    refusal: str | None = None  # its first problem, as the log and heartbeat say it
    last: dict[str, tuple[str, datetime]] | None = None  # the last plan: key -> status, time
    on_inputs: Callable[[Inputs, Inputs | None], None] = field(default=lambda new, old: None)
    before_send: Callable[[], None] = field(default=lambda: None)  # the inbox's quick scan
    _trying: Sources | None = None  # the bytes being validated

    # -- 1. inputs ---------------------------------------------------------------------

    def load(self, why: str) -> None:
        """Bring the inputs up to date with the files; raises LormailError at start."""
        first = self.inputs is None
        try:
            sources = read_sources(self.config_path, self.inputs)
        except LormailError as err:
            if first:
                raise
            self._refuse(None, err, why)
            return
        if self.inputs is not None and sources.digest == self.inputs.digest:
            self.refused = self.refusal = None  # back to the good files
            return
        if sources.digest == self.refused:
            return
        # Kept if the time limit cuts the check short (see cut_short).
        self._trying = sources
        try:
            fresh = self._pinned(accept(sources))
        except LormailError as err:
            self._trying = None
            if first:
                raise
            self._refuse(sources, err, why)
            return
        self._trying = None
        old, self.inputs = self.inputs, fresh
        self.refused = self.refusal = None
        if old is not None:
            self._hold_what_the_edit_made_due(old, fresh)
            changed = _changed_files(old, fresh)
            roster = fresh.roster
            log.info(
                "reloaded %s (%s): %d recommenders, %d programs",
                ", ".join(changed),
                why,
                len(roster.recommenders),
                len(roster.programs),
            )
        self.on_inputs(fresh, old)

    def cut_short(self, err: LormailError, why: str) -> None:
        """The files being checked took too long: refuse them as if they were bad."""
        self._refuse(self._trying, err, why)
        self._trying = None

    def _refuse(self, sources: Sources | None, err: LormailError, why: str) -> None:
        lines = [str(p) for p in err.problems] or ["unknown problem"]
        text = f"rejected edit: {lines[0]}"
        if sources is not None:
            self.refused = sources.digest
        elif text == self.refusal:
            return  # the same broken config as at the last check: said already
        self.refusal = text
        for line in lines:
            log.error("rejected edit: %s", line)
        log.warning("rejected edit (%s): keeping the last good roster, config and templates", why)

    def _pinned(self, inputs: Inputs) -> Inputs:
        configured = inputs.config.state_dir
        if configured == self.state_dir:
            return inputs
        if configured is not None:
            log.warning("state_dir changed in the config: restart 'lormail run' to use it")
        config = dataclasses.replace(inputs.config, state_dir=self.state_dir)
        return dataclasses.replace(inputs, config=config)

    # -- 2. edit holds -------------------------------------------------------------------

    def _hold_what_the_edit_made_due(self, old: Inputs, new: Inputs) -> None:
        from lormail.edge.store import Store

        now = utc_now()
        with Store.open(self.state_dir) as store:
            kept = store.edit_holds()
            before = going(apply_holds(old.app().plan(now), kept), old.config.dry_run)
            after = going(apply_holds(new.app().plan(now), kept), new.config.dry_run)
            made = holds_after_edit(before, after, now, new.config.edit_grace)
            holds = merge_holds(kept, made, now)
            if holds != kept:
                store.save_edit_holds(holds)

    # -- 3 and 4: send, plan, publish -------------------------------------------------------

    def run(self, stop: threading.Event) -> Outcome:
        """Send, plan, publish (after :meth:`load`); raises on a failure of the world."""
        from lormail.app.send import send_due
        from lormail.core.inbox_plan import holds as inbox_holds
        from lormail.core.plan import plan
        from lormail.edge.store import read_edit_holds

        inputs = self.inputs
        assert inputs is not None
        holds = read_edit_holds(self.state_dir)
        self.before_send()
        report = send_due(inputs.app(), stop=stop, holds=holds)
        if report.busy:
            log.info("another lormail is sending; looking again in a minute")
        acted = {*report.sent, *report.dry_runs, *report.failed, *report.skipped}
        acted |= {*report.retrying, *report.deferred}

        now = utc_now()
        snapshot = inputs.app().snapshot()
        final = apply_holds(plan(inputs.roster, snapshot, now), holds)
        self._log_changes(final, acted)
        calendar = self._publish(inputs, final, now)

        times = [now + HOURLY]
        # A held message (SPEC §8) may go when its hold ends.
        times += [
            m.send_at
            for m in final.messages
            if m.status in (SCHEDULED, HELD) and not m.held_open and m.send_at > now
        ]
        # A reply's hold ending changes the calendar, even when it held nothing.
        in_force = inbox_holds(inputs.roster, snapshot.inbox, now)
        times += [h.until for h in in_force.values() if h.until is not None and h.until > now]
        # When a deadline passes, the next letter's reminders start.
        times += [p.deadline for p in inputs.roster.programs if p.deadline > now]
        if report.next_retry is not None:
            times.append(max(report.next_retry, now + timedelta(seconds=1)))
        if report.busy or report.stopped or any(m.status == DUE for m in final.messages):
            times.append(now + self.retry)  # still due: held back, stopped, or locked out
        error = self.refusal
        if error is None and report.errors:
            error = report.errors[0]
        return Outcome(
            now=now,
            wake_times=tuple(sorted(t for t in set(times) if t <= now + HOURLY)),
            next_send=_next_send(final),
            calendar=calendar,
            error=error,
        )

    def _publish(self, inputs: Inputs, plan: Plan, now: datetime) -> bytes | None:
        """The calendar for the feed (returned), then to its file."""
        from lormail.app.publish import publishing, write_atomic

        calendar = inputs.config.calendar
        if not calendar.feed.enabled and calendar.file is None:
            return None
        with publishing(inputs.roster, plan, calendar, self.state_dir, now) as built:
            if calendar.file is not None:
                write_atomic(calendar.file, built.data)
            data: bytes = built.data
        return data

    def _log_changes(self, new: Plan, acted: set[str]) -> None:
        """One line per message newly planned, moved, cancelled, skipped or expired.

        What the send batch acted on (sent, dry-run, failed, retried) it has
        logged itself.
        """
        old, self.last = self.last, {m.key: (m.status, m.send_at) for m in new.messages}
        upcoming = [m for m in new.messages if m.status in _UPCOMING]
        if old is None:
            head = upcoming[0] if upcoming else None
            log.info(
                "planned %d message(s)%s",
                len(upcoming),
                f"; next {head.key} at {utc_text(head.send_at)}" if head else "",
            )
            return
        before = {k for k, (status, _) in old.items() if status in _UPCOMING}
        lines: list[str] = []
        for m in new.messages:
            if m.key in acted or m.status in (SENT, DRY_RUN, FAILED):
                continue
            was = old.get(m.key)
            if m.status in _UPCOMING:
                if was is None or was[1] != m.send_at or m.key not in before:
                    lines.append(f"planned {m.key} at {utc_text(m.send_at)}: {m.reason}")
            elif m.key in before:
                lines.append(f"{m.status} {m.key}: {m.reason}")
        for key in sorted(before - set(self.last) - acted):
            lines.append(f"cancelled {key}: no longer in the plan")
        for line in lines[:MAX_PLAN_LINES]:
            log.info("%s", line)
        if len(lines) > MAX_PLAN_LINES:
            log.info("... and %d more plan change(s)", len(lines) - MAX_PLAN_LINES)


def _next_send(plan: Plan) -> datetime | None:
    """The send_at of the next message the plan still has to send."""
    times = [m.send_at for m in plan.messages if m.status in _UPCOMING]
    return min(times) if times else None


def _changed_files(old: Inputs, new: Inputs) -> list[str]:
    names = (new.config.path.name, new.config.roster.name, "templates")
    pairs = zip(old.digest.split(":"), new.digest.split(":"), strict=True)
    return [name for name, (a, b) in zip(names, pairs, strict=True) if a != b]
