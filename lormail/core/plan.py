"""The planner: (roster, state snapshot, now) → every message, with its reason.

A pure function: no clock, no disk, no network.  It generates each
recommender's candidate messages (SPEC §3's table), places them by the slot
rules of SPEC §3.0 — slot, not too close to a deadline, catch-up, gap, expiry,
order — and reports each as scheduled, due, sent, dry-run, failed, skipped or
expired.  All calendar arithmetic happens in the recipient's zone; every
instant that leaves this module is UTC.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any

from lormail.core.inbox_plan import apply_holds, holds, reply_times, with_inbox
from lormail.core.slots import Clock, day_label, days_phrase
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
    Program,
    Recommender,
    Roster,
    Snapshot,
)

ONE_DAY = timedelta(days=1)
DECLINE_THANKS_TTL = timedelta(days=30)
OUTCOME_TTL = timedelta(days=90)
OPEN_STATUSES = frozenset({"asked", "agreed"})

__all__ = ["Parts", "RecommenderPlan", "ask_by_date", "open_letters", "plan", "plan_parts"]


@dataclass(slots=True)
class _Candidate:
    """A message being placed.  Mutable while the rules run; frozen on output."""

    key: str
    kind: str
    time: datetime  # UTC
    reason: str
    expires: datetime | None = None
    programs: tuple[str, ...] = ()
    number: int | None = None  # reminder N
    series: str | None = None  # reminder: the anchor program
    guard: datetime | None = None  # reminder: deadline − 1 day
    eff_now: datetime | None = None  # reminder: not before its anchor starts
    outcomes: tuple[tuple[str, str], ...] = ()
    status: str | None = None  # set once final
    retry_at: datetime | None = None
    dry_run: bool = False
    gap_moved: bool = False
    final: bool = False


def plan(roster: Roster, snapshot: Snapshot, now: datetime) -> Plan:
    """Every message of every recommender as of ``now``, sorted by send_at, then key."""
    return plan_parts(roster, snapshot, now)[0]


@dataclass(frozen=True, slots=True)
class RecommenderPlan:
    """One recommender's messages as planned at ``since``, and how long they hold.

    While planning, every instant at which the answer for this recommender
    could change is noted: a message falling due, a catch-up or the next
    letter's reminders starting, the new year that day labels depend on.
    ``until`` is the first of them.  Planned again at any ``now`` in
    ``[since, until)`` with the same roster entry, programs and snapshot, the
    messages are the same.  ``until == since`` when something is due now or a
    first-seen fact was taken from ``now``.
    """

    messages: tuple[PlannedMessage, ...]
    since: datetime
    until: datetime

    def holds_at(self, now: datetime) -> bool:
        return self.since <= now < self.until

    def __reduce__(self) -> tuple[Any, ...]:
        # By its fields: restoring a slotted dataclass's state is several times slower.
        return RecommenderPlan, (self.messages, self.since, self.until)


@dataclass(frozen=True, slots=True)
class Parts:
    """A plan's recommender parts, with the roster and snapshot they were planned from."""

    roster: Roster
    snapshot: Snapshot
    by_recommender: Mapping[str, RecommenderPlan]


def plan_parts(
    roster: Roster, snapshot: Snapshot, now: datetime, earlier: Parts | None = None
) -> tuple[Plan, Parts]:
    """:func:`plan`, and its parts, for a later call to keep what still holds.

    With ``earlier`` parts, a recommender whose entry and letters' programs
    are as they were (and the snapshot too) keeps their part when it
    :meth:`~RecommenderPlan.holds_at` ``now``.  The plan is the same as
    without them.
    """
    now = now.astimezone(UTC)
    # The inbox (SPEC §8): absences from auto-replies, letters portals confirmed.
    roster = with_inbox(roster, snapshot.inbox)
    keep = _keepable(earlier, roster, snapshot)
    observed: dict[str, datetime] = {}
    by_recommender = _log_by_recommender(snapshot.log)
    parts: dict[str, RecommenderPlan] = {}
    messages: list[PlannedMessage] = []
    for rec in roster.recommenders:
        part = keep.get(rec.id)
        if part is None or not part.holds_at(now):
            planner = _RecommenderPlanner(roster, rec, snapshot, now, observed)
            out = planner.run(by_recommender.get(rec.id, {}))
            part = RecommenderPlan(tuple(out), now, planner.until)
        parts[rec.id] = part
        messages.extend(part.messages)
    messages = list(apply_holds(messages, holds(roster, snapshot.inbox, now)))
    messages.sort(key=lambda m: (m.send_at, m.key))
    return Plan(now=now, messages=tuple(messages), observed=observed), Parts(
        roster, snapshot, parts
    )


def _keepable(
    earlier: Parts | None, roster: Roster, snapshot: Snapshot
) -> Mapping[str, RecommenderPlan]:
    """The earlier parts planned from what a recommender's plan reads now."""
    if earlier is None or not (earlier.snapshot is snapshot or earlier.snapshot == snapshot):
        return {}
    before = earlier.roster
    changed = {p.id for p in roster.programs if not _same(before.programs_by_id.get(p.id), p)}
    keep: dict[str, RecommenderPlan] = {}
    for rec in roster.recommenders:
        part = earlier.by_recommender.get(rec.id)
        if (
            part is not None
            and _same(before.recommenders_by_id.get(rec.id), rec)
            and not any(letter.program in changed for letter in rec.letters)
        ):
            keep[rec.id] = part
    return keep


def _same(before: object, now: object) -> bool:
    return before is now or before == now


def open_letters(roster: Roster, rec: Recommender) -> list[Program]:
    """The programs of ``rec``'s open letters, by deadline, then id."""
    if rec.status not in OPEN_STATUSES:
        return []
    progs = [roster.programs_by_id[lt.program] for lt in rec.letters if lt.submitted_on is None]
    return sorted(progs, key=_deadline_order)


def ask_by_date(rec: Recommender, roster: Roster) -> date | None:
    """The latest date to ask ``rec``: their earliest deadline − ``ask_lead`` (``rec``'s zone)."""
    progs = [roster.programs_by_id[lt.program] for lt in rec.letters]
    if not progs:
        return None
    return _ask_by(min(progs, key=_deadline_order), rec)


@lru_cache(maxsize=16384)
def _date_in(instant: datetime, zone: tzinfo) -> date:
    """The date of ``instant`` in ``zone`` (deadlines repeat across recommenders)."""
    return instant.astimezone(zone).date()


def _ask_by(earliest: Program, rec: Recommender) -> date:
    return _date_in(earliest.deadline, rec.timezone) - timedelta(days=rec.policy.ask_lead)


def _deadline_order(p: Program) -> tuple[datetime, str]:
    return (p.deadline, p.id)


def _log_by_recommender(log: Mapping[str, LogEntry]) -> dict[str, dict[str, LogEntry]]:
    out: dict[str, dict[str, LogEntry]] = {}
    for key, entry in log.items():
        parts = key.split(":", 2)
        if len(parts) >= 2:
            out.setdefault(parts[1], {})[key] = entry
    return out


class _RecommenderPlanner:
    """Plans the messages to one recommender (SPEC §3.0, rules 1–6)."""

    def __init__(
        self,
        roster: Roster,
        rec: Recommender,
        snapshot: Snapshot,
        now: datetime,
        observed: dict[str, datetime],
    ) -> None:
        self.roster = roster
        self.rec = rec
        self.policy = rec.policy
        self.snapshot = snapshot
        self.now = now
        self.observed = observed
        self.clock = Clock(rec)
        self.year = now.astimezone(rec.timezone).year
        self.who = rec.salutation or rec.name
        # The first instant after `now` at which this plan could change (see
        # RecommenderPlan); day labels change with the recipient's year.
        self.until = datetime(self.year + 1, 1, 1, tzinfo=rec.timezone).astimezone(UTC)

    def _note(self, instant: datetime) -> None:
        """The plan depends on whether ``now`` has reached ``instant``."""
        if instant < self.until:
            self.until = instant

    # --- helpers ------------------------------------------------------------

    def _day(self, d: date) -> str:
        return day_label(d, self.year)

    def _seen(self, fact: str) -> date:
        """The date (recipient's zone) lormail first saw ``fact``; today if never."""
        at = self.snapshot.first_seen.get(fact)
        if at is None:
            at = self.observed.setdefault(fact, self.now)
            self._note(self.now)  # "today": holds at this instant only
        return at.astimezone(self.rec.timezone).date()

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.rec.timezone).date()

    def _forward(self, nominal: date, base: str) -> tuple[datetime | None, str]:
        """Rule 1: the slot of the first allowed date on or after ``nominal``."""
        day = self.clock.first_allowed(nominal)
        if day is None:
            return None, base
        if day != nominal:
            why = self.clock.blocked(nominal) or "not allowed"
            base += f"; moved to {self._day(day)}: {self._day(nominal)} {why}"
        return self.clock.slot(day), base

    # --- generation (SPEC §3 table) --------------------------------------------

    def _request(self) -> Iterable[_Candidate]:
        rec = self.rec
        if rec.status != "planned" or not rec.ask_by_email or not rec.letters:
            return
        progs = sorted(
            (self.roster.programs_by_id[lt.program] for lt in rec.letters), key=_deadline_order
        )
        first = progs[0]
        if rec.ask_on is not None:
            nominal = rec.ask_on
            base = f"asking by e-mail on the chosen day, {self._day(nominal)}"
        else:
            nominal = _ask_by(first, rec)
            base = (
                f"{days_phrase(self.policy.ask_lead)} before the earliest deadline "
                f"({first.name}, {self._day(self._local_date(first.deadline))})"
            )
        slot, base = self._forward(nominal, base)
        yield self._cand("request", f"request:{rec.id}", slot, base, progs, nominal)

    def _packet(self, opened: list[Program]) -> Iterable[_Candidate]:
        rec = self.rec
        if rec.status != "agreed" or not opened:
            return
        nominal = rec.agreed_on or self._seen(f"agreed:{rec.id}")
        base = f"{self.who} agreed on {self._day(nominal)}: the packet with materials and deadlines"
        slot, base = self._forward(nominal, base)
        yield self._cand("packet", f"packet:{rec.id}", slot, base, opened, nominal)

    def _cand(
        self,
        kind: str,
        key: str,
        slot: datetime | None,
        base: str,
        progs: list[Program],
        nominal: date,
    ) -> _Candidate:
        """A request or packet: expires at the first of its deadlines still ahead of it."""
        start = slot or self.clock.slot(nominal)
        ahead = [p.deadline for p in progs if p.deadline > start]
        expires = min(ahead) if ahead else max(p.deadline for p in progs)
        cand = _Candidate(key, kind, start, base, expires, tuple(p.id for p in progs))
        if slot is None:
            self._skip(cand, "no allowed day to send it on")
        return cand

    def _reference_date(self) -> date:
        rec = self.rec
        if rec.asked_on is not None:
            return rec.asked_on
        if rec.agreed_on is not None:
            return rec.agreed_on
        return self._seen(f"{rec.status}:{rec.id}")

    def _reminders(self, opened: list[Program]) -> Iterable[_Candidate]:
        if not opened:
            return
        ref = self._reference_date()
        anchor_start: datetime | None = None
        for prog in opened:
            yield from self._series(prog, ref, anchor_start)
            # The next open letter becomes the anchor once this deadline passes.
            anchor_start = (
                prog.deadline if anchor_start is None else max(anchor_start, prog.deadline)
            )

    def _series(
        self, prog: Program, ref: date, anchor_start: datetime | None
    ) -> Iterable[_Candidate]:
        rec = self.rec
        deadline_day = _date_in(prog.deadline, self.rec.timezone)
        guard = prog.deadline - ONE_DAY
        offsets = self.policy.reminders
        for number, offset in enumerate(offsets, start=1):
            nominal = deadline_day - timedelta(days=offset)
            base = (
                f"{days_phrase(offset)} before the {prog.name} deadline, {self._day(deadline_day)}"
            )
            cand = _Candidate(
                key=f"reminder:{rec.id}:{prog.id}:{number}",
                kind="reminder",
                time=self.clock.slot(nominal),
                reason=base,
                expires=prog.deadline,
                programs=(prog.id,),
                number=number,
                series=prog.id,
                guard=guard,
                eff_now=anchor_start,
            )
            yield cand
            if nominal < ref:
                self._skip(
                    cand, f"{self._day(nominal)} is before {self.who} was asked ({self._day(ref)})"
                )
                continue
            slot, cand.reason = self._forward(nominal, base)
            if slot is not None and slot <= guard:
                cand.time = slot
                continue
            # Rule 2: too close to the deadline — the latest allowed date before instead.
            back = self.clock.last_allowed_before(nominal, ref)
            if back is None or back < ref:
                why = self.clock.blocked(nominal) or "too close to the deadline"
                self._skip(
                    cand,
                    f"{self._day(nominal)} {why} and no earlier day after {self._day(ref)} is free",
                )
                continue
            cand.time = self.clock.slot(back)
            blocked = self.clock.blocked(nominal)
            cand.reason = base + (
                f"; {self._day(nominal)} {blocked}, so moved back to {self._day(back)}"
                if blocked
                else f"; moved back to {self._day(back)} to stay clear of the deadline"
            )

    def _thank_you(
        self, opened: list[Program], log: Mapping[str, LogEntry]
    ) -> Iterable[_Candidate]:
        rec = self.rec
        if opened:
            return
        covered: set[str] = set()
        prefix = f"thank_you:{rec.id}:"
        for key, entry in log.items():
            if key.startswith(prefix) and entry.state == LOG_SENT:
                covered.update(key[len(prefix) :].split("+"))
        fresh = sorted(
            (lt for lt in rec.letters if lt.submitted_on is not None and lt.program not in covered),
            key=lambda lt: lt.program,
        )
        if not fresh:
            return
        last = max(lt.submitted_on for lt in fresh if lt.submitted_on is not None)
        nominal = last + timedelta(days=self.policy.thank_you_delay)
        n = len(fresh)
        base = (
            f"{'all letters' if n > 1 else 'the letter'} in; the last on {self._day(last)}"
            f", plus {days_phrase(self.policy.thank_you_delay)}"
        )
        slot, base = self._forward(nominal, base)
        progs = tuple(lt.program for lt in fresh)
        cand = _Candidate(
            f"thank_you:{rec.id}:{'+'.join(progs)}",
            "thank_you",
            slot or self.clock.slot(nominal),
            base,
            None,
            progs,
        )
        if slot is None:
            self._skip(cand, "no allowed day to send it on")
        yield cand

    def _decline_thanks(self) -> Iterable[_Candidate]:
        rec = self.rec
        if rec.status != "declined" or not self.policy.decline_thanks:
            return
        declined = rec.declined_on or self._seen(f"declined:{rec.id}")
        nominal = declined + ONE_DAY
        base = f"{self.who} declined on {self._day(declined)}; thanks all the same"
        slot, base = self._forward(nominal, base)
        start = slot or self.clock.slot(nominal)
        cand = _Candidate(
            f"decline_thanks:{rec.id}", "decline_thanks", start, base, start + DECLINE_THANKS_TTL
        )
        if slot is None:
            self._skip(cand, "no allowed day to send it on")
        yield cand

    def _outcomes(self, log: Mapping[str, LogEntry]) -> Iterable[_Candidate]:
        rec = self.rec
        notify = self.policy.notify_outcomes
        prefix = f"outcome:{rec.id}:"
        covered: set[str] = set()
        for key, entry in log.items():
            if key.startswith(prefix) and entry.state == LOG_SENT:
                covered.update(key[len(prefix) :].split("+"))
        by_day: dict[date, list[tuple[str, str, date]]] = {}
        for lt in rec.letters:
            prog = self.roster.programs_by_id[lt.program]
            if lt.submitted_on is None or prog.outcome not in notify:
                continue
            part = f"{prog.id}:{prog.outcome}"
            if part in covered:
                continue
            known = prog.outcome_on or self._seen(f"outcome:{part}")
            day = self.clock.first_allowed(known) or known
            by_day.setdefault(day, []).append((prog.id, prog.outcome, known))
        for _day, parts in sorted(by_day.items()):
            parts.sort()
            key = prefix + "+".join(f"{p}:{o}" for p, o, _ in parts)
            names = ", ".join(f"{self.roster.programs_by_id[p].name}: {o}" for p, o, _ in parts)
            known = min(k for _, _, k in parts)
            base = f"{names} (known since {self._day(known)})"
            slot, base = self._forward(known, base)
            start = slot or self.clock.slot(known)
            cand = _Candidate(
                key,
                "outcome",
                start,
                base,
                start + OUTCOME_TTL,
                tuple(p for p, _, _ in parts),
                outcomes=tuple((p, o) for p, o, _ in parts),
            )
            if slot is None:
                self._skip(cand, "no allowed day to send it on")
            yield cand

    # --- rules 3–6 -------------------------------------------------------------

    @staticmethod
    def _skip(cand: _Candidate, why: str) -> None:
        cand.status = SKIPPED
        cand.reason = f"skipped: {why}; was: {cand.reason}"

    def run(self, log: Mapping[str, LogEntry]) -> list[PlannedMessage]:
        opened = open_letters(self.roster, self.rec)
        cands: list[_Candidate] = [
            *self._request(),
            *self._packet(opened),
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
        out = [self._freeze(c) for c in cands]
        generated = {c.key for c in cands}
        out.extend(self._log_only(log, generated))
        return out

    def _apply_log(self, cands: list[_Candidate], log: Mapping[str, LogEntry]) -> None:
        final_states = {LOG_SENT: SENT, LOG_FAILED: FAILED, LOG_SKIPPED: SKIPPED}
        for cand in cands:
            entry = log.get(cand.key)
            if entry is None:
                continue
            if entry.state in final_states:
                cand.status = final_states[entry.state]
                cand.time = entry.at
                if entry.state == LOG_SENT:
                    cand.reason = f"sent {self._day(self._local_date(entry.at))}; {cand.reason}"
                elif entry.error:
                    cand.reason = f"{cand.status}: {entry.error}; was: {cand.reason}"
            elif entry.state == LOG_DRY_RUN:
                cand.dry_run = True
            elif entry.retry_at is not None and cand.status is None:
                cand.retry_at = entry.retry_at

    def _catch_up(self, cands: list[_Candidate]) -> None:
        """Rule 3: what is overdue goes at the first chance; a series keeps only its latest."""
        # A reminder superseded once stays superseded: after a later one of its
        # series went, the earlier is never sent (it was skipped at that time).
        went: dict[str, _Candidate] = {}
        for cand in cands:
            if cand.series is not None and cand.status in (SENT, FAILED):
                prev = went.get(cand.series)
                if prev is None or (cand.number or 0) > (prev.number or 0):
                    went[cand.series] = cand
        latest_overdue: dict[str, _Candidate] = {}
        for cand in cands:
            if cand.status is not None:
                continue
            later = went.get(cand.series or "")
            if later is not None and (later.number or 0) > (cand.number or 0):
                self._skip(cand, f"superseded by reminder {later.number}")
                continue
            eff_now = self.now if cand.eff_now is None else max(self.now, cand.eff_now)
            if cand.retry_at is not None and cand.retry_at > cand.time:
                moved = self.clock.next_in_window(cand.retry_at)
                if moved is not None:
                    cand.time = moved
                cand.reason += "; retrying after a temporary failure" + (
                    f" ({self.snapshot.log[cand.key].error})"
                    if self.snapshot.log[cand.key].error
                    else ""
                )
            if cand.time >= eff_now:
                self._note(cand.time)  # overdue once now passes it
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
            moved = self.clock.next_in_window(eff_now)
            if moved is not None:
                self._note(moved)  # the first chance is later once now passes it
            overdue_since = self._day(self._local_date(cand.time))
            if moved is None:
                self._skip(cand, "no allowed day to send it on")
                continue
            cand.time = moved
            cand.reason += f"; overdue since {overdue_since}, so at the first chance"

    def _gap_walk(self, cands: list[_Candidate], sent_times: list[datetime]) -> None:
        """Rules 4 and 5: keep ``min_gap`` between messages, then expire what is too late."""
        gap = self.policy.min_gap
        heap: list[tuple[datetime, int, str, int]] = [
            (c.time, KIND_ORDER[c.kind], c.key, i) for i, c in enumerate(cands) if c.status is None
        ]
        heap.extend((t, -1, "", -1) for t in sent_times)
        heapq.heapify(heap)
        prev: datetime | None = None
        while heap:
            time, order, key, index = heapq.heappop(heap)
            if index < 0:
                prev = time if prev is None else max(prev, time)
                continue
            cand = cands[index]
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
            if cand.expires is not None and time >= cand.expires:
                cand.status = EXPIRED
                cand.reason = f"expired: too late by {self._day(self._local_date(time))}; " + (
                    cand.reason
                )
                continue
            if cand.gap_moved and cand.guard is not None and time > cand.guard:
                self._skip(cand, "the gap would put it within a day of the deadline")
                continue
            cand.status = DUE if time <= self.now else SCHEDULED
            self._note(max(time, self.now))  # due once now reaches it
            if cand.status == DUE and cand.dry_run:
                cand.status = DRY_RUN
            prev = time

    @staticmethod
    def _mark_final(cands: list[_Candidate]) -> None:
        last: dict[str, _Candidate] = {}
        for cand in cands:
            if cand.series is None or cand.status not in (SCHEDULED, DUE, DRY_RUN):
                continue
            cur = last.get(cand.series)
            if cur is None or (cand.number or 0) > (cur.number or 0):
                last[cand.series] = cand
        for cand in last.values():
            cand.final = True

    def _freeze(self, c: _Candidate) -> PlannedMessage:
        return PlannedMessage(
            key=c.key,
            kind=c.kind,
            recommender=self.rec.id,
            to=self.rec.email,
            send_at=_utc(c.time),
            expires_at=_utc(c.expires) if c.expires else None,
            status=c.status or SKIPPED,
            reason=c.reason + (" (final reminder)" if c.final else ""),
            programs=c.programs,
            reminder_number=c.number,
            final_reminder=c.final,
            outcomes=c.outcomes,
        )

    def _log_only(
        self, log: Mapping[str, LogEntry], generated: set[str]
    ) -> Iterable[PlannedMessage]:
        """Logged messages the roster no longer plans: shown, never sent again."""
        shown = {LOG_SENT: SENT, LOG_FAILED: FAILED, LOG_DRY_RUN: DRY_RUN}
        for key, entry in sorted(log.items()):
            if key in generated:
                continue
            kind = key.split(":", 1)[0]
            if kind not in KIND_ORDER:
                continue
            status = shown.get(entry.state, SKIPPED)
            reason = "logged; no longer in the roster's plan"
            if entry.error:
                reason += f" ({entry.error})"
            yield PlannedMessage(
                key=key,
                kind=kind,
                recommender=self.rec.id,
                to=self.rec.email,
                send_at=entry.at.astimezone(UTC),
                expires_at=None,
                status=status,
                reason=reason,
            )


def _utc(instant: datetime) -> datetime:
    return instant if instant.tzinfo is UTC else instant.astimezone(UTC)


def _gap_phrase(gap: timedelta) -> str:
    if gap % ONE_DAY == timedelta(0):
        return days_phrase(gap.days)
    hours = gap.total_seconds() / 3600
    return f"{hours:g} hours"
