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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

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
    Letter,
    LogEntry,
    Plan,
    PlannedMessage,
    Recommender,
    Roster,
    Snapshot,
)

ONE_DAY = timedelta(days=1)
DECLINE_THANKS_TTL = timedelta(days=30)
OUTCOME_TTL = timedelta(days=90)
OPEN_STATUSES = frozenset({"asked", "agreed"})
# Kinds that reply in the thread of the last message sent (SPEC §3.2).
REPLY_KINDS = frozenset({"reminder", "request_followup"})
_PLACED = (SCHEDULED, DUE, DRY_RUN)

__all__ = ["ask_by_date", "open_letters", "plan", "shown_deadline"]


@dataclass(slots=True)
class _Candidate:
    """A message being placed.  Mutable while the rules run; frozen on output."""

    key: str
    kind: str
    time: datetime  # UTC
    reason: str
    expires: datetime | None = None
    letters: tuple[Letter, ...] = ()
    number: int | None = None  # reminder N
    guard: datetime | None = None  # reminder: deadline − 1 day
    outcomes: tuple[tuple[str, str], ...] = ()
    programs: tuple[str, ...] = ()  # outcome: the programs; else from the letters
    status: str | None = None  # set once final
    retry_at: datetime | None = None
    dry_run: bool = False
    gap_moved: bool = False
    final: bool = False
    first_contact: bool = False
    request_date: date | None = None
    subject: str | None = None
    joined: list[_Candidate] = field(default_factory=list)

    @property
    def series(self) -> str | None:
        """A reminder's letter key: each open letter has its own series."""
        return self.letters[0].key if self.kind == "reminder" else None


def plan(roster: Roster, snapshot: Snapshot, now: datetime) -> Plan:
    """Every message of every recommender as of ``now``, sorted by send_at, then key."""
    now = now.astimezone(UTC)
    observed: dict[str, datetime] = {}
    by_recommender = _log_by_recommender(snapshot.log)
    messages: list[PlannedMessage] = []
    for rec in roster.recommenders:
        planner = _RecommenderPlanner(roster, rec, snapshot, now, observed)
        messages.extend(planner.run(by_recommender.get(rec.id, {})))
    messages.sort(key=lambda m: (m.send_at, m.key))
    return Plan(now=now, messages=tuple(messages), observed=observed)


def open_letters(rec: Recommender) -> list[Letter]:
    """``rec``'s open letters (not submitted, ``rec`` asked or agreed), by deadline, then key."""
    if rec.status not in OPEN_STATUSES:
        return []
    return sorted((lt for lt in rec.letters if lt.submitted_on is None), key=_deadline_order)


def shown_deadline(letter: Letter, rec: Recommender) -> date:
    """The deadline's date as shown to ``rec``: a date-only deadline is that date everywhere;
    a timestamp is read in ``rec``'s zone."""
    if letter.deadline_is_date:
        return letter.deadline_date
    return letter.deadline.astimezone(rec.timezone).date()


def ask_by_date(rec: Recommender, roster: Roster | None = None) -> date | None:
    """The latest date to ask ``rec``: their earliest deadline − ``ask_lead``."""
    if roster is not None:  # the roster's own entry, its letters complete
        rec = roster.recommenders_by_id.get(rec.id, rec)
    if not rec.letters:
        return None
    first = min(rec.letters, key=_deadline_order)
    return shown_deadline(first, rec) - timedelta(days=rec.policy.ask_lead)


def _deadline_order(lt: Letter) -> tuple[datetime, str]:
    return (lt.deadline, lt.key)


def _programs(letters: Iterable[Letter]) -> tuple[str, ...]:
    return tuple(p for lt in letters for p in lt.programs)


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
        self.clock = Clock(rec, roster.unavailable)
        self.year = now.astimezone(rec.timezone).year
        self.who = rec.salutation or rec.name

    # --- helpers ------------------------------------------------------------

    def _day(self, d: date) -> str:
        return day_label(d, self.year)

    def _seen(self, fact: str) -> date:
        """The date (recipient's zone) lormail first saw ``fact``; today if never."""
        at = self.snapshot.first_seen.get(fact)
        if at is None:
            at = self.observed.setdefault(fact, self.now)
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

    def _ahead(
        self, kind: str, key: str, nominal: date, base: str, letters: list[Letter]
    ) -> _Candidate:
        """A request, packet or follow-up: expires at the first deadline still ahead of it."""
        slot, base = self._forward(nominal, base)
        start = slot or self.clock.slot(nominal)
        ahead = [lt.deadline for lt in letters if lt.deadline > start]
        expires = min(ahead) if ahead else max((lt.deadline for lt in letters), default=start)
        cand = _Candidate(key, kind, start, base, expires, tuple(letters))
        if slot is None:
            self._skip(cand, "no allowed day to send it on")
        return cand

    # --- generation (SPEC §3 table) --------------------------------------------

    def _request(self) -> Iterable[_Candidate]:
        rec = self.rec
        if rec.status != "planned" or not rec.ask_by_email or not rec.letters:
            return
        letters = sorted(rec.letters, key=_deadline_order)
        first = letters[0]
        if rec.ask_on is not None:
            nominal = rec.ask_on
            base = f"asking by e-mail on the chosen day, {self._day(nominal)}"
        else:
            nominal = shown_deadline(first, rec) - timedelta(days=self.policy.ask_lead)
            base = (
                f"{days_phrase(self.policy.ask_lead)} before the earliest deadline "
                f"({first.name}, {self._day(shown_deadline(first, rec))})"
            )
        yield self._ahead("request", f"request:{rec.id}", nominal, base, letters)

    def _followup(self, log: Mapping[str, LogEntry]) -> Iterable[_Candidate]:
        rec = self.rec
        entry = log.get(f"request:{rec.id}")
        if rec.status != "planned" or entry is None or entry.state != LOG_SENT:
            return
        asked = self._local_date(entry.at)
        nominal = asked + timedelta(days=self.policy.followup_after)
        base = (
            f"no answer yet to the request of {self._day(asked)}; "
            f"{days_phrase(self.policy.followup_after)} later"
        )
        letters = sorted(rec.letters, key=_deadline_order)
        cand = self._ahead("request_followup", f"request_followup:{rec.id}", nominal, base, letters)
        cand.request_date = asked
        yield cand

    def _packet(self, opened: list[Letter]) -> Iterable[_Candidate]:
        rec = self.rec
        if rec.status != "agreed" or not opened:
            return
        nominal = rec.agreed_on or self._seen(f"agreed:{rec.id}")
        base = f"{self.who} agreed on {self._day(nominal)}: the packet with materials and deadlines"
        yield self._ahead("packet", f"packet:{rec.id}", nominal, base, opened)

    def _reference_date(self) -> date:
        rec = self.rec
        if rec.asked_on is not None:
            return rec.asked_on
        if rec.agreed_on is not None:
            return rec.agreed_on
        return self._seen(f"{rec.status}:{rec.id}")

    def _reminders(self, opened: list[Letter]) -> Iterable[_Candidate]:
        if not opened:
            return
        ref = self._reference_date()
        for letter in opened:
            yield from self._series(letter, ref)

    def _series(self, letter: Letter, ref: date) -> Iterable[_Candidate]:
        """Rules 1 and 2 for one letter's reminders."""
        rec = self.rec
        deadline_day = shown_deadline(letter, rec)
        guard = letter.deadline - ONE_DAY
        for number, offset in enumerate(self.policy.reminders, start=1):
            nominal = deadline_day - timedelta(days=offset)
            base = (
                f"{days_phrase(offset)} before the {letter.name} deadline, "
                f"{self._day(deadline_day)}"
            )
            cand = _Candidate(
                key=f"reminder:{rec.id}:{letter.key}:{number}",
                kind="reminder",
                time=self.clock.slot(nominal),
                reason=base,
                expires=letter.deadline,
                letters=(letter,),
                number=number,
                guard=guard,
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
            if back is None or self.clock.slot(back) > guard:
                why = self.clock.blocked(nominal) or "is too close to the deadline"
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

    def _covered(self, log: Mapping[str, LogEntry], kind: str) -> set[str]:
        """The parts (letter keys, P:OUTCOME) that sent messages of ``kind`` covered."""
        prefix = f"{kind}:{self.rec.id}:"
        out: set[str] = set()
        for key, entry in log.items():
            if key.startswith(prefix) and entry.state == LOG_SENT:
                out.update(key[len(prefix) :].split("+"))
        return out

    def _thank_you(self, opened: list[Letter], log: Mapping[str, LogEntry]) -> Iterable[_Candidate]:
        rec = self.rec
        # A letter whose deadline passed unsubmitted no longer holds it back.
        if any(lt.deadline > self.now for lt in opened):
            return
        covered = self._covered(log, "thank_you")
        fresh = sorted(
            (lt for lt in rec.letters if lt.submitted_on is not None and lt.key not in covered),
            key=lambda lt: lt.key,
        )
        if not fresh:
            return
        last = max(lt.submitted_on for lt in fresh if lt.submitted_on is not None)
        nominal = last + timedelta(days=self.policy.thank_you_delay)
        base = (
            f"{'all letters' if len(fresh) > 1 else 'the letter'} in; the last on "
            f"{self._day(last)}, plus {days_phrase(self.policy.thank_you_delay)}"
        )
        slot, base = self._forward(nominal, base)
        key = f"thank_you:{rec.id}:{'+'.join(lt.key for lt in fresh)}"
        cand = _Candidate(key, "thank_you", slot or self.clock.slot(nominal), base, None)
        cand.letters = tuple(sorted(fresh, key=_deadline_order))
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
        """Outcomes stay per program: for P once the letter covering P was submitted."""
        rec = self.rec
        notify = self.policy.notify_outcomes
        covered = self._covered(log, "outcome")
        by_day: dict[date, list[tuple[str, str, date]]] = {}
        for lt in rec.letters:
            if lt.submitted_on is None:
                continue
            for pid in lt.programs:
                prog = self.roster.programs_by_id[pid]
                part = f"{prog.id}:{prog.outcome}"
                if prog.outcome not in notify or part in covered:
                    continue
                known = prog.outcome_on or self._seen(f"outcome:{part}")
                day = self.clock.first_allowed(known) or known
                by_day.setdefault(day, []).append((prog.id, prog.outcome, known))
        for _day, parts in sorted(by_day.items()):
            parts.sort()
            key = f"outcome:{rec.id}:" + "+".join(f"{p}:{o}" for p, o, _ in parts)
            names = ", ".join(f"{self.roster.programs_by_id[p].name}: {o}" for p, o, _ in parts)
            known = min(k for _, _, k in parts)
            slot, base = self._forward(known, f"{names} (known since {self._day(known)})")
            start = slot or self.clock.slot(known)
            cand = _Candidate(key, "outcome", start, base, start + OUTCOME_TTL)
            cand.programs = tuple(p for p, _, _ in parts)
            cand.outcomes = tuple((p, o) for p, o, _ in parts)
            if slot is None:
                self._skip(cand, "no allowed day to send it on")
            yield cand

    # --- rules 3–6 -------------------------------------------------------------

    @staticmethod
    def _skip(cand: _Candidate, why: str) -> None:
        cand.status = SKIPPED
        cand.reason = f"skipped: {why}; was: {cand.reason}"

    def run(self, log: Mapping[str, LogEntry]) -> list[PlannedMessage]:
        opened = open_letters(self.rec)
        cands: list[_Candidate] = [
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
        self._gap_walk(cands, [e.at for e in log.values() if e.state == LOG_SENT])
        self._mark_final(cands)
        out = [self._freeze(c) for c in cands if c.status != _JOINED]
        generated = {c.key for c in cands}
        out.extend(self._log_only(log, generated))
        return out

    def _apply_log(self, cands: list[_Candidate], log: Mapping[str, LogEntry]) -> None:
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
        return entry.to is not None and entry.to.strip().lower() != self.rec.email.lower()

    def _catch_up(self, cands: list[_Candidate]) -> None:
        """Rule 3: what is overdue goes at the first chance; a series keeps only its latest."""
        # A reminder superseded once stays superseded: after a later one of its
        # series went, the earlier is never sent (it was skipped at that time).
        went: dict[str, int] = {}
        for cand in cands:
            if cand.series is not None and cand.status in (SENT, FAILED):
                went[cand.series] = max(went.get(cand.series, 0), cand.number or 0)
        latest_overdue: dict[str, _Candidate] = {}
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

    def _gap_walk(self, cands: list[_Candidate], sent_times: list[datetime]) -> None:
        """Rules 4 and 5: ``min_gap`` between messages, reminder rounds, then expiry."""
        gap = self.policy.min_gap
        heap: list[tuple[datetime, int, str, int]] = [
            (c.time, KIND_ORDER[c.kind], c.key, i) for i, c in enumerate(cands) if c.status is None
        ]
        heap.extend((t, -1, "", -1) for t in sent_times)
        heapq.heapify(heap)
        prev: datetime | None = None
        round_: _Candidate | None = None  # the last reminder placed (not yet sent)
        contacted = bool(sent_times)
        while heap:
            time, order, key, index = heapq.heappop(heap)
            if index < 0:
                prev = time if prev is None else max(prev, time)
                continue
            cand = cands[index]
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
            if cand.gap_moved and cand.guard is not None and time > cand.guard:
                # Rule 5: a reminder the gap pushed within a day of the deadline.
                self._skip(cand, "the gap would put it within a day of the deadline")
                continue
            if cand.expires is not None and time >= cand.expires:
                cand.status = EXPIRED
                cand.reason = (
                    f"expired: too late by {self._day(self._local_date(time))}; {cand.reason}"
                )
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
    def _mark_final(cands: list[_Candidate]) -> None:
        """ "Last" wording only when no further reminder at all follows, for any letter."""
        rounds = [c for c in cands if c.kind == "reminder" and c.status in _PLACED]
        if rounds:
            max(rounds, key=lambda c: (c.time, c.key)).final = True

    def _freeze(self, c: _Candidate) -> PlannedMessage:
        members = [c, *c.joined]
        letters = tuple(sorted({lt for m in members for lt in m.letters}, key=_deadline_order))
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
            programs=c.programs or _programs(letters),
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
                subject=entry.subject or "",
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
