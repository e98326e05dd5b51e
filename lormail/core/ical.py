"""The calendar's building blocks: an event with its stable UID, text fit for
iCalendar, and the UIDs themselves.

Ids that are not plain tokens, and message keys, are hashed into UIDs; no
e-mail address ever appears in a UID.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, timedelta

from icalendar import Event

from lormail.model import Recommender

UID_DOMAIN = "lormail"

# RFC 5545 §3.3.11 allows no control character in TEXT but HTAB (and the
# newline, which icalendar escapes).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class CalEvent:
    """One event of the calendar, before it is stamped."""

    order: tuple[object, ...]  # where it goes among its owner's events; unique with the UID
    uid: str
    event: Event  # the content, without UID/DTSTAMP/SEQUENCE/LAST-MODIFIED


def clean_text(text: str) -> str:
    """Text fit for a TEXT value: CR and CRLF as newlines, other controls but HTAB dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub("", text)


def uid_part(ident: str) -> str:
    """A roster id as it goes into a UID: as it is when a plain token, else hashed."""
    if _SAFE_ID.fullmatch(ident):
        return ident
    return "h" + hashlib.blake2b(ident.encode(), digest_size=8).hexdigest()


def message_uid(key: str) -> str:
    """The UID of a planned message: its key hashed (keys name recommenders and programs)."""
    return f"msg-{hashlib.blake2b(key.encode(), digest_size=10).hexdigest()}@{UID_DOMAIN}"


def text_event(summary: str, description: str) -> Event:
    """A transparent event (it never makes the applicant look busy) with a title and text."""
    ev = Event()
    ev.add("SUMMARY", clean_text(summary))
    ev.add("DESCRIPTION", clean_text(description))
    ev.add("TRANSP", "TRANSPARENT")
    return ev


def all_day(ev: Event, first: date, last: date) -> Event:
    """``ev`` on the days ``first`` to ``last`` (inclusive; DTEND is exclusive)."""
    ev.add("DTSTART", first)
    ev.add("DTEND", last + timedelta(days=1))
    return ev


def who(rec: Recommender) -> str:
    """How the applicant calls a recommender: the salutation, else the name."""
    return rec.salutation or rec.name
