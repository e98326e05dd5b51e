"""The planner: (roster, state snapshot, now) → every message, with its reason.

A pure function: no clock, no disk, no network, computed from scratch on
every call.  It generates each recommender's candidate messages (SPEC §3's
table), places them by the slot rules of SPEC §3.0 — slot, not too close to a
deadline, catch-up, gap with reminder rounds, expiry, order — and reports
each as scheduled, due, sent, dry-run, failed, skipped or expired.  All
calendar arithmetic happens in the recipient's zone; every instant that
leaves this module is UTC.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from lormail.core.candidates import (
    ONE_DAY,
    Candidate,
    Generator,
    ask_by_date,
    deadline_order,
    letter_programs,
    open_letters,
    shown_deadline,
)
from lormail.core.inbox_plan import apply_holds, holds, reply_times, with_inbox
from lormail.core.slots import days_phrase
from lormail.model import (
    DRY_RUN,
    DUE,
    EXPIRED,
    FAILED,
    GAP_EXEMPT,
    KIND_ORDER,
    LOG_DRY_RUN,
    LOG_FAILED,
    LOG_SENT,
    LOG_SKIPPED,
    SCHEDULED,
    SENT,
    SKIPPED,
    LogEntry,
    Plan,
    PlannedMessage,
    Roster,
    Snapshot,
)

_PLACED = (SCHEDULED, DUE, DRY_RUN)

__all__ = ["ask_by_date", "open_letters", "plan", "shown_deadline"]


def plan(roster: Roster, snapshot: Snapshot, now: datetime) -> Plan:
    """Every message of every recommender as of ``now``, sorted by send_at, then key."""
    now = now.astimezone(UTC)
    # A reply's hold lasts while the roster entry is as it was when the reply was
    # recorded: judged on the entries as written, not with the inbox's additions.
    in_force = holds(roster, snapshot.inbox, now)
    # The inbox (SPEC §8): absences from auto-replies, letters portals confirmed.
    roster = with_inbox(roster, snapshot.inbox)
    observed: dict[str, datetime] = {}
    by_recommender = _log_by_recommender(snapshot.log)
    messages: list[PlannedMessage] = []
    for rec in roster.recommenders:
        planner = _RecommenderPlanner(roster, rec, snapshot, now, observed)
        messages.extend(planner.run(by_recommender.get(rec.id, {})))
    messages = list(apply_holds(messages, in_force))
    messages.sort(key=lambda m: (m.send_at, m.key))
    return Plan(now=now, messages=tuple(messages), observed=observed)


def _log_by_recommender(log: Mapping[str, LogEntry]) -> dict[str, dict[str, LogEntry]]:
    out: dict[str, dict[str, LogEntry]] = {}
    for key, entry in log.items():
        parts = key.split(":", 2)
        if len(parts) >= 2:
            out.setdefault(parts[1], {})[key] = entry
    return out


class _RecommenderPlanner(Generator):
    """Plans the messages to one recommender (SPEC §3.0, rules 3–6 on the candidates)."""

    def run(self, log: Mapping[str, LogEntry]) -> list[PlannedMessage]:
        opened = open_letters(self.rec)
        cands: list[Candidate] = [
            *self._request(),
            *self._packet(opened),
            *self._followup(log),
            *self._reminders(opened),
            *self._thank_you(opened, log),
            *self._decline_thanks(),
            *self._outcomes(log),
        ]
        self._apply_log(cands, log)
        self._catch_up(cands)
        sent_times = [e.at for e in log.values() if e.state == LOG_SENT]
        sent_times += reply_times(self.snapshot.inbox, self.rec.id)  # a reply counts (SPEC §8)
        self._gap_walk(cands, sent_times)
        self._mark_final(cands)
        out = [self._freeze(c) for c in cands if c.status != _JOINED]
        generated = {c.key for c in cands}
        out.extend(self._log_only(log, generated))
        return out

    def _apply_log(self, cands: list[Candidate], log: Mapping[str, LogEntry]) -> None:
        final_states = {LOG_SENT: SENT, LOG_FAILED: FAILED, LOG_SKIPPED: SKIPPED}
        for cand in cands:
            entry = log.get(cand.key)
            if entry is None:
                continue
            if entry.state == LOG_FAILED and self._readdressed(entry):
                cand.reason += (
                    f"; failed to {entry.to}"
                    + (f" ({entry.error})" if entry.error else "")
                    + f", so sent again now that the address is {self.rec.email}"
                )
            elif entry.state in final_states:
                cand.status = final_states[entry.state]
                cand.time = entry.at
                cand.subject = entry.subject
                if entry.state == LOG_SENT:
                    cand.reason = f"sent {self._day(self._local_date(entry.at))}; {cand.reason}"
                elif entry.state == LOG_FAILED:
                    cand.reason = _failed_reason(entry, cand.reason)
                elif entry.error:
                    cand.reason = f"{cand.status}: {entry.error}; was: {cand.reason}"
            elif entry.state == LOG_DRY_RUN:
                cand.dry_run = True
            elif entry.retry_at is not None and cand.status is None:
                cand.retry_at = entry.retry_at

    def _readdressed(self, entry: LogEntry) -> bool:
        """A failed message whose recipient's address has changed since goes again."""
        if entry.to is None:
            return False
        return parseaddr(entry.to)[1].lower() != self.rec.email.lower()

    def _catch_up(self, cands: list[Candidate]) -> None:
        """Rule 3: what is overdue goes at the first chance; a series keeps only its latest."""
        # A reminder superseded once stays superseded: after a later one of its
        # series went, the earlier is never sent (it was skipped at that time).
        went: dict[str, int] = {}
        for cand in cands:
            if cand.series is not None and cand.status in (SENT, FAILED):
                went[cand.series] = max(went.get(cand.series, 0), cand.number or 0)
        latest_overdue: dict[str, Candidate] = {}
        for cand in cands:
            if cand.status is not None:
                continue
            later = went.get(cand.series or "", 0)
            if later > (cand.number or 0):
                self._skip(cand, f"superseded by reminder {later}")
                continue
            if cand.retry_at is not None and cand.retry_at > cand.time:
                moved = self.clock.next_in_window(cand.retry_at)
                if moved is not None:
                    cand.time = moved
                error = self.snapshot.log[cand.key].error
                cand.reason += "; retrying after a temporary failure" + (
                    f" ({error})" if error else ""
                )
            if cand.time >= self.now:
                continue
            if cand.series is not None:
                prev = latest_overdue.get(cand.series)
                if prev is not None:
                    assert prev.number is not None and cand.number is not None
                    older, newer = (prev, cand) if prev.number < cand.number else (cand, prev)
                    self._skip(older, f"superseded by reminder {newer.number}")
                    latest_overdue[cand.series] = newer
                    if newer is prev:
                        continue
                else:
                    latest_overdue[cand.series] = cand
            moved = self.clock.next_in_window(self.now)
            overdue_since = self._day(self._local_date(cand.time))
            if moved is None:
                self._skip(cand, "no allowed day to send it on")
                continue
            if cand.guard is not None and cand.guard < moved < (cand.expires or moved):
                # Never later than deadline − 1 day, however late the catch-up.
                self._skip(
                    cand, f"overdue since {overdue_since}, and now too close to the deadline"
                )
                continue
            cand.time = moved
            cand.reason += f"; overdue since {overdue_since}, so at the first chance"

    def _gap_walk(self, cands: list[Candidate], sent_times: list[datetime]) -> None:
        """Rules 4 and 5: ``min_gap`` between messages, reminder rounds, then expiry."""
        gap = self.policy.min_gap
        heap: list[tuple[datetime, int, str, int]] = [
            (c.time, KIND_ORDER[c.kind], c.key, i) for i, c in enumerate(cands) if c.status is None
        ]
        heap.extend((t, -1, "", -1) for t in sent_times)
        heapq.heapify(heap)
        prev: datetime | None = None
        round_: Candidate | None = None  # the last reminder placed (not yet sent)
        contacted = bool(sent_times)
        while heap:
            time, order, key, index = heapq.heappop(heap)
            if index < 0:
                prev = time if prev is None else max(prev, time)
                continue
            cand = cands[index]
            # Rule 5: never within a day of the deadline; skipped when the gap put it
            # there, expired (below) when it is already past the deadline itself.
            if (
                cand.guard is not None
                and time > cand.guard
                and (cand.gap_moved or cand.expires is None or time < cand.expires)
            ):
                why = "the gap would put it" if cand.gap_moved else "it would go"
                self._skip(cand, f"{why} within a day of the deadline")
                continue
            if cand.expires is not None and time >= cand.expires:
                cand.status = EXPIRED
                cand.reason = (
                    f"expired: too late by {self._day(self._local_date(time))}; {cand.reason}"
                )
                continue
            if (
                cand.kind == "reminder"
                and round_ is not None
                and time < round_.time + gap
                and cand.series not in {c.series for c in (round_, *round_.joined)}
            ):
                # Rule 4, rounds: one message names both letters.
                round_.joined.append(cand)
                cand.status = _JOINED
                continue
            if cand.kind not in GAP_EXEMPT and prev is not None and time < prev + gap:
                moved = self.clock.next_in_window(prev + gap)
                if moved is None:
                    self._skip(cand, "no allowed day to send it on")
                    continue
                if cand.gap_moved:
                    cand.reason = cand.reason.rsplit("; moved to ", 1)[0]
                cand.reason += (
                    f"; moved to {self._day(self._local_date(moved))} to keep "
                    f"{_gap_phrase(gap)} after the previous message"
                )
                cand.gap_moved = True
                cand.time = moved
                heapq.heappush(heap, (moved, order, key, index))
                continue
            cand.status = DUE if time <= self.now else SCHEDULED
            if cand.status == DUE and cand.dry_run:
                cand.status = DRY_RUN
            if cand.kind == "reminder":
                round_ = cand
                cand.first_contact = not contacted
            contacted = True
            prev = time

    @staticmethod
    def _mark_final(cands: list[Candidate]) -> None:
        """ "Last" wording only when no further reminder at all follows, for any letter."""
        rounds = [c for c in cands if c.kind == "reminder" and c.status in _PLACED]
        if rounds:
            max(rounds, key=lambda c: (c.time, c.key)).final = True

    def _freeze(self, c: Candidate) -> PlannedMessage:
        members = [c, *c.joined]
        letters = tuple(sorted({lt for m in members for lt in m.letters}, key=deadline_order))
        reason = c.reason
        for j in c.joined:
            reason += f"; with reminder {j.number} for {j.letters[0].name} ({j.reason})"
        if c.final:
            reason += " (final reminder)"
        return PlannedMessage(
            key=c.key,
            kind=c.kind,
            recommender=self.rec.id,
            to=self.rec.email,
            send_at=_utc(c.time),
            expires_at=_utc(min(m.expires for m in members if m.expires)) if c.expires else None,
            status=c.status or SKIPPED,
            reason=reason,
            programs=c.programs or letter_programs(letters),
            reminder_number=c.number,
            final_reminder=c.final,
            outcomes=c.outcomes,
            letters=tuple(lt.key for lt in letters),
            joined=tuple(m.key for m in members) if c.joined else (),
            first_contact=c.first_contact,
            request_date=c.request_date,
            subject=c.subject,
        )

    def _log_only(
        self, log: Mapping[str, LogEntry], generated: set[str]
    ) -> Iterable[PlannedMessage]:
        """Logged messages the roster no longer plans: shown with their logged subject, never
        rendered or sent again."""
        shown = {LOG_SENT: SENT, LOG_FAILED: FAILED, LOG_DRY_RUN: DRY_RUN}
        for key, entry in sorted(log.items()):
            kind = key.split(":", 1)[0]
            if key in generated or kind not in KIND_ORDER:
                continue
            status = shown.get(entry.state, SKIPPED)
            reason = "logged; no longer in the roster's plan"
            if entry.state == LOG_FAILED:
                reason = _failed_reason(entry, reason)
            elif entry.error:
                reason += f" ({entry.error})"
            yield PlannedMessage(
                key=key,
                kind=kind,
                recommender=self.rec.id,
                to=entry.to or self.rec.email,
                send_at=entry.at.astimezone(UTC),
                expires_at=None,
                status=status,
                reason=reason,
                subject=entry.subject or "(subject not logged)",
            )


# A reminder that joined an earlier one's round: it goes, and is logged, with it.
_JOINED = "joined"


def _failed_reason(entry: LogEntry, was: str) -> str:
    why = entry.error or "the server refused it"
    return (
        f"failed: {why}; correct the address in the roster or run "
        f"`lormail retry {entry.key}` to send it again; was: {was}"
    )


def _utc(instant: datetime) -> datetime:
    return instant if instant.tzinfo is UTC else instant.astimezone(UTC)


def _gap_phrase(gap: timedelta) -> str:
    if gap % ONE_DAY == timedelta(0):
        return days_phrase(gap.days)
    hours = gap.total_seconds() / 3600
    return f"{hours:g} hours"
