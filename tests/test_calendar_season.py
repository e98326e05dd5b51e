"""The calendar in a real season: the wait for an answer, letters for several
programs, reminder rounds, a letter's own date, blackouts and public holidays."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from lormail.core.calendar import build_calendar, message_uid
from lormail.core.plan import plan
from lormail.model import EMPTY_SNAPSHOT, Letter, Plan, Roster, Unavailable
from tests._cal_helpers import (
    CAL_CONFIG,
    NOW,
    NY,
    build,
    dated,
    events,
    example_roster,
    program,
    reroster,
    utc,
)


def test_after_the_request_went_the_calendar_waits_for_the_answer() -> None:
    roster = example_roster()
    p = plan(roster, EMPTY_SNAPSHOT, NOW)
    request = next(m for m in p.messages if m.key == "request:patel")
    sent = replace(request, status="sent", send_at=utc(2026, 11, 30, 3, 30))
    q = replace(p, messages=tuple(sent if m is request else m for m in p.messages))
    evs = events(build_calendar(roster, q, {}, CAL_CONFIG, NOW).data)
    assert "ask-patel@lormail" not in evs
    ev = evs["waiting-patel@lormail"]
    assert ev["SUMMARY"] == "Waiting for Dr. Patel's answer"
    assert (ev.start, ev.end) == (date(2026, 11, 30), date(2027, 1, 16))
    assert ev["DESCRIPTION"] == (
        "lormail e-mailed Dr. Anil Patel the request on Mon 30 Nov 2026. Once they answer, "
        "mark it in the roster (status: agreed or declined)."
    )
    # Once the roster says they were asked, the wait is over.
    asked = replace(roster.recommenders_by_id["patel"], status="asked")
    recs = tuple(asked if r.id == "patel" else r for r in roster.recommenders)
    later = events(build_calendar(reroster(roster, recommenders=recs), q, {}, CAL_CONFIG, NOW).data)
    assert "waiting-patel@lormail" not in later and "ask-patel@lormail" not in later


def test_a_letter_for_several_programs_is_in_each_programs_deadline() -> None:
    roster = example_roster()
    bwh = program("bwh", "BWH Internal Medicine", date(2026, 12, 20), portal="ERAS")
    mgh = program("mgh", "MGH Internal Medicine", date(2026, 12, 10), portal="ERAS")
    eras = Letter("eras", "LoR-1", programs=("bwh", "mgh"))
    lee = replace(roster.recommenders_by_id["lee"], letters=(eras,))
    recs = tuple(lee if r.id == "lee" else r for r in roster.recommenders)
    roster = reroster(roster, programs=(*roster.programs, bwh, mgh), recommenders=recs)
    evs = events(build(roster).data)
    line = (
        "- Dr. Grace Lee [LoR-1]: not asked yet (ask by Thu 29 Oct 2026) "
        "(one letter, ERAS, for 2 programs, due Thu 10 Dec 2026)"
    )
    for uid in ("deadline-bwh@lormail", "deadline-mgh@lormail"):
        assert str(evs[uid]["DESCRIPTION"]).endswith("Letters:\n" + line)
    assert str(evs["ask-lee@lormail"]["DESCRIPTION"]).endswith(
        "For:\n- ERAS (deadline Thu 10 Dec 2026, 2 programs)"
    )


def test_blackouts_and_public_holidays_are_all_day_events() -> None:
    roster = example_roster()
    winter = Unavailable(date(2026, 12, 24), date(2027, 1, 1), "winter break")
    johnson = replace(roster.recommenders_by_id["johnson"], holidays=("US", None))
    okafor = replace(roster.recommenders_by_id["okafor"], holidays=("GB", "ENG"))
    recs = tuple({"johnson": johnson, "okafor": okafor}.get(r.id, r) for r in roster.recommenders)
    roster = replace(reroster(roster, recommenders=recs), unavailable=(winter,))
    evs = events(build(roster).data)
    off = evs["blackout-20261224-20270101@lormail"]
    assert off["SUMMARY"] == "No e-mail to recommenders: winter break"
    assert (off.start, off.end) == (date(2026, 12, 24), date(2027, 1, 2))
    assert off["DESCRIPTION"] == (
        "lormail sends no recommender anything Thu 24 Dec 2026 – Fri 1 Jan 2027."
    )
    xmas = evs["holiday-20261225@lormail"]
    assert xmas["SUMMARY"] == "Public holiday: Christmas Day (GB-ENG); Christmas Day (US)"
    assert xmas["DESCRIPTION"] == (
        "Christmas Day (GB-ENG): lormail writes nothing to Dr. Okafor.\n"
        "Christmas Day (US): lormail writes nothing to Dr. Johnson."
    )
    assert (xmas.start, xmas.end) == (date(2026, 12, 25), date(2026, 12, 26))
    thanksgiving = evs["holiday-20261126@lormail"]
    assert thanksgiving["SUMMARY"] == "Public holiday: Thanksgiving Day (US)"
    # From today (1 Oct 2026) to each one's last open deadline, no further: not Martin
    # Luther King Jr. Day (18 Jan), after Dr. Johnson's last deadline (15 Jan).
    days = sorted(u for u in evs if u.startswith("holiday-"))
    assert days[0] == "holiday-20261012@lormail"  # Columbus Day, US
    assert days[-1] == "holiday-20270101@lormail"  # New Year's Day, US and GB-ENG


def test_a_reminder_round_is_titled_by_its_letters() -> None:
    roster = example_roster()
    m = next(m for m in plan(roster, EMPTY_SNAPSHOT, NOW).messages if m.kind == "reminder")
    johnson = roster.recommenders_by_id["johnson"]
    keys = tuple(lt.key for lt in johnson.letters)
    round_ = replace(m, recommender="johnson", letters=keys, reminder_number=1)
    ev = events(build_calendar(roster, Plan(NOW, (round_,)), {}, CAL_CONFIG, NOW).data)[
        message_uid(m.key)
    ]
    assert ev["SUMMARY"] == "Reminder 1 to Dr. Johnson (MPH in Epidemiology (SOPHAS) and 1 more)"


def test_a_letters_own_due_date_is_in_its_programs_deadline() -> None:
    roster = example_roster()
    own = Letter("ucl-msc", due=dated(date(2027, 1, 8), NY), due_is_date=True)
    wong = replace(roster.recommenders_by_id["wong"], letters=(own,))
    recs = tuple(wong if r.id == "wong" else r for r in roster.recommenders)
    roster = Roster(roster.applicant, roster.defaults, roster.programs, recs)
    ev = events(build(roster).data)["deadline-ucl-msc@lormail"]
    assert str(ev["DESCRIPTION"]).endswith(
        "- Dr. Mei Wong: agreed on Wed 2 Sep 2026, letter open (wanted by Fri 8 Jan 2027)"
    )
