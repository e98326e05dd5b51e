"""What the inbox tells the applicant through the calendar (SPEC §8): pure.

* ``reply-<hash>@lormail``: "Dr. X replied — update the roster", all-day on
  the day of the reply (in the recommender's zone), while the reply holds
  their reminders: until ``reply_hold`` has passed, or until their roster
  entry changes, whichever comes first.  The description gives the reply's
  detail and until when the reminders wait.
* ``bounce-<hash>@lormail``: "Dr. X's address bounced: 5.1.1 …", all-day on
  the day of the bounce, until the address in the roster changes.

An event that no longer holds anything drops out of the calendar.  The UID is
a hash of the message's kind and Message-ID (else its folder and UID, else
its sender and date), so the same message is the same event on every build
and no address appears in a UID.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from lormail.core.ical import UID_DOMAIN, CalEvent, all_day, text_event, who
from lormail.core.inbox_plan import bounce_holds, reply_holds
from lormail.core.slots import day_label
from lormail.model import InboxEvent, Recommender

# The classifier's bounce detail is "<name>'s address bounced: <why>".
_BOUNCED = "address bounced: "


def inbox_uid(e: InboxEvent) -> str:
    """The stable UID of the calendar event for ``e``."""
    if e.message_id:
        ident = e.message_id
    elif e.folder is not None and e.uid is not None:
        ident = f"{e.folder}/{e.uid}"
    else:
        ident = f"{e.sender}/{e.at.isoformat() if e.at else ''}"
    digest = hashlib.blake2b(f"{e.kind}\n{ident}".encode(), digest_size=10).hexdigest()
    return f"{e.kind}-{digest}@{UID_DOMAIN}"


def bounce_reason(detail: str) -> str:
    """ "5.1.1 User unknown" out of a bounce's detail (all of it when it has another form)."""
    _, found, why = detail.partition(_BOUNCED)
    return why if found and why else detail


def inbox_events(rec: Recommender, events: Iterable[InboxEvent], now: datetime) -> list[CalEvent]:
    """The calendar events of ``rec``'s replies and bounces that still matter at ``now``.

    ``rec`` is the roster's own entry (as the events' ``entry`` digests were made
    from), not one with the inbox's absences and submissions added.
    """
    out: list[CalEvent] = []
    for e in events:
        if e.recommender != rec.id or e.at is None:
            continue
        if reply_holds(rec, e, now):
            out.append(_reply(rec, e, e.at))
        elif bounce_holds(rec, e):
            out.append(_bounce(rec, e, e.at))
    return out


def _reply(rec: Recommender, e: InboxEvent, at: datetime) -> CalEvent:
    day = at.astimezone(rec.timezone).date()
    end = (at + rec.policy.reply_hold).astimezone(rec.timezone)
    about = (
        f"{e.detail}\n"
        f"lormail holds the reminders and follow-ups to {rec.name} until "
        f"{day_label(end.date())}, or until you update their roster entry (for "
        f"example status: agreed, or a letter's submitted_on)."
    )
    ev = all_day(text_event(f"{who(rec)} replied — update the roster", about), day, day)
    uid = inbox_uid(e)
    return CalEvent((2, day, uid), uid, ev)


def _bounce(rec: Recommender, e: InboxEvent, at: datetime) -> CalEvent:
    day = at.astimezone(rec.timezone).date()
    why = bounce_reason(e.detail)
    about = (
        f"Mail to {rec.email} bounced on {day_label(day)}: {why}\n"
        f"lormail sends {rec.name} nothing until you correct their address in the roster."
    )
    ev = all_day(text_event(f"{who(rec)}'s address bounced: {why}", about), day, day)
    uid = inbox_uid(e)
    return CalEvent((2, day, uid), uid, ev)
