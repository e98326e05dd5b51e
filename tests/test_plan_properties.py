"""Hypothesis properties of the planner over generated rosters, runs and `now`.

A run is simulated the way the daemon lives it: at a few increasing instants
the planner is asked what is due, and what is due is recorded as sent (with
the first-seen facts it observed).  The invariants must hold at every step.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lormail.core.plan import plan
from lormail.core.slots import Clock
from lormail.model import (
    EMPTY_SNAPSHOT,
    GAP_EXEMPT,
    Letter,
    LogEntry,
    Plan,
    Policy,
    Program,
    Recommender,
    Roster,
    Snapshot,
    Unavailable,
)
from tests.builders import CHICAGO, KOLKATA, LA, LONDON, NY, SYDNEY, roster

ZONES = [NY, CHICAGO, LA, LONDON, KOLKATA, SYDNEY]
START = date(2026, 8, 1)
ACTIVE = ("scheduled", "due")


def days(lo: int, hi: int) -> st.SearchStrategy[date]:
    return st.integers(lo, hi).map(lambda n: START + timedelta(days=n))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    start_h = draw(st.integers(6, 12))
    return Policy(
        ask_lead=draw(st.sampled_from([14, 28, 42])),
        reminders=tuple(sorted(draw(st.sets(st.integers(1, 21), max_size=3)), reverse=True)),
        min_gap=draw(st.sampled_from([timedelta(hours=12), timedelta(days=2), timedelta(days=5)])),
        thank_you_delay=draw(st.integers(0, 3)),
        window_start=time(start_h, draw(st.sampled_from([0, 30]))),
        window_end=time(start_h + draw(st.integers(1, 9)), 0),
        send_days=frozenset(draw(st.sets(st.integers(0, 6), min_size=1))),
        decline_thanks=draw(st.booleans()),
        notify_outcomes=frozenset({"interview", "accepted", "matched"}),
    )


@st.composite
def rosters(draw: st.DrawFn) -> Roster:
    n_prog = draw(st.integers(1, 4))
    programs = []
    for i in range(n_prog):
        zone = draw(st.sampled_from(ZONES))
        day = draw(days(20, 200))
        outcome = draw(st.sampled_from(["pending", "interview", "matched", "rejected"]))
        programs.append(
            Program(
                id=f"p{i}",
                name=f"Program {i}",
                deadline=datetime.combine(day, time(23, 59, 59), tzinfo=zone),
                deadline_is_date=True,
                timezone=zone,
                outcome=outcome,
                outcome_on=draw(st.none() | days(100, 220)) if outcome != "pending" else None,
            )
        )
    recs = []
    for j in range(draw(st.integers(1, 3))):
        status = draw(st.sampled_from(["planned", "asked", "agreed", "declined"]))
        chosen = draw(
            st.lists(
                st.sampled_from(programs), min_size=1, max_size=n_prog, unique_by=lambda p: p.id
            )
        )
        # Some letters serve several programs (ERAS-like), some have their own due date.
        cut = draw(st.integers(1, len(chosen)))
        groups = [chosen[:cut], chosen[cut:]] if draw(st.booleans()) else [[p] for p in chosen]
        letters = tuple(
            Letter(
                f"L{k}" if len(group) > 1 else group[0].id,
                submitted_on=draw(st.none() | days(10, 200))
                if status in ("asked", "agreed")
                else None,
                programs=tuple(p.id for p in group),
                **(_due(draw) if len(group) > 1 else {}),  # type: ignore[arg-type]
            )
            for k, group in enumerate(groups)
            if group
        )
        away = tuple(
            Unavailable(a, a + timedelta(days=draw(st.integers(0, 20))), "away")
            for a in draw(st.lists(days(0, 200), max_size=2))
        )
        recs.append(
            Recommender(
                id=f"r{j}",
                name=f"Dr. R{j}",
                email=f"r{j}@example.org",
                timezone=draw(st.sampled_from(ZONES)),
                status=status,
                policy=draw(policies()),
                salutation=f"Dr. R{j}",
                ask_on=draw(st.none() | days(0, 150)),
                ask_by_email=draw(st.booleans()),
                asked_on=draw(st.none() | days(0, 60)),
                agreed_on=draw(st.none() | days(0, 90)),
                declined_on=draw(st.none() | days(0, 90)),
                unavailable=away,
                letters=letters,
                holidays=draw(st.sampled_from([None, ("US", None), ("DE", "BY")])),
            )
        )
    everyone = tuple(
        Unavailable(a, a + timedelta(days=draw(st.integers(0, 9))), "break")
        for a in draw(st.lists(days(0, 200), max_size=1))
    )
    return replace(roster(programs, recs), unavailable=everyone)


def _due(draw: st.DrawFn) -> dict[str, object]:
    """An own due date for a several-program letter, or none."""
    day = draw(st.none() | days(15, 200))
    if day is None:
        return {}
    return {
        "due": datetime.combine(day, time(23, 59, 59), tzinfo=NY),
        "due_is_date": True,
        "own_name": "Letter service",
    }


instants = st.integers(0, 230 * 24 * 4).map(
    lambda q: datetime.combine(START, time(0), tzinfo=UTC) + timedelta(minutes=15 * q)
)


def record_due(snapshot: Snapshot, p: Plan) -> Snapshot:
    """What send-due does: every due message sent now (a round: each reminder it joined),
    first-seen facts kept.  Nothing goes twice."""
    log = dict(snapshot.log)
    for m in p.messages:
        if m.status == "due":
            for key in m.joined or (m.key,):
                assert key not in log or log[key].state != "sent", (m, "sent twice")
                log[key] = LogEntry(key, "sent", m.send_at)
    first_seen = {**p.observed, **snapshot.first_seen}
    return Snapshot(log=log, first_seen=first_seen)


def as_json(p: Plan) -> str:
    return json.dumps(
        [
            [
                m.key,
                m.send_at.isoformat(),
                m.expires_at and m.expires_at.isoformat(),
                m.status,
                m.reason,
            ]
            for m in p.messages
        ]
    )


def check_invariants(r: Roster, p: Plan, snapshot: Snapshot) -> None:
    for rec in r.recommenders:
        mine = [m for m in p.messages if m.recommender == rec.id]
        clock = Clock(rec, r.unavailable)
        letters = {lt.key: lt for lt in rec.letters}
        submitted = {lt.key for lt in rec.letters if lt.submitted_on is not None}
        # Every reminder key that went or will go, through whichever round.
        reminded: set[str] = {
            k
            for k, e in snapshot.log.items()
            if k.startswith(f"reminder:{rec.id}:") and e.state == "sent"
        }
        for m in mine:
            live = m.status in (*ACTIVE, "sent")
            if m.kind == "reminder" and live:
                assert m.letters, m
                for key in m.letters:
                    letter = letters[key]
                    assert m.send_at < letter.deadline, (m, "reminder at or after its deadline")
                    if m.status in ACTIVE:
                        assert m.send_at <= letter.deadline - timedelta(days=1), (
                            m,
                            "reminder within a day of its deadline",
                        )
                        assert key not in submitted, (m, "reminder for a submitted letter")
                reminded.update(m.joined or (m.key,))
            if m.status in ACTIVE:
                assert clock.in_window(m.send_at), (m, "outside the window/days/availability")
                assert m.send_at >= p.now or m.status == "sent"
        series: dict[str, int] = {}
        for key in reminded:
            letter_key = key.split(":")[2]
            series[letter_key] = series.get(letter_key, 0) + 1
        for count in series.values():
            assert count <= len(rec.policy.reminders), "more reminders than the cap"
        # "Last" wording only on the final round.
        finals = [m for m in mine if m.final_reminder and m.status in ACTIVE]
        later = [m for m in mine if m.kind == "reminder" and m.status in ACTIVE]
        for m in finals:
            assert all(x.send_at <= m.send_at for x in later), (m, "a reminder after the last")
        # Within a series, reminders go in order: none after a later-numbered one.
        went: dict[str, int] = {}
        for key in reminded:
            # A queued retry (or a dry run) goes again under its own number: only a
            # reminder that went, or ended, orders the series.
            entry = snapshot.log.get(key)
            if entry is not None and entry.state in ("sent", "failed", "skipped"):
                _, _, letter_key, n = key.split(":")
                went[letter_key] = max(went.get(letter_key, 0), int(n))
        for m in mine:
            if m.kind == "reminder" and m.status in ACTIVE:
                for key in m.joined or (m.key,):
                    _, _, letter_key, n = key.split(":")
                    assert int(n) > went.get(letter_key, 0), (m, "out of order")
        # min_gap: a movable message keeps min_gap after every earlier message.
        live_msgs = sorted(
            (m for m in mine if m.status in (*ACTIVE, "sent")), key=lambda m: m.send_at
        )
        for m in live_msgs:
            if m.kind in GAP_EXEMPT or m.status == "sent":
                continue
            for x in live_msgs:
                if x is m or x.send_at > m.send_at:
                    continue
                if x.send_at == m.send_at and x.kind in GAP_EXEMPT:
                    continue  # exempt kinds go after movable ones at the same instant
                assert m.send_at - x.send_at >= rec.policy.min_gap, (m, x, "min_gap")


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    r=rosters(),
    start=instants.filter(lambda t: t.date() < START + timedelta(days=60)),
    naps=st.lists(st.integers(1, 24 * 20), min_size=20, max_size=80),
)
def test_invariants_hold_through_a_simulated_run(
    r: Roster, start: datetime, naps: list[int]
) -> None:
    """Like the daemon: wake at the next send_at, or earlier; sometimes sleep for days."""
    snapshot = EMPTY_SNAPSHOT
    now = start
    rounds = False
    for nap in naps:
        p = plan(r, snapshot, now)
        check_invariants(r, p, snapshot)
        rounds = rounds or any(m.joined for m in p.messages)
        # Deterministic: the same inputs give the same plan, byte for byte.
        assert as_json(plan(r, snapshot, now)) == as_json(p)
        snapshot = record_due(snapshot, p)
        # Once what was due is recorded as sent, nothing is due at the same now.
        again = plan(r, snapshot, now)
        assert [m.key for m in again.messages if m.status == "due"] == []
        check_invariants(r, again, snapshot)
        upcoming = [m.send_at for m in again.messages if m.status == "scheduled"]
        woke = now + timedelta(hours=nap)
        now = min([woke, *upcoming]) if nap < 24 * 10 else woke  # long naps: a laptop asleep
    n = len([e for e in snapshot.log.values() if e.state == "sent"])
    event(f"messages sent in the run: {min(n, 5)}{'+' if n >= 5 else ''}")
    event(f"reminder rounds joining letters: {'yes' if rounds else 'no'}")


@settings(max_examples=60, deadline=None)
@given(r=rosters(), now=instants)
def test_a_later_deadline_edit_never_adds_reminders_beyond_the_cap(
    r: Roster, now: datetime
) -> None:
    snapshot = record_due(EMPTY_SNAPSHOT, plan(r, EMPTY_SNAPSHOT, now))
    later = timedelta(days=30)
    moved = replace(
        r,
        programs=tuple(replace(p, deadline=p.deadline + later) for p in r.programs),
        programs_by_id={},
    )
    check_invariants(moved, plan(moved, snapshot, now + timedelta(days=1)), snapshot)


FATES = st.sampled_from(["sent", "sent", "failed", "retry", "dry-run"])


def record_fates(snapshot: Snapshot, p: Plan, fates: list[str]) -> Snapshot:
    """Like :func:`record_due`, but a due message may also fail, be retried or be a dry run."""
    log = dict(snapshot.log)
    for i, m in enumerate(x for x in p.messages if x.status == "due"):
        fate = fates[i % len(fates)] if fates else "sent"
        if fate == "retry":
            log[m.key] = LogEntry(
                m.key, "queued", m.send_at, retry_at=m.send_at + timedelta(hours=3), error="421"
            )
        else:
            for key in m.joined or (m.key,):
                log[key] = LogEntry(key, fate, m.send_at)
    return Snapshot(log=log, first_seen={**p.observed, **snapshot.first_seen})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    r=rosters(),
    start=instants,
    naps=st.lists(st.integers(1, 24 * 20), min_size=5, max_size=30),
    fates=st.lists(FATES, max_size=4),
)
def test_invariants_hold_when_messages_fail_retry_or_dry_run(
    r: Roster, start: datetime, naps: list[int], fates: list[str]
) -> None:
    snapshot = EMPTY_SNAPSHOT
    now = start
    for nap in naps:
        p = plan(r, snapshot, now)
        check_invariants(r, p, snapshot)
        assert as_json(plan(r, snapshot, now)) == as_json(p)
        snapshot = record_fates(snapshot, p, fates)
        now += timedelta(hours=nap)


@st.composite
def busy_rosters(draw: st.DrawFn) -> Roster:
    """A season's crowd: several open letters per recommender, deadlines weeks apart at most."""
    first = draw(days(40, 120))
    programs = [
        Program(
            id=f"p{i}",
            name=f"Program {i}",
            deadline=datetime.combine(
                first + timedelta(days=draw(st.integers(0, 30))), time(23, 59, 59), tzinfo=zone
            ),
            deadline_is_date=True,
            timezone=zone,
        )
        for i, zone in enumerate(draw(st.lists(st.sampled_from(ZONES), min_size=2, max_size=8)))
    ]
    recs = []
    for j in range(draw(st.integers(1, 2))):
        chosen = draw(st.permutations(programs))[: draw(st.integers(2, len(programs)))]
        cut = draw(st.integers(0, len(chosen) - 1))
        groups = [chosen[:cut], *([p] for p in chosen[cut:])] if cut > 1 else [[p] for p in chosen]
        letters = tuple(
            Letter(
                f"L{k}" if len(g) > 1 else g[0].id,
                programs=tuple(p.id for p in g),
                submitted_on=draw(st.none() | st.none() | days(30, 150)),
            )
            for k, g in enumerate(groups)
            if g
        )
        recs.append(
            Recommender(
                id=f"r{j}",
                name=f"Dr. R{j}",
                email=f"r{j}@example.org",
                timezone=draw(st.sampled_from(ZONES)),
                status=draw(st.sampled_from(["asked", "agreed"])),
                policy=replace(
                    draw(policies()),
                    reminders=tuple(
                        sorted(draw(st.sets(st.integers(1, 21), min_size=1, max_size=3)))[::-1]
                    ),
                    min_gap=draw(st.sampled_from([timedelta(days=d) for d in (2, 5, 7)])),
                ),
                salutation=f"Dr. R{j}",
                asked_on=draw(days(0, 30)),
                letters=letters,
                holidays=draw(st.sampled_from([None, ("US", None)])),
            )
        )
    return roster(programs, recs)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(r=busy_rosters(), naps=st.lists(st.integers(1, 24 * 6), min_size=60, max_size=90))
def test_invariants_hold_for_rounds_of_several_letters(r: Roster, naps: list[int]) -> None:
    snapshot = EMPTY_SNAPSHOT
    now = datetime.combine(START, time(0), tzinfo=UTC)
    rounds = False
    for nap in naps:
        p = plan(r, snapshot, now)
        check_invariants(r, p, snapshot)
        assert as_json(plan(r, snapshot, now)) == as_json(p)
        rounds = rounds or any(m.joined and m.status == "due" for m in p.messages)
        snapshot = record_due(snapshot, p)
        again = plan(r, snapshot, now)
        assert [m.key for m in again.messages if m.status == "due"] == []
        upcoming = [m.send_at for m in again.messages if m.status == "scheduled"]
        now = min([now + timedelta(hours=nap), *upcoming])
    event(f"a round of several letters went: {'yes' if rounds else 'no'}")
