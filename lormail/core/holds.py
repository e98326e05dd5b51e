"""Edit holds: what an edit made due waits ``edit_grace`` after that edit (SPEC §7).

A user who saves a new recommender while still typing their entry must not
see the packet go 0.3 s later.  The daemon compares what would go before and
after each accepted edit, as of the edit's instant; every message the edit
made due (new, or moved sooner) within the grace is *held* until the edit's
instant plus the grace.  Holds are recorded in the state, so ``plan`` and
``status`` show them and a restart keeps them; ``send-due`` run by hand
ignores them.

Both functions are pure: plans and instants in, holds or a plan out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta

from lormail.model import DRY_RUN, DUE, SCHEDULED, Plan, PlannedMessage

HOLD_NOTE = "waiting after your edit"
_GOING = (SCHEDULED, DUE)


def going(plan: Plan, dry_run: bool) -> dict[str, datetime]:
    """When each message the plan would really send goes (nothing goes in a dry run).

    ``dry-run`` rows go like due ones once dry-running is off.
    """
    if dry_run:
        return {}
    return {m.key: m.send_at for m in plan.messages if m.status in (*_GOING, DRY_RUN)}


def holds_after_edit(
    before: Mapping[str, datetime],
    after: Mapping[str, datetime],
    edited_at: datetime,
    grace: timedelta,
) -> dict[str, datetime]:
    """The holds an edit at ``edited_at`` makes: key -> the instant it may go.

    ``before`` and ``after`` are :func:`going` of the plans (holds applied) of
    the old and the new inputs, both as of ``edited_at``.  A message is held
    when it would go before ``edited_at + grace`` and the old inputs had it go
    later, or not at all.
    """
    until = edited_at + grace
    holds: dict[str, datetime] = {}
    for key, at in after.items():
        if at >= until:
            continue
        was = before.get(key)
        if was is not None and was <= at:
            continue  # as soon as before: not the edit's doing
        holds[key] = until
    return holds


def merge_holds(
    kept: Mapping[str, datetime], new: Mapping[str, datetime], now: datetime
) -> dict[str, datetime]:
    """``kept`` and ``new`` together, the later instant winning; past holds dropped."""
    merged = {k: v for k, v in kept.items() if v > now}
    for key, until in new.items():
        if until > now and (key not in merged or until > merged[key]):
            merged[key] = until
    return merged


def apply_holds(plan: Plan, holds: Mapping[str, datetime]) -> Plan:
    """The plan with each held message moved to the end of its hold, its reason saying why.

    A hold in the past, or on a message that goes later anyway or not at
    all, changes nothing.
    """
    if not holds:
        return plan
    changed = False
    messages: list[PlannedMessage] = []
    for m in plan.messages:
        until = holds.get(m.key)
        if (
            until is not None
            and until > plan.now
            and m.status in (*_GOING, DRY_RUN)
            and m.send_at < until
        ):
            m = dataclasses.replace(
                m, status=SCHEDULED, send_at=until, reason=f"{m.reason} ({HOLD_NOTE})"
            )
            changed = True
        messages.append(m)
    if not changed:
        return plan
    messages.sort(key=lambda m: (m.send_at, m.key))
    return dataclasses.replace(plan, messages=tuple(messages))


def is_held(message: PlannedMessage, holds: Mapping[str, datetime]) -> bool:
    """Does ``message`` (from :func:`apply_holds`' plan) wait for an edit's hold?"""
    return message.status == SCHEDULED and holds.get(message.key) == message.send_at


def hold_text(message: PlannedMessage, holds: Mapping[str, datetime], now: datetime) -> str | None:
    """ "in 9 min (waiting after your edit)" for a held message, else None."""
    if not is_held(message, holds):
        return None
    minutes = max(1, -(-int((message.send_at - now).total_seconds()) // 60))
    return f"in {minutes} min ({HOLD_NOTE})"
