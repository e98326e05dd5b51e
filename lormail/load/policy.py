"""The timing policy keys of ``defaults``, which every recommender may override.

Owns their reading into :class:`~lormail.model.Policy`: whole-day offsets,
the send window (with the hint for YAML's base-60 ``9:30``), send days and
outcome lists.  A recommender's policy is ``defaults`` with its own keys
replacing those values; one without overrides shares the defaults object.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import time, timedelta
from typing import Any

from lormail.core.durations import DurationError, parse_days, parse_duration
from lormail.load import fields as F
from lormail.load.fields import Source, join
from lormail.load.yamlsrc import Node, Scalar
from lormail.model import OUTCOMES, WEEKDAYS, Policy

POLICY_KEYS = (
    "ask_lead",
    "reminders",
    "min_gap",
    "thank_you_delay",
    "send_window",
    "send_days",
    "decline_thanks",
    "notify_outcomes",
    "check_in_every",
    "reply_hold",
)
_POLICY_SET = frozenset(POLICY_KEYS)
_NOTIFIABLE = tuple(o for o in OUTCOMES if o != "pending")
_WINDOW = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_WINDOW_EXAMPLE = '"09:00-17:00"'


def read_policy(src: Source, f: dict[str, Node], path: str, base: Policy) -> Policy:
    """``base`` with the policy keys present in ``f`` (a mapping's fields) applied."""
    if _POLICY_SET.isdisjoint(f):
        return base
    changes: dict[str, Any] = {}
    for key in POLICY_KEYS:
        node = f.get(key)
        if node is None or F.is_null(node):
            continue
        where = join(path, key)
        if key in ("ask_lead", "thank_you_delay"):
            changes[key] = days(src, node, where)
        elif key == "check_in_every":
            zero = isinstance(node, Scalar) and node.plain and node.text == "0"
            changes[key] = 0 if zero else days(src, node, where)
        elif key in ("min_gap", "reply_hold"):
            changes[key] = duration(src, node, where)
        elif key == "reminders":
            changes[key] = reminders(src, node, where)
        elif key == "send_window":
            window = send_window(src, node, where)
            if window is not None:
                changes["window_start"], changes["window_end"] = window
        elif key == "send_days":
            changes[key] = send_days(src, node, where)
        elif key == "decline_thanks":
            changes[key] = src.boolean(node, where)
        else:
            changes[key] = names(src, node, where, _NOTIFIABLE)
    changes = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(base, **changes) if changes else base


def days(src: Source, node: Node, path: str) -> int | None:
    """A whole number of days (``14d``, ``2w``, ``P14D``)."""
    sc = src.scalar(node, path, "a number of days like 14d")
    if sc is None:
        return None
    try:
        return parse_days(sc.text)
    except DurationError as err:
        src.add(sc, path, str(err))
        return None


def duration(src: Source, node: Node, path: str) -> timedelta | None:
    sc = src.scalar(node, path, "a duration like 5d")
    if sc is None:
        return None
    try:
        return parse_duration(sc.text)
    except DurationError as err:
        src.add(sc, path, str(err))
        return None


def reminders(src: Source, node: Node, path: str) -> tuple[int, ...] | None:
    """Whole days before the anchor deadline, largest first (reminder 1 is the earliest)."""
    out: dict[int, Node] = {}
    ok = True
    for i, item in enumerate(src.items(node, path, "[14d, 7d]")):
        value = days(src, item, f"{path}[{i}]")
        if value is None:
            ok = False
        elif value < 1:
            src.add(item, f"{path}[{i}]", "must be at least 1d before the deadline")
            ok = False
        elif value in out:
            src.add(item, f"{path}[{i}]", f"{value} days is listed twice")
            ok = False
        else:
            out[value] = item
    return tuple(sorted(out, reverse=True)) if ok else None


def send_window(src: Source, node: Node, path: str) -> tuple[time, time] | None:
    sc = src.scalar(node, path, f"a window like {_WINDOW_EXAMPLE}")
    if sc is None:
        return None
    t = sc.text.strip()
    if sc.plain and F.SEXAGESIMAL.fullmatch(t):
        number = 0
        for part in t.lstrip("+-").replace("_", "").split(":"):
            number = number * 60 + int(part)
        src.add(
            sc,
            path,
            f"YAML reads {t} as the number {number}; write the window in quotes, "
            f"like {_WINDOW_EXAMPLE}",
        )
        return None
    m = _WINDOW.fullmatch(t)
    if m is None:
        src.add(sc, path, f"expected a window like {_WINDOW_EXAMPLE}, not {F.shown(sc.text)}")
        return None
    try:
        start = time(int(m[1]), int(m[2]))
        end = time(int(m[3]), int(m[4]))
    except ValueError:
        src.add(sc, path, f"{F.shown(t)} is not a window of real times, like {_WINDOW_EXAMPLE}")
        return None
    if start >= end:
        src.add(sc, path, f"the window must end after it starts, not {F.shown(t)}")
        return None
    return start, end


def send_days(src: Source, node: Node, path: str) -> frozenset[int] | None:
    chosen = names(src, node, path, WEEKDAYS, lower=True)
    if chosen is None:
        return None
    if not chosen:
        src.add(node, path, "must name at least one day, like [mon, tue, wed, thu, fri]")
        return None
    return frozenset(WEEKDAYS.index(d) for d in chosen)


def names(
    src: Source, node: Node, path: str, options: tuple[str, ...], lower: bool = False
) -> frozenset[str] | None:
    """A list of words from ``options``, each once."""
    example = "[" + ", ".join(options[:3]) + "]"
    out: set[str] = set()
    ok = True
    for i, item in enumerate(src.items(node, path, example)):
        where = f"{path}[{i}]"
        word = src.text(item, where, F.LINE)
        if word is None:
            ok = False
            continue
        key = word.lower() if lower else word
        if key not in options:
            listed = " | ".join(options)
            src.add(
                item, where, f"{F.shown(word)} is not one of {listed}{F.did_you_mean(key, options)}"
            )
            ok = False
        elif key in out:
            src.add(item, where, f"{F.shown(word)} is listed twice")
            ok = False
        else:
            out.add(key)
    return frozenset(out) if ok else None
