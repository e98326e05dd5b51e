"""Which of the inbox's findings ``lormail mark --inbox`` writes into the roster: pure.

Only submissions: a portal's "letter received" mail that named a letter
(SPEC §8) makes that letter submitted on the day :func:`portal_confirmed`
gives, the same day ``status`` shows before anything is written.  A letter
the roster already dates, or of a recommender who declined, is left as it is.
An event about a recommender or letter the roster no longer has is skipped,
and said so.  The classifier finds no program outcomes, so none are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from lormail.core.inbox_plan import portal_confirmed
from lormail.model import InboxEvent, Roster

__all__ = ["FromInbox", "Submission", "from_inbox"]


@dataclass(frozen=True, slots=True)
class Submission:
    """Letters of one recommender that a portal confirmed on one day."""

    recommender: str
    letters: tuple[str, ...]  # letter keys, in the roster's order
    on: date


@dataclass(frozen=True, slots=True)
class FromInbox:
    """What the inbox's events mean for the roster's text."""

    considered: int  # every stored event
    portal: int  # of them, portal mails
    submissions: tuple[Submission, ...]  # to write, in the roster's order
    skipped: tuple[str, ...]  # one line each: events about what the roster no longer has
    notes: tuple[str, ...]  # one line each: confirmations left alone, and why


def from_inbox(roster: Roster, events: Sequence[InboxEvent]) -> FromInbox:
    """The submissions ``events`` confirm that ``roster`` does not record yet."""
    portal = [e for e in events if e.kind == "portal"]
    confirmed = portal_confirmed(roster, portal)
    skipped: list[str] = []
    notes: list[str] = []
    by_id = roster.recommenders_by_id
    for e in portal:
        if e.recommender is None:
            continue  # the classifier names who for every portal event
        r = by_id.get(e.recommender)
        whose = (
            f"{e.recommender}'s letter {e.letter}" if e.letter else f"a letter of {e.recommender}"
        )
        if e.at is None:
            skipped.append(f"a portal mail about {whose} carries no date")
            continue
        day = e.at.astimezone(r.timezone if r else roster.applicant.timezone).date()
        mail = f"a portal mail of {day.isoformat()}"
        if r is None:
            skipped.append(f"{mail} about {whose}: no recommender '{e.recommender}' in the roster")
        elif e.letter is not None and all(lt.key != e.letter for lt in r.letters):
            skipped.append(f"{mail} about {whose}: {r.id} has no letter '{e.letter}'")
        elif (
            e.letter is None
            and r.status != "declined"
            and any(lt.submitted_on is None for lt in r.letters)
        ):
            notes.append(
                f"{mail} does not say which of {r.id}'s letters; record it with "
                f"'lormail mark {r.id} submitted LETTER --on {day.isoformat()}'"
            )
    submissions: list[Submission] = []
    for r in roster.recommenders:
        days: dict[date, list[str]] = {}
        for lt in r.letters:
            on = confirmed.get((r.id, lt.key))
            if on is None or lt.submitted_on is not None:
                continue
            if r.status == "declined":
                notes.append(
                    f"a portal mail of {on.isoformat()} confirms {r.id}'s letter "
                    f"{lt.key}, but {r.id} declined: left as it is"
                )
                continue
            days.setdefault(on, []).append(lt.key)
        submissions += [Submission(r.id, tuple(keys), on) for on, keys in sorted(days.items())]
    return FromInbox(
        considered=len(events),
        portal=len(portal),
        submissions=tuple(submissions),
        skipped=tuple(dict.fromkeys(skipped)),
        notes=tuple(dict.fromkeys(notes)),
    )
