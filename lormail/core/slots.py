"""A recipient's clock: which days are allowed, slots, and the send window.

SPEC §3.0: a date is *allowed* when its weekday is a send day, it lies in no
unavailable range (the recommender's or everyone's) and it is no public
holiday of the recommender's country; the *slot* of an allowed date is the
start of the send window on it, in the recipient's zone.  Also the short date phrases the
planner's reasons are written with.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache

import holidays as holiday_calendars

from lormail.model import Recommender, Unavailable

# How far to look for an allowed day before giving up (a roster could make
# every day unavailable for years; the search must still end).
HORIZON_DAYS = 3 * 366
_ONE_DAY = timedelta(days=1)
# English names, whatever the locale: messages and reasons are written in English.
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


class Clock:
    """Send days, unavailability and the window of one recommender, in their zone."""

    __slots__ = ("days", "end", "everyone", "holidays", "name", "start", "unavailable", "zone")

    def __init__(self, rec: Recommender, everyone: tuple[Unavailable, ...] = ()) -> None:
        self.zone = rec.timezone
        self.start = rec.policy.window_start
        self.end = rec.policy.window_end
        self.days = rec.policy.send_days
        self.unavailable = rec.unavailable
        self.everyone = everyone  # ``defaults: unavailable``
        self.holidays = rec.holidays
        self.name = rec.salutation or rec.name

    def allowed(self, day: date) -> bool:
        if day.weekday() not in self.days:
            return False
        if any(u.start <= day <= u.end for u in self.unavailable + self.everyone):
            return False
        return self.holidays is None or holiday_name(self.holidays, day) is None

    def blocked(self, day: date) -> str | None:
        """Why ``day`` is not allowed, as a phrase ("falls in Dr. X's conference, 10–17 Aug",
        "is Christmas Day (US public holiday)")."""
        for u in self.unavailable:
            if u.start <= day <= u.end:
                what = u.note or "time away"
                return f"falls in {self.name}'s {what}, {range_label(u.start, u.end)}"
        for u in self.everyone:
            if u.start <= day <= u.end:
                what = u.note or "time without e-mail"
                return f"falls in the {what}, {range_label(u.start, u.end)}"
        if self.holidays is not None and (name := holiday_name(self.holidays, day)):
            where = "-".join(p for p in self.holidays if p)
            return f"is {name} ({where} public holiday)"
        if day.weekday() not in self.days:
            return f"is a {_WEEKDAY_NAMES[day.weekday()]}, not a send day"
        return None

    def slot(self, day: date) -> datetime:
        """The start of the window on ``day``, as a UTC instant."""
        return _instant(day, self.start, self.zone)

    def first_allowed(self, day: date) -> date | None:
        """The first allowed date on or after ``day``."""
        for _ in range(HORIZON_DAYS):
            if self.allowed(day):
                return day
            day += _ONE_DAY
        return None

    def last_allowed_before(self, day: date, floor: date) -> date | None:
        """The latest allowed date strictly before ``day`` and not before ``floor``."""
        day -= _ONE_DAY
        while day >= floor:
            if self.allowed(day):
                return day
            day -= _ONE_DAY
        return None

    def next_in_window(self, instant: datetime) -> datetime | None:
        """The first instant in the window at or after ``instant`` (UTC)."""
        instant = instant.astimezone(UTC)
        day = instant.astimezone(self.zone).date()
        if self.allowed(day):
            start = self.slot(day)
            if instant <= start:
                return start
            end = _instant(day, self.end, self.zone)
            if instant < end:
                return instant
        nxt = self.first_allowed(day + _ONE_DAY)
        return None if nxt is None else self.slot(nxt)

    def in_window(self, instant: datetime) -> bool:
        return self.next_in_window(instant) == instant.astimezone(UTC)


def holiday_name(country: tuple[str, str | None], day: date) -> str | None:
    """The public holiday on ``day`` in ``country`` (code, subdivision), if any."""
    return holidays_in(country, day.year).get(day)


@lru_cache(maxsize=256)
def holidays_in(country: tuple[str, str | None], year: int) -> dict[date, str]:
    """The public holidays of ``country`` (code, subdivision) in ``year``, by day."""
    table = holiday_calendars.country_holidays(
        country[0], subdiv=country[1], years=year, language="en_US"
    )
    # Several names on one day read as one phrase ("New Year's Day; ...").
    return {d: "; ".join(n.split("; ")) for d, n in table.items()}


@lru_cache(maxsize=65536)
def _instant(day: date, clock: time, zone: tzinfo) -> datetime:
    """``clock`` on ``day`` in ``zone`` as UTC; recipients share zones, windows and dates."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


@lru_cache(maxsize=8192)
def day_label(day: date, current_year: int | None = None) -> str:
    """'Thu 24 Sep', with the year when it is not ``current_year`` (always, for None)."""
    text = f"{_WEEKDAY_NAMES[day.weekday()][:3]} {day.day} {_month(day)}"
    return text if day.year == current_year else f"{text} {day.year}"


def _month(day: date) -> str:
    return _MONTH_NAMES[day.month - 1][:3]


@lru_cache(maxsize=8192)
def long_date(day: date) -> str:
    """'Thursday, 24 September': the form people write in letters."""
    return f"{_WEEKDAY_NAMES[day.weekday()]}, {day.day} {_MONTH_NAMES[day.month - 1]}"


@lru_cache(maxsize=8192)
def range_label(start: date, end: date) -> str:
    """'10–17 Aug', '28 Dec – 3 Jan', '8 Aug'."""
    if start == end:
        return f"{start.day} {_month(start)}"
    if (start.year, start.month) == (end.year, end.month):
        return f"{start.day}–{end.day} {_month(end)}"
    return f"{start.day} {_month(start)} – {end.day} {_month(end)}"


def days_phrase(days: int) -> str:
    if days % 7 == 0 and days >= 28:
        return f"{days // 7} weeks"
    return "1 day" if days == 1 else f"{days} days"
