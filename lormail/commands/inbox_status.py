"""What the inbox adds to ``lormail status`` (SPEC §8): letters a portal confirmed
("✓ 3 Dec (e-mail)"), and each recommender's latest reply, absence or bounce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lormail.core.inbox_plan import with_inbox

if TYPE_CHECKING:
    from lormail.app.context import App
    from lormail.model import Roster

_SAID = {"reply": "replied", "auto_reply": "automatic reply", "bounce": "address bounced"}


@dataclass(frozen=True)
class InboxView:
    roster: Roster  # with what the inbox confirmed
    by_email: frozenset[tuple[str, str]] = frozenset()  # (recommender, letter) a portal confirmed
    notes: dict[str, str] = field(default_factory=dict)  # recommender -> "replied 3 Dec: …"


def inbox_view(app: App) -> InboxView:
    roster = app.roster()
    events = app.snapshot().inbox
    if not events:
        return InboxView(roster)
    shown = with_inbox(roster, events)
    by_email = frozenset(
        (r.id, lt.key)
        for r in roster.recommenders
        for lt in r.letters
        if lt.submitted_on is None
        and any(
            x.key == lt.key and x.submitted_on is not None
            for x in shown.recommenders_by_id[r.id].letters
        )
    )
    notes: dict[str, str] = {}
    for e in events:  # oldest first: the latest wins
        r = roster.recommenders_by_id.get(e.recommender or "")
        if r is None or e.at is None or e.kind not in _SAID:
            continue
        day = e.at.astimezone(r.timezone).date()
        said = f"{_SAID[e.kind]} {day.day} {day:%b}"
        rest = e.detail.partition(": ")[2]  # the detail after "Dr. X replied: "
        if e.kind == "auto_reply":
            back = f", back {e.until:%a} {e.until.day} {e.until:%b}" if e.until else ""
            notes[r.id] = f"automatic reply {day.day} {day:%b}{back}"
        else:
            notes[r.id] = f"{said}: {rest}" if rest else said
    return InboxView(shown, by_email, notes)
