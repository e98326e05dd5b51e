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
from holidays.registry import EntityLoader

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


@cache
def _countries() -> frozenset[str]:
    """The country codes the holidays package knows, read from its registry: listing
    them through ``holidays.list_supported_countries`` loads every country's tables."""
    return frozenset(EntityLoader.get_country_codes(include_aliases=True))


def zone_country(zone: ZoneInfo) -> str | None:
    """The country of ``zone`` (``America/Chicago`` → ``US``), if the table has one."""
    return _zone_table().get(zone.key)


def check_holidays(code: str) -> str | None:
    """Why ``code`` is not a holidays setting, or None when it is one."""
    if code in ("auto", "none"):
        return None
    country, _, subdiv = code.partition("-")
    if country not in _countries():
        return f"'{code}' is not a country the holidays calendar knows (like US, DE-BY, auto, none)"
    # Only a subdivision loads the holidays package's country tables.
    if subdiv and subdiv not in getattr(holidays, country).subdivisions:
        return f"'{subdiv}' is not a subdivision of {country} the holidays calendar knows"
    return None


def resolve_holidays(code: str, zone: ZoneInfo) -> tuple[str, str | None] | None:
    """(country, subdivision) for a checked ``code``, or None when none apply."""
    if code == "none":
        return None
    if code == "auto":
        country = zone_country(zone)
        if country is None or country not in _countries():
            return None
        return country, None
    country, _, subdiv = code.partition("-")
    return country, subdiv or None
