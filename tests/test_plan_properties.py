"""Hypothesis properties of the planner over generated rosters, runs and `now`.

A run is simulated the way the daemon lives it: at a few increasing instants
the planner is asked what is due, and what is due is recorded as sent (with
the first-seen facts it observed).  The invariants must hold at every step.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lormail.core.plan import plan, plan_parts
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
        letters = tuple(
            Letter(
                p.id,
                submitted_on=draw(st.none() | days(10, 200))
                if status in ("asked", "agreed")
                else None,
            )
            for p in chosen
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
            )
        )
    return roster(programs, recs)


instants = st.integers(0, 230 * 24 * 4).map(
    lambda q: datetime.combine(START, time(0), tzinfo=UTC) + timedelta(minutes=15 * q)
)


def record_due(snapshot: Snapshot, p: Plan) -> Snapshot:
    """What send-due does: every due message sent now, first-seen facts kept."""
    log = dict(snapshot.log)
    for m in p.messages:
        if m.status == "due":
            log[m.key] = LogEntry(m.key, "sent", m.send_at)
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


def check_invariants(r: Roster, p: Plan) -> None:
    progs = r.programs_by_id
    for rec in r.recommenders:
        mine = [m for m in p.messages if m.recommender == rec.id]
        clock = Clock(rec)
        submitted = {lt.program for lt in rec.letters if lt.submitted_on is not None}
        series: dict[str, int] = {}
        for m in mine:
            live = m.status in (*ACTIVE, "sent")
            if m.kind == "reminder" and live:
                prog = progs[m.programs[0]]
                assert m.send_at < prog.deadline, (m, "reminder at or after its deadline")
                series[prog.id] = series.get(prog.id, 0) + 1
                if m.status in ACTIVE:
                    assert prog.id not in submitted, (m, "reminder for a submitted letter")
            if m.status in ACTIVE:
                assert clock.in_window(m.send_at), (m, "outside the window/days/availability")
                assert m.send_at >= p.now or m.status == "sent"
        for count in series.values():
            assert count <= len(rec.policy.reminders), "more reminders than the cap"
        # Within a series, reminders go in order: none after a later-numbered one.
        went = {}
        for m in mine:
            if m.kind == "reminder" and m.status == "sent":
                went[m.programs[0]] = max(went.get(m.programs[0], 0), m.reminder_number or 0)
        for m in mine:
            if m.kind == "reminder" and m.status in ACTIVE:
                assert (m.reminder_number or 0) > went.get(m.programs[0], 0), (m, "out of order")
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
    for nap in naps:
        p = plan(r, snapshot, now)
        check_invariants(r, p)
        # Deterministic: the same inputs give the same plan, byte for byte.
        assert as_json(plan(r, snapshot, now)) == as_json(p)
        snapshot = record_due(snapshot, p)
        # Once what was due is recorded as sent, nothing is due at the same now.
        again = plan(r, snapshot, now)
        assert [m.key for m in again.messages if m.status == "due"] == []
        check_invariants(r, again)
        upcoming = [m.send_at for m in again.messages if m.status == "scheduled"]
        woke = now + timedelta(hours=nap)
        now = min([woke, *upcoming]) if nap < 24 * 10 else woke  # long naps: a laptop asleep
    n = len([e for e in snapshot.log.values() if e.state == "sent"])
    event(f"messages sent in the run: {min(n, 5)}{'+' if n >= 5 else ''}")


@settings(max_examples=60, deadline=None)
@given(r=rosters(), now=instants)
def test_a_later_deadline_edit_never_adds_reminders_beyond_the_cap(
    r: Roster, now: datetime
) -> None:
    snapshot = record_due(EMPTY_SNAPSHOT, plan(r, EMPTY_SNAPSHOT, now))
    moved = replace(
        r,
        programs=tuple(replace(p, deadline=p.deadline + timedelta(days=30)) for p in r.programs),
        programs_by_id={},
    )
    check_invariants(moved, plan(moved, snapshot, now + timedelta(days=1)))


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
            log[m.key] = LogEntry(m.key, fate, m.send_at)
    return Snapshot(log=log, first_seen={**p.observed, **snapshot.first_seen})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    r=rosters(),
    start=instants,
    naps=st.lists(st.integers(1, 24 * 20), max_size=6),
    fates=st.lists(FATES, max_size=4),
    share=st.floats(0, 1),
    later=st.integers(0, 40 * 24 * 3600),
)
def test_a_recommenders_part_holds_until_it_says(
    r: Roster,
    start: datetime,
    naps: list[int],
    fates: list[str],
    share: float,
    later: int,
) -> None:
    """Planned again before ``until``, a recommender's messages are the same."""
    snapshot = EMPTY_SNAPSHOT
    now = start
    for nap in naps:
        snapshot = record_fates(snapshot, plan(r, snapshot, now), fates)
        now += timedelta(hours=nap)
    whole, parts = plan_parts(r, snapshot, now)
    assert whole == plan(r, snapshot, now)
    for rec in r.recommenders:
        part = parts.by_recommender[rec.id]
        assert part.since == now <= part.until
        if part.until == now:
            event("a part that holds only at its instant")
            continue
        last = part.until - timedelta(microseconds=1)
        for at in (now + (last - now) * share, last):
            again = plan_parts(r, snapshot, at)[1].by_recommender[rec.id]
            assert again.messages == part.messages, (rec.id, at)
            assert again.until == part.until
    # Parts kept from then give the plan made from scratch, whenever it is asked for.
    for at in (now + timedelta(seconds=later), now - timedelta(seconds=later)):
        assert plan_parts(r, snapshot, at, parts)[0] == plan(r, snapshot, at)
