"""Defects found by stepping whole seasons, each reproduced, and the dates rules.

Each test starts from the situation that went wrong and asserts what a careful
applicant expects instead.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from lormail.core.plan import plan
from lormail.core.render import Templates
from lormail.model import EMPTY_SNAPSHOT, Letter, LogEntry, Snapshot
from tests.builders import LA, NY, policy, program, recommender, roster, sent, utc

TOKYO = ZoneInfo("Asia/Tokyo")
KOLKATA = ZoneInfo("Asia/Kolkata")
AUCKLAND = ZoneInfo("Pacific/Auckland")


def by_key(p):  # type: ignore[no-untyped-def]
    return {m.key: m for m in p.messages}


def test_a_sent_reminder_whose_letter_was_submitted_shows_its_logged_subject() -> None:
    im = program("im", date(2026, 9, 24), name="IM residency")
    rec = recommender("lee", status="asked", asked_on=date(2026, 8, 1), letters=(Letter("im"),))
    log = {
        "reminder:lee:im:1": LogEntry(
            "reminder:lee:im:1", "sent", utc("2026-09-10T14:00"), subject="A gentle reminder"
        )
    }
    done = replace(rec, letters=(Letter("im", submitted_on=date(2026, 9, 12)),))
    r = roster([im], [done])
    p = plan(r, Snapshot(log=log), utc("2026-09-20T12:00"))
    m = by_key(p)["reminder:lee:im:1"]
    assert (m.status, m.subject, m.reason) == (
        "sent",
        "A gentle reminder",
        "logged; no longer in the roster's plan",
    )
    # Shown, never rendered again (rendering it had no letter to name).
    assert Templates().subject(m, r) == "A gentle reminder"


def test_catch_up_never_sends_a_reminder_skipped_for_the_deadline() -> None:
    """Tokyo, Tuesdays only; deadline 29 Dec in Kolkata (18:29:59Z)."""
    prog = program("fel", date(2026, 12, 29), zone=KOLKATA, name="Fellowship")
    rec = recommender(
        "mori",
        status="asked",
        zone=TOKYO,
        asked_on=date(2026, 12, 1),
        letters=(Letter("fel"),),
        policy=policy(send_days=frozenset({1})),
    )
    r = roster([prog], [rec])
    first = by_key(plan(r, EMPTY_SNAPSHOT, utc("2026-12-22T00:00")))
    assert first["reminder:mori:fel:1"].status == "due"
    two = first["reminder:mori:fel:2"]
    assert two.status == "skipped"
    assert two.reason.startswith("skipped: the gap would put it within a day of the deadline")
    snap = sent(("reminder:mori:fel:1", utc("2026-12-22T00:00")))
    later = by_key(plan(r, snap, utc("2026-12-23T00:00")))
    two = later["reminder:mori:fel:2"]
    # The next Tuesday slot, 29 Dec 00:00Z, is 18.5 h before the deadline: never.
    assert (two.status, two.send_at) == ("skipped", utc("2026-12-22T00:00"))
    assert two.reason == (
        "skipped: overdue since Tue 22 Dec, and now too close to the deadline; "
        "was: 7 days before the Fellowship deadline, Tue 29 Dec"
    )
    assert [
        m.key for m in plan(r, snap, utc("2026-12-29T00:00")).messages if m.status == "due"
    ] == []


def test_a_reminder_the_gap_pushes_past_its_deadline_is_skipped_not_expired() -> None:
    prog = program("fel", date(2026, 10, 2), name="Fellowship")
    rec = recommender(
        "ruiz",
        status="asked",
        zone=NY,
        asked_on=date(2026, 9, 1),
        letters=(Letter("fel"),),
        policy=policy(reminders=(3,), min_gap=timedelta(days=10)),
    )
    snap = sent(("packet:ruiz", utc("2026-09-28T13:00")))
    m = by_key(plan(roster([prog], [rec]), snap, utc("2026-09-20T00:00")))["reminder:ruiz:fel:1"]
    assert (m.key, m.status) == ("reminder:ruiz:fel:1", "skipped")
    assert m.reason.startswith("skipped: the gap would put it within a day of the deadline; was:")


def test_a_failed_message_goes_again_after_the_address_changes() -> None:
    mph = program("mph", date(2026, 12, 1))
    rec = recommender(
        "kaur", status="planned", zone=NY, ask_by_email=True, ask_on=date(2026, 10, 1),
        letters=(Letter("mph"),),
    )  # fmt: skip
    failed = LogEntry(
        "request:kaur",
        "failed",
        utc("2026-10-01T13:00"),
        error="550 5.1.1 no such user",
        to="kaur@example.org",
    )
    snap = Snapshot(log={"request:kaur": failed})
    (m,) = plan(roster([mph], [rec]), snap, utc("2026-10-02T12:00")).messages
    assert m.status == "failed"
    assert m.reason == (
        "failed: 550 5.1.1 no such user; correct the address in the roster or run "
        "`lormail retry request:kaur` to send it again; was: asking by e-mail on the "
        "chosen day, Thu 1 Oct"
    )
    fixed = replace(rec, email="kaur@hospital.example.org")
    (m,) = plan(roster([mph], [fixed]), snap, utc("2026-10-02T14:00")).messages
    assert (m.key, m.status, m.to, m.send_at) == (
        "request:kaur",
        "due",
        "kaur@hospital.example.org",
        utc("2026-10-02T14:00"),
    )
    assert m.reason == (
        "asking by e-mail on the chosen day, Thu 1 Oct; failed to kaur@example.org "
        "(550 5.1.1 no such user), so sent again now that the address is "
        "kaur@hospital.example.org; overdue since Thu 1 Oct, so at the first chance"
    )


def test_a_passed_letter_no_longer_holds_back_the_thank_you() -> None:
    early = program("early", date(2026, 10, 1))
    late = program("late", date(2026, 11, 1))
    rec = recommender(
        "ode",
        asked_on=date(2026, 9, 1),
        agreed_on=date(2026, 9, 1),
        letters=(Letter("early"), Letter("late", submitted_on=date(2026, 9, 20))),
    )
    r = roster([early, late], [rec])
    before = plan(r, sent(("packet:ode", utc("2026-09-01T14:00"))), utc("2026-09-25T12:00"))
    assert not [m for m in before.messages if m.kind == "thank_you"]
    after = plan(r, sent(("packet:ode", utc("2026-09-01T14:00"))), utc("2026-10-05T15:00"))
    (ty,) = [m for m in after.messages if m.kind == "thank_you"]
    assert (ty.key, ty.status, ty.send_at) == ("thank_you:ode:late", "due", utc("2026-10-05T15:00"))


# --- dates are one thing everywhere ----------------------------------------------------


def test_an_auckland_deadline_for_a_los_angeles_recommender() -> None:
    # Tue 15 Dec in Auckland ends at 10:59:59Z: still Tue 15 Dec, 02:59 in Los Angeles.
    nz = program("nz", date(2026, 12, 15), zone=AUCKLAND, name="Otago fellowship")
    rec = recommender("diaz", status="asked", zone=LA, asked_on=date(2026, 11, 2),
                      letters=(Letter("nz"),))  # fmt: skip
    r = roster([nz], [rec])
    msgs = by_key(plan(r, EMPTY_SNAPSHOT, utc("2026-11-02T00:00")))
    two = msgs["reminder:diaz:nz:2"]
    assert (two.send_at, two.expires_at) == (utc("2026-12-08T17:00"), utc("2026-12-15T10:59:59"))
    assert two.reason == (
        "7 days before the Otago fellowship deadline, Tue 15 Dec (final reminder)"
    )
    subject, body = Templates().render(two, r).subject, Templates().render(two, r).body
    assert (
        subject == "A last gentle reminder: letter for Otago fellowship, due Tuesday, 15 December"
    )
    assert "is due Tuesday, 15 December, 7 days from now." in body


def test_a_los_angeles_deadline_for_an_auckland_recommender() -> None:
    # Tue 15 Dec in Los Angeles ends at 07:59:59Z on the 16th: Wed 16 Dec, 20:59 in Auckland.
    la = program("la", date(2026, 12, 15), zone=LA, name="UCLA fellowship")
    rec = recommender("hemi", status="asked", zone=AUCKLAND, asked_on=date(2026, 11, 2),
                      letters=(Letter("la"),))  # fmt: skip
    r = roster([la], [rec])
    two = by_key(plan(r, EMPTY_SNAPSHOT, utc("2026-11-02T00:00")))["reminder:hemi:la:2"]
    # 7 days before the date the program states, 09:00 in Auckland (NZDT, +13).
    assert two.send_at == utc("2026-12-07T20:00")
    assert two.reason == "7 days before the UCLA fellowship deadline, Tue 15 Dec (final reminder)"
    body = Templates().render(two, r).body
    assert "is due Tuesday, 15 December, 7 days from now." in body
    # On Wed 16 Dec in Auckland the deadline has not passed: it is still the 15th in LA.
    other = program("other", date(2026, 12, 20), zone=LA, name="Other")
    both = roster([la, other], [replace(rec, letters=(Letter("la"), Letter("other")))])
    late = by_key(plan(both, EMPTY_SNAPSHOT, utc("2026-12-15T20:00")))
    round_ = late["reminder:hemi:other:2"]
    # Sent Wed 16 Dec 09:00 in Auckland = 15 Dec 12:00 in LA: UCLA still to come.
    assert round_.send_at == utc("2026-12-15T20:00")
    body = Templates().render(round_, both).body
    assert "Also still to come:\n  - UCLA fellowship: due Tuesday, 15 December\n" in body
    # A day later, it has passed, and is no longer listed.
    after = by_key(plan(both, EMPTY_SNAPSHOT, utc("2026-12-16T20:00")))
    body = Templates().render(after["reminder:hemi:other:2"], both).body
    assert "still to come" not in body
