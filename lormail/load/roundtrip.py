"""Marks written into roster.yaml text, keeping the file the user's.

``lormail mark`` records what happened (a recommender asked, a letter in, a
program's outcome) in the roster itself.  The file is the user's: the edit goes
through ruamel.yaml's round trip, which keeps comments, key order, flow style
(``{program: mph}``), quoting and blank lines, and a last comparison refuses
any result in which a line other than the edited ones would differ.  This
module is only for writing; lormail reads the roster with its own loader, and
the result is validated by it before anything is written.

Pure: text and ``now`` in, text out.  Which letters a mark means, and every
"no such …" message with its did-you-mean, are decided here.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import ScalarString
from ruamel.yaml.tokens import CommentToken

from lormail.errors import LormailError, Problem
from lormail.load.fields import did_you_mean, zone
from lormail.load.samelines import LinesWouldChange, keep_untouched
from lormail.model import OUTCOMES, STATUSES

__all__ = [
    "RECOMMENDER_MARKS",
    "SUBMITTED",
    "Edit",
    "Mark",
    "letter_key",
    "mark_roster",
    "mark_roster_all",
]

SUBMITTED = "submitted"
RECOMMENDER_MARKS: tuple[str, ...] = (*STATUSES, SUBMITTED)
_STATUS_DATE = {"asked": "asked_on", "agreed": "agreed_on", "declined": "declined_on"}

# Where a new key goes: after the last key present that comes before it here
# (SPEC §2.1's order), so that a roster written in that order stays in it.
_RECOMMENDER_ORDER = (
    "id", "name", "salutation", "email", "title", "relationship", "timezone", "status",
    "ask_on", "ask_by_email", "asked_on", "agreed_on", "declined_on",
)  # fmt: skip
_PROGRAM_ORDER = ("id", "name", "portal", "deadline", "timezone", "outcome", "outcome_on")
_LETTER_ORDER = ("program", "id", "programs", "name", "portal", "due", "letter_id", "submitted_on")


@dataclass(frozen=True, slots=True)
class Mark:
    """One thing that happened, as given on the command line."""

    target: str  # a recommender's id, or a program's id for an outcome
    what: str  # a status, "submitted", or an outcome
    letters: tuple[str, ...] = ()  # for "submitted": letter keys; none = the only one
    all_letters: bool = False  # for "submitted": every letter not yet in
    on: date | None = None  # default: today in the applicant's zone


@dataclass(frozen=True, slots=True)
class Edit:
    """The roster's new text and what changed, one line each for people."""

    text: str
    changes: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what was asked for but already so


def letter_key(letter: object) -> str | None:
    """A letter's key: its program for a ``program:`` letter, else its ``id``."""
    if not isinstance(letter, dict):
        return None
    value = letter.get("program") if "program" in letter else letter.get("id")
    return None if value is None else str(value)


def mark_roster(text: str, file: str, mark: Mark, now: datetime) -> Edit:
    """Apply ``mark`` to roster ``text`` (read from ``file``) as of ``now``."""
    return mark_roster_all(text, file, (mark,), now)


def mark_roster_all(text: str, file: str, marks: Iterable[Mark], now: datetime) -> Edit:
    """Apply every one of ``marks`` to roster ``text``, in order, as one edit."""
    doc = _Document(text, file)
    for mark in marks:
        on = mark.on or now.astimezone(doc.applicant_zone()).date()
        if mark.what in RECOMMENDER_MARKS and mark.target in doc.entries("recommenders"):
            doc.mark_recommender(mark, on)
        elif mark.what in OUTCOMES and mark.target in doc.entries("programs"):
            doc.mark_program(mark.target, mark.what, on)
        else:
            raise doc.no_target(mark)
    if not doc.changes:
        return Edit(text, (), tuple(doc.notes))
    return Edit(doc.dump(), tuple(doc.changes), tuple(doc.notes))


def _choices(words: Iterable[str]) -> str:
    items = list(words)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


@dataclass
class _Document:
    """The roster as ruamel.yaml's round trip holds it, and the edits made to it."""

    original: str
    file: str
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Lines (0-based, of the original) an edit may rewrite; every other line
    # must come out as it went in.
    touched: set[int] = field(default_factory=set)
    added: set[str] = field(default_factory=set)  # keys added to block mappings

    def __post_init__(self) -> None:
        text = self.original
        self.bom = text.startswith("\ufeff")
        text = text.removeprefix("\ufeff")
        self.crlf = "\r\n" in text
        text = text.replace("\r\n", "\n")
        # ruamel.yaml drops what stands before a `---`; keep it verbatim.
        self.head, self.offset, body = _split_head(text)
        # Lines are compared whole; a last line without its newline gets it back at the end.
        self.unterminated = bool(body) and not body.endswith("\n")
        body += "\n" if self.unterminated else ""
        self.yaml = YAML()
        self.yaml.preserve_quotes = True
        self.yaml.width = 1 << 16  # never fold a long line
        self.yaml.brace_single_entry_mapping_in_flow_sequence = True  # [{program: a}]
        # One date set on several letters is one value, never a YAML alias.
        self.yaml.representer.ignore_aliases = lambda _data: True
        try:
            self.data: Any = self.yaml.load(body)
        except MarkedYAMLError as err:
            raise self._unreadable(err) from None
        except YAMLError as err:
            raise LormailError(
                [Problem(f"cannot read the roster: {err}", file=self.file)]
            ) from None
        self.body = body
        self.yaml.indent(**_indents(self.data, body.splitlines()))

    def _unreadable(self, err: MarkedYAMLError) -> LormailError:
        where = err.problem_mark
        line = where.line + 1 + self.offset if where is not None else None
        col = where.column + 1 if where is not None else None
        what = (err.problem or "not YAML").strip()
        return LormailError([Problem(f"cannot read the roster: {what}", self.file, line, col)])

    def entries(self, section: str) -> dict[str, CommentedMap]:
        """The section's entries by id (the first of a duplicate id wins)."""
        out: dict[str, CommentedMap] = {}
        items = self.data.get(section) if isinstance(self.data, CommentedMap) else None
        if isinstance(items, CommentedSeq):
            for item in items:
                if isinstance(item, CommentedMap) and item.get("id") is not None:
                    out.setdefault(str(item["id"]), item)
        return out

    def applicant_zone(self) -> ZoneInfo:
        from lormail.load.roster import machine_zone

        applicant = self.data.get("applicant") if isinstance(self.data, CommentedMap) else None
        name = applicant.get("timezone") if isinstance(applicant, CommentedMap) else None
        found = zone(name) if isinstance(name, str) else None
        # An unknown zone is the loader's to report; the result is validated by it.
        return found if isinstance(found, ZoneInfo) else machine_zone()

    def no_target(self, mark: Mark) -> LormailError:
        recommenders, programs = self.entries("recommenders"), self.entries("programs")
        target, what = mark.target, mark.what
        file: str | None = self.file  # a message about the roster names it
        if target in recommenders and what not in OUTCOMES:
            file = None
            message = (
                f"'{what}' is not something to mark for a recommender: use "
                f"{_choices(RECOMMENDER_MARKS)}{did_you_mean(what, RECOMMENDER_MARKS)}"
            )
        elif target in programs and what not in RECOMMENDER_MARKS:
            file = None
            message = (
                f"'{what}' is not an outcome: use {_choices(OUTCOMES)}"
                f"{did_you_mean(what, OUTCOMES)}"
            )
        elif what in RECOMMENDER_MARKS:
            message = _missing(f"no recommender '{target}'", target, recommenders)
            if target in programs:
                message = f"'{target}' is a program: mark it with an outcome ({_choices(OUTCOMES)})"
        elif what in OUTCOMES:
            message = _missing(f"no program '{target}'", target, programs)
            if target in recommenders:
                message = (
                    f"'{target}' is a recommender: mark {_choices(RECOMMENDER_MARKS)}, "
                    "not an outcome"
                )
        else:
            message = _missing(
                f"no recommender or program '{target}'", target, {**programs, **recommenders}
            )
        return LormailError([Problem(message, file=file)])

    def mark_recommender(self, mark: Mark, on: date) -> None:
        rid = mark.target
        entry = self.entries("recommenders")[rid]
        if mark.what == SUBMITTED:
            self.mark_letters(rid, entry, mark, on)
            return
        if mark.letters or mark.all_letters:
            raise LormailError(
                [Problem(f"letters are named only with 'submitted', not '{mark.what}'")]
            )
        old = entry.get("status")
        if str(old if old is not None else "planned") != mark.what:
            self.set(entry, "status", mark.what, _RECOMMENDER_ORDER)
            self.changes.append(f"{rid}: status {old or 'planned'} → {mark.what}")
        else:
            self.notes.append(f"{rid}: status is already {mark.what}")
        stamp = _STATUS_DATE.get(mark.what)
        if stamp is None:
            return
        if entry.get(stamp) is None:
            self.set(entry, stamp, on, _RECOMMENDER_ORDER)
            self.changes.append(f"{rid}: {stamp} {on.isoformat()}")
        else:
            self.notes.append(f"{rid}: {stamp} stays {entry[stamp]}")

    def mark_letters(self, rid: str, entry: CommentedMap, mark: Mark, on: date) -> None:
        letters = entry.get("letters")
        by_key: dict[str, CommentedMap] = {}
        if isinstance(letters, CommentedSeq):
            for letter in letters:
                key = letter_key(letter)
                if key is not None and isinstance(letter, CommentedMap):
                    by_key.setdefault(key, letter)
        if mark.all_letters and mark.letters:
            raise LormailError([Problem("name letters or give --all, not both")])
        if mark.letters:
            for key in mark.letters:
                if key not in by_key:
                    raise LormailError(
                        [
                            Problem(
                                _missing(f"{rid} has no letter '{key}'", key, by_key),
                                file=self.file,
                            )
                        ]
                    )
            chosen = list(dict.fromkeys(mark.letters))
        elif not by_key:
            raise LormailError([Problem(f"{rid} has no letters", file=self.file)])
        else:
            still_open = [k for k, letter in by_key.items() if letter.get("submitted_on") is None]
            if mark.all_letters or len(by_key) == 1:
                chosen = list(by_key)
            elif len(still_open) <= 1:
                chosen = still_open  # the one still to come, or none
                if not still_open:
                    self.notes.append(f"{rid}: every letter was submitted already")
            else:
                raise LormailError(
                    [
                        Problem(
                            f"{rid} has {len(still_open)} letters still to come: name them "
                            f"({', '.join(still_open)}) or give --all"
                        )
                    ]
                )
        for key in chosen:
            letter = by_key[key]
            if letter.get("submitted_on") is None:
                self.set(letter, "submitted_on", on, _LETTER_ORDER)
                self.changes.append(f"{rid}: letter {key} submitted_on {on.isoformat()}")
            else:
                self.notes.append(
                    f"{rid}: letter {key} was submitted on {letter['submitted_on']} already"
                )

    def mark_program(self, pid: str, outcome: str, on: date) -> None:
        entry = self.entries("programs")[pid]
        old = entry.get("outcome")
        changed = str(old) != outcome if old is not None else outcome != "pending"
        if changed:
            self.set(entry, "outcome", outcome, _PROGRAM_ORDER)
            self.changes.append(f"{pid}: outcome {old or 'pending'} → {outcome}")
        else:
            self.notes.append(f"{pid}: outcome is already {outcome}")
        # The day a new outcome became known; "pending" is no news to date.
        stamped = entry.get("outcome_on")
        if outcome != "pending" and (changed or stamped is None) and stamped != on:
            self.set(entry, "outcome_on", on, _PROGRAM_ORDER)
            self.changes.append(f"{pid}: outcome_on {on.isoformat()}")

    def set(self, entry: CommentedMap, key: str, value: object, order: tuple[str, ...]) -> None:
        """Set ``entry[key]``, touching as few lines as the edit needs."""
        flow = entry.fa.flow_style()
        if flow:
            self.touched.update(_flow_lines(entry))
        if key in entry:
            old = entry[key]
            if isinstance(old, ScalarString) and isinstance(value, str):
                value = type(old)(value)  # the same quotes as before
            self.touched.add(entry.lc.value(key)[0])
            entry[key] = value
            return
        position = _position(entry, key, order)
        if not flow:
            self.added.add(key)
        if position == len(entry) and not flow:
            _append_after_trailing(entry, key, value)
        else:
            entry.insert(position, key, value)

    def dump(self) -> str:
        out = io.StringIO()
        self.yaml.dump(self.data, out)
        try:
            merged = keep_untouched(self.body, out.getvalue(), self.touched, self.added)
        except LinesWouldChange as err:
            where = ", ".join(str(n + 1 + self.offset) for n in err.lines[:5]) or "near the change"
            raise LormailError(
                [
                    Problem(
                        f"cannot record this without rewriting other lines of the roster "
                        f"({where}); nothing was written: please edit it by hand",
                        file=self.file,
                    )
                ]
            ) from None
        text = self.head + (merged.removesuffix("\n") if self.unterminated else merged)
        if self.crlf:
            text = text.replace("\n", "\r\n")
        return "\ufeff" + text if self.bom else text


def _missing(phrase: str, word: str, known: Iterable[str]) -> str:
    """``phrase`` (that ``word`` is not there), then a did-you-mean or the choices."""
    names = sorted(known)
    hint = did_you_mean(word, names)
    if hint:
        return phrase + hint
    return f"{phrase}: the roster has none" if not names else f"{phrase}: choose {_choices(names)}"


def _split_head(text: str) -> tuple[str, int, str]:
    """(what stands before the document's body, its line count, the body)."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("%"):
            continue
        if stripped == "---" or stripped.startswith("--- #"):
            return "".join(lines[: i + 1]), i + 1, "".join(lines[i + 1 :])
        break
    return "", 0, text


def _indents(data: object, lines: list[str]) -> dict[str, int]:
    """The file's own indentation, as ruamel.yaml's emitter takes it (one for the file)."""
    mapping, sequence, offset = None, None, None
    if isinstance(data, CommentedMap):
        for key, value in data.items():
            if not isinstance(value, CommentedMap | CommentedSeq) or not value:
                continue
            if value.fa.flow_style():
                continue
            key_col = data.lc.key(key)[1]
            if isinstance(value, CommentedMap) and mapping is None:
                mapping = value.lc.key(next(iter(value)))[1] - key_col
            elif isinstance(value, CommentedSeq) and sequence is None:
                line, content_col = value.lc.item(0)
                text = lines[line] if line < len(lines) else ""
                dash_col = len(text) - len(text.lstrip(" "))
                if text.lstrip(" ").startswith("-"):
                    sequence, offset = content_col - key_col, dash_col - key_col
    mapping = mapping if mapping and mapping > 0 else 2
    if sequence is None or offset is None or offset < 0 or sequence < offset + 2:
        sequence, offset = mapping + 2, mapping
    return {"mapping": mapping, "sequence": sequence, "offset": offset}


def _position(entry: CommentedMap, key: str, order: tuple[str, ...]) -> int:
    """After the last present key that comes before ``key`` in ``order``; else at the end."""
    if key not in order:
        return len(entry)
    before = set(order[: order.index(key)])
    after = set(order[order.index(key) + 1 :])
    keys = [str(k) for k in entry]
    last_before = max((i for i, k in enumerate(keys) if k in before), default=None)
    if last_before is not None:
        return last_before + 1
    first_after = min((i for i, k in enumerate(keys) if k in after), default=None)
    return first_after if first_after is not None else len(entry)


def _flow_lines(entry: CommentedMap) -> set[int]:
    first = entry.lc.line
    # Keys added by an earlier edit have no place yet.
    last = max((place[2] for place in entry.lc.data.values()), default=first)
    return set(range(first, last + 1))


def _trailing(container: CommentedMap | CommentedSeq) -> tuple[list[Any], int] | None:
    """The comment slot that holds what follows the last line of ``container``."""
    node: Any = container
    while True:
        if isinstance(node, CommentedMap) and len(node):
            last: Any = list(node)[-1]
            slot = 2
        elif isinstance(node, CommentedSeq) and len(node):
            last, slot = len(node) - 1, 0
        else:
            return None
        value = node[last]
        if (
            isinstance(value, CommentedMap | CommentedSeq)
            and len(value)
            and not value.fa.flow_style()
        ):
            node = value
            continue
        entry = node.ca.items.get(last)
        if entry is None or entry[slot] is None:
            return None
        return entry, slot


def _append_after_trailing(entry: CommentedMap, key: str, value: object) -> None:
    """Append ``key`` as the last line of ``entry``, before the comments and blank
    lines that follow it (ruamel.yaml would put it after them)."""
    found = _trailing(entry)
    entry[key] = value
    if found is None:
        return
    holder, slot = found
    token: CommentToken = holder[slot]
    own, newline, rest = token.value.partition("\n")
    if not rest:
        return
    token.value = own + newline
    moved = CommentToken("\n" + rest, token.start_mark, None, column=0)
    entry.ca.items[key] = [None, None, moved, None]
