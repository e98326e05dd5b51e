"""Which public holidays apply to a recommender: the ``holidays`` policy key.

``US``, ``US-CA``, ``DE-BY``: a country with an optional subdivision, as the
``holidays`` package knows them.  ``auto``: the country of the recipient's
time zone in the tz database's zone table (``zone.tab``: one country per
zone), national holidays only.  ``none``: off.
"""

from __future__ import annotations

import contextlib
from functools import cache
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

__all__ = ["check_holidays", "resolve_holidays", "zone_country"]

_SYSTEM_TABLE = Path("/usr/share/zoneinfo/zone.tab")


@cache
def _zone_table() -> dict[str, str]:
    """Zone name → ISO 3166 country code, from tzdata's zone.tab (else the system's)."""
    text = ""
    with contextlib.suppress(ModuleNotFoundError, FileNotFoundError, OSError):
        text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text("utf-8")
    if not text:
        with contextlib.suppress(OSError):
            text = _SYSTEM_TABLE.read_text("utf-8")
    table: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) >= 3:
            table[cols[2]] = cols[0]
    return table


def zone_country(zone: ZoneInfo) -> str | None:
    """The country of ``zone`` (``America/Chicago`` → ``US``), if the table has one."""
    return _zone_table().get(zone.key)


def check_holidays(code: str) -> str | None:
    """Why ``code`` is not a holidays setting, or None when it is one."""
    if code in ("auto", "none"):
        return None
    country, _, subdiv = code.partition("-")
    supported = holidays.list_supported_countries()
    if country not in supported:
        return f"'{code}' is not a country the holidays calendar knows (like US, DE-BY, auto, none)"
    if subdiv and subdiv not in supported[country]:
        return f"'{subdiv}' is not a subdivision of {country} the holidays calendar knows"
    return None


def resolve_holidays(code: str, zone: ZoneInfo) -> tuple[str, str | None] | None:
    """(country, subdivision) for a checked ``code``, or None when none apply."""
    if code == "none":
        return None
    if code == "auto":
        country = zone_country(zone)
        if country is None or country not in holidays.list_supported_countries():
            return None
        return country, None
    country, _, subdiv = code.partition("-")
    return country, subdiv or None
