"""Durations as users write them: ``30s``, ``90m``, ``6h``, ``14d``, ``2w``, or ISO 8601.

Owns the two readings the roster and config need: :func:`parse_duration` for
any length of time (``min_gap``, ``timeout``, calendar alarms) and
:func:`parse_days` for offsets that make a nominal date (``ask_lead``,
``reminders``, ``thank_you_delay``, ``check_in_every``), which must be whole
days so that a date minus an offset is again a date, with no DST drift.

ISO 8601 forms: ``PnW``, ``PnD``, ``PTnHnMnS`` and combinations such as
``P1DT12H``; years and months are refused because they have no fixed length.
Errors are :class:`DurationError` with a message ready for the user.
"""

from __future__ import annotations

import re
from datetime import timedelta

_SHORT = re.compile(r"(\d+)\s*([smhdw])")
_ISO = re.compile(
    r"P(?:(?P<w>\d+)W|(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)S)?)?)"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LIMIT = timedelta(days=3660)  # ten years: anything longer is a typo

EXAMPLES = "like 14d, 2w, 6h or ISO 8601 P14D"
DAY_EXAMPLES = "like 14d or 2w (or ISO 8601 P14D)"


class DurationError(ValueError):
    """The text is not a duration of the kind asked for; ``str()`` says why."""


def parse_duration(text: str) -> timedelta:
    """``N`` + ``s|m|h|d|w``, or ISO 8601 (``P14D``, ``PT1H``, ``P2W``, ``P1DT12H``)."""
    t = text.strip()
    m = _SHORT.fullmatch(t)
    if m is not None:
        value = timedelta(seconds=int(m[1]) * _UNIT_SECONDS[m[2]])
    else:
        iso = _ISO.fullmatch(t.upper())
        if iso is None or t.upper() in ("P", "PT"):
            raise DurationError(f"'{text}' is not a duration; write one {EXAMPLES}")
        if iso["y"] or iso["mo"]:
            raise DurationError(
                f"'{text}' uses years or months, which have no fixed length; use days or weeks"
            )
        value = timedelta(
            weeks=int(iso["w"] or 0),
            days=int(iso["d"] or 0),
            hours=int(iso["h"] or 0),
            minutes=int(iso["mi"] or 0),
            seconds=int(iso["s"] or 0),
        )
    if value > _LIMIT:
        raise DurationError(f"'{text}' is longer than ten years")
    return value


def parse_days(text: str) -> int:
    """A whole number of days: ``Nd``, ``Nw``, ``PnD`` or ``PnW``."""
    value = parse_duration(text)
    t = text.strip().upper()
    if value.seconds or value.microseconds or "T" in t or t[-1:] in ("S", "M", "H"):
        raise DurationError(
            f"'{text}' is not a whole number of days; write days or weeks, {DAY_EXAMPLES}"
        )
    return value.days
