"""Candidate messages: what SPEC §3's table says may go to one recommender, and when.

Pure, like the planner that places them (:mod:`lormail.core.plan`): each
candidate has its key, its first slot (rules 1 and 2 of SPEC §3.0) and its
reason; the planner then applies catch-up, the gap with its rounds, and expiry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from lormail.core.slots import Clock, day_label, days_phrase
from lormail.model import (
    LOG_SENT,
    SKIPPED,
    Letter,
    LogEntry,
    Recommender,
    Roster,
    Snapshot,
)

ONE_DAY = timedelta(days=1)
DECLINE_THANKS_TTL = timedelta(days=30)
OUTCOME_TTL = timedelta(days=90)
OPEN_STATUSES = frozenset({"asked", "agreed"})


@dataclass(slots=True)
class Candidate:
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
    joined: list[Candidate] = field(default_factory=list)

    @property
    def series(self) -> str | None:
        """A reminder's letter key: each open letter has its own series."""
        return self.letters[0].key if self.kind == "reminder" else None


def open_letters(rec: Recommender) -> list[Letter]:
    """``rec``'s open letters (not submitted, ``rec`` asked or agreed), by deadline, then key."""
    if rec.status not in OPEN_STATUSES:
        return []
    return sorted((lt for lt in rec.letters if lt.submitted_on is None), key=deadline_order)


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
    first = min(rec.letters, key=deadline_order)
    return shown_deadline(first, rec) - timedelta(days=rec.policy.ask_lead)


def deadline_order(lt: Letter) -> tuple[datetime, str]:
    return (lt.deadline, lt.key)


def letter_programs(letters: Iterable[Letter]) -> tuple[str, ...]:
    return tuple(p for lt in letters for p in lt.programs)


class Generator:
    """One recommender's candidate messages (SPEC §3's table, rules 1 and 2), and the
    helpers the placing rules share."""

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
    ) -> Candidate:
        """A request, packet or follow-up: expires at the first deadline still ahead of it."""
        slot, base = self._forward(nominal, base)
        start = slot or self.clock.slot(nominal)
        ahead = [lt.deadline for lt in letters if lt.deadline > start]
        expires = min(ahead) if ahead else max((lt.deadline for lt in letters), default=start)
        cand = Candidate(key, kind, start, base, expires, tuple(letters))
        if slot is None:
            self._skip(cand, "no allowed day to send it on")
        return cand

    # --- generation (SPEC §3 table) --------------------------------------------

    def _request(self) -> Iterable[Candidate]:
        rec = self.rec
        if rec.status != "planned" or not rec.ask_by_email or not rec.letters:
            return
        letters = sorted(rec.letters, key=deadline_order)
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

    def _followup(self, log: Mapping[str, LogEntry]) -> Iterable[Candidate]:
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
        letters = sorted(rec.letters, key=deadline_order)
        cand = self._ahead("request_followup", f"request_followup:{rec.id}", nominal, base, letters)
        cand.request_date = asked
        yield cand

    def _packet(self, opened: list[Letter]) -> Iterable[Candidate]:
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

    def _reminders(self, opened: list[Letter]) -> Iterable[Candidate]:
        if not opened:
            return
        ref = self._reference_date()
        for letter in opened:
            yield from self._series(letter, ref)

    def _series(self, letter: Letter, ref: date) -> Iterable[Candidate]:
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
            cand = Candidate(
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

    def _thank_you(self, opened: list[Letter], log: Mapping[str, LogEntry]) -> Iterable[Candidate]:
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
        cand = Candidate(key, "thank_you", slot or self.clock.slot(nominal), base, None)
        cand.letters = tuple(sorted(fresh, key=deadline_order))
        if slot is None:
            self._skip(cand, "no allowed day to send it on")
        yield cand

    def _decline_thanks(self) -> Iterable[Candidate]:
        rec = self.rec
        if rec.status != "declined" or not self.policy.decline_thanks:
            return
        declined = rec.declined_on or self._seen(f"declined:{rec.id}")
        nominal = declined + ONE_DAY
        base = f"{self.who} declined on {self._day(declined)}; thanks all the same"
        slot, base = self._forward(nominal, base)
        start = slot or self.clock.slot(nominal)
        cand = Candidate(
            f"decline_thanks:{rec.id}", "decline_thanks", start, base, start + DECLINE_THANKS_TTL
        )
        if slot is None:
            self._skip(cand, "no allowed day to send it on")
        yield cand

    def _outcomes(self, log: Mapping[str, LogEntry]) -> Iterable[Candidate]:
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
            cand = Candidate(key, "outcome", start, base, start + OUTCOME_TTL)
            cand.programs = tuple(p for p, _, _ in parts)
            cand.outcomes = tuple((p, o) for p, o, _ in parts)
            if slot is None:
                self._skip(cand, "no allowed day to send it on")
            yield cand

    # --- rules 3–6 -------------------------------------------------------------

    @staticmethod
    def _skip(cand: Candidate, why: str) -> None:
        cand.status = SKIPPED
        cand.reason = f"skipped: {why}; was: {cand.reason}"
