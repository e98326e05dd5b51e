"""The days lormail writes to no one, on the calendar: blackouts and public holidays.

``defaults: unavailable`` ranges hold every message (``blackout-…`` events);
a recommender's public holidays hold theirs (one ``holiday-<day>`` event a
day, naming each holiday and whom it keeps lormail from writing to).
"""

from __future__ import annotations

from datetime import date, datetime

from lormail.core.ical import UID_DOMAIN, CalEvent, all_day, text_event, who
from lormail.core.slots import day_label
from lormail.model import Roster


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
    writing to, over the years from now to the last deadline.
    """
    waiting = [
        (r, r.holidays)
        for r in roster.recommenders
        if r.holidays is not None
        and r.status != "declined"
        and any(lt.submitted_on is None for lt in r.letters)
    ]
    if not waiting:
        return []
    import holidays as calendars  # here: a roster without holidays never loads it

    first = now.year
    last = max([first, *(lt.deadline_date.year for r, _ in waiting for lt in r.letters)])
    years = list(range(first, last + 1))
    days: dict[date, dict[str, list[str]]] = {}
    for rec, (country, subdiv) in waiting:
        where = country + (f"-{subdiv}" if subdiv else "")
        found = calendars.country_holidays(country, subdiv=subdiv, years=years, language="en_US")
        for day, name in found.items():
            label = f"{name} ({where})"
            days.setdefault(day, {}).setdefault(label, []).append(who(rec))
    out = []
    for day in sorted(days):
        labels = days[day]
        about = "\n".join(
            f"{label}: lormail writes nothing to {', '.join(who)}."
            for label, who in sorted(labels.items())
        )
        ev = all_day(text_event("Public holiday: " + "; ".join(sorted(labels)), about), day, day)
        out.append(CalEvent((day,), f"holiday-{day:%Y%m%d}@{UID_DOMAIN}", ev))
    return out
