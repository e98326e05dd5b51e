"""The days lormail writes to no one, on the calendar: blackouts and public holidays.

``defaults: unavailable`` ranges hold every message (``blackout-…`` events);
a recommender's public holidays hold theirs (one ``holiday-<day>`` event a
day, naming each holiday and whom it keeps lormail from writing to, while
they have letters to come).
"""

from __future__ import annotations

from datetime import date, datetime

from lormail.core.ical import UID_DOMAIN, CalEvent, all_day, text_event, who
from lormail.core.slots import day_label, holidays_in
from lormail.model import Recommender, Roster


def blackouts(roster: Roster) -> list[CalEvent]:
    """``defaults: unavailable``: days lormail sends nothing to anyone."""
    out = []
    for spell in sorted(roster.unavailable, key=lambda u: (u.start, u.end, u.note)):
        uid = f"blackout-{spell.start:%Y%m%d}-{spell.end:%Y%m%d}"
        title = "No e-mail to recommenders" + (f": {spell.note}" if spell.note else "")
        about = (
            f"lormail sends no recommender anything {day_label(spell.start)} – "
            f"{day_label(spell.end)}."
        )
        ev = all_day(text_event(title, about), spell.start, spell.end)
        out.append(CalEvent((spell.start, uid), f"{uid}@{UID_DOMAIN}", ev))
    return out


def holidays(roster: Roster, now: datetime) -> list[CalEvent]:
    """Public holidays on which a recommender with letters to come gets nothing.

    One event a day, naming each holiday and whom it keeps lormail from
    writing to: for each recommender, from their today to their last open
    letter's deadline.
    """
    spans: list[tuple[Recommender, tuple[str, str | None], date, date]] = []
    for rec in roster.recommenders:
        open_dates = [lt.deadline_date for lt in rec.letters if lt.submitted_on is None]
        if rec.holidays is None or rec.status == "declined" or not open_dates:
            continue
        today = now.astimezone(rec.timezone).date()
        if max(open_dates) >= today:
            spans.append((rec, rec.holidays, today, max(open_dates)))
    if not spans:
        return []
    days: dict[date, dict[str, list[str]]] = {}
    for rec, (country, subdiv), first, last in spans:
        where = country + (f"-{subdiv}" if subdiv else "")
        # A country's year, as the planner already read it: recommenders share countries.
        for year in range(first.year, last.year + 1):
            for day, name in holidays_in((country, subdiv), year).items():
                if first <= day <= last:
                    days.setdefault(day, {}).setdefault(f"{name} ({where})", []).append(who(rec))
    out = []
    for day in sorted(days):
        labels = days[day]
        about = "\n".join(
            f"{label}: lormail writes nothing to {', '.join(names)}."
            for label, names in sorted(labels.items())
        )
        ev = all_day(text_event("Public holiday: " + "; ".join(sorted(labels)), about), day, day)
        out.append(CalEvent((day,), f"holiday-{day:%Y%m%d}@{UID_DOMAIN}", ev))
    return out
