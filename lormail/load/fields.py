"""Typed readers over ``yamlsrc`` nodes that record a problem instead of raising.

Owns what roster and config share: keys of a mapping (unknown and duplicate
keys, with a did-you-mean), and the scalar types — text fit for a mail header
or a body, booleans, whole numbers, dates, e-mail addresses, IANA zones.
Types come from a scalar's original text, not YAML 1.1's guesses, so that
``no`` where text belongs or ``9:30`` where a window belongs get a hint.

Every reader returns ``None`` when the value is null or wrong; in the second
case it has recorded a problem, and the loader raises them all at the end, so
placeholders never leave the loader.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
import zoneinfo
from collections.abc import Collection, Iterable

from lormail.errors import LormailError, Problem
from lormail.load.yamlsrc import MapNode, Node, Scalar, SeqNode

NULLS = frozenset(("", "~", "null", "Null", "NULL"))
# YAML 1.1 booleans, exactly as PyYAML's resolver reads them.
BOOLS = {
    **dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}
# What YAML 1.1 reads as a base-60 integer, e.g. 9:30 as 570.
SEXAGESIMAL = re.compile(r"[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+")

HEADER, LINE, BODY = "header", "line", "body"
_CONTROL_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BODY = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BREAKS = frozenset("\r\n\u2028\u2029")
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:(?:{_LABEL}\.)+{_LABEL}|localhost)")


def shown(text: str, limit: int = 60) -> str:
    """A value quoted for a one-line message: control characters escaped, long ones cut."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if _CONTROL_LINE.search(text):
        text = "".join(
            c.encode("unicode_escape").decode("ascii") if _CONTROL_LINE.match(c) else c
            for c in text
        )
    return f"'{text}'"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest option, or ``''``."""
    choices = sorted(options)  # sets too: the same hint on every run
    lowered = {o.lower(): o for o in choices}
    if word.lower() in lowered:
        return f" (did you mean '{lowered[word.lower()]}'?)"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


def address_problem(addr: str) -> str | None:
    """Why ``addr`` is not a bare e-mail address, or ``None`` when it is one."""
    if _ADDRESS.fullmatch(addr) and len(addr) <= 254 and len(addr.partition("@")[0]) <= 64:
        return None
    if "<" in addr and ">" in addr:
        return f"{shown(addr)} is not an e-mail address; write only the address here"
    return f"{shown(addr)} is not an e-mail address"


@functools.cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


@functools.lru_cache(maxsize=512)
def zone(name: str) -> zoneinfo.ZoneInfo | str:
    """The IANA zone called ``name``, or why there is none (with a did-you-mean)."""
    if name and not name.startswith(("/", ".")) and ".." not in name and "\\" not in name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    return f"{shown(name)} is not an IANA time zone{did_you_mean(name, _zone_names())}"


class Source:
    """One file's problems, and the readers that record them."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        # Keys that get their own message instead of "unknown key" (config: password).
        self.refused: Collection[str] = ()
        # Dates already read, by their text (stripped): rosters repeat the same few hundred.
        self.days: dict[str, dt.date] = {}

    def add(self, node: Node, path: str, message: str) -> None:
        self.problems.append(Problem(message, self.file, node.line, node.col, path or None))

    def raise_problems(self) -> None:
        """All problems at once, in file order."""
        if self.problems:
            self.problems.sort(key=lambda p: (p.line or 0, p.col or 0))
            raise LormailError(self.problems)

    def fields(
        self, node: Node, path: str, known: Collection[str], required: Collection[str] = ()
    ) -> dict[str, Node] | None:
        """A mapping's values by key; unknown, duplicate and missing keys are problems."""
        if not isinstance(node, MapNode):
            if is_null(node) and not required:
                return {}
            if is_null(node):
                needed = ", ".join(required)
                self.add(node, path, f"is empty; it needs keys and values ({needed})")
            else:
                what = describe(node)
                self.add(node, path, f"expected keys and values (key: value), not {what}")
            return None
        entries = node.entries
        out: dict[str, Node] = {}
        for name, _, _, _, value in entries:
            out[name] = value
        if len(out) == len(entries) and isinstance(known, frozenset) and known.issuperset(out):
            pass  # every key known, none twice: nothing to report but missing values
        else:
            out = self._keys(node, path, known)
        for name in required:
            given = out.get(name)
            if given is None:
                self.add(node, path, f"missing key '{name}'")
            elif type(given) is Scalar and given.plain and given.text in NULLS:
                self.add(given, join(path, name), "needs a value")
        return out

    def _keys(self, node: MapNode, path: str, known: Collection[str]) -> dict[str, Node]:
        """The known keys' values, each key's first; the others are problems."""
        out: dict[str, Node] = {}
        for key, value in node.items:
            name = key.text
            if name in out:
                first = next(k for k, _ in node.items if k.text == name)
                self.add(key, path, f"duplicate key '{name}' (first on line {first.line})")
            elif name in known:
                out[name] = value
            elif name == "<<":
                self.add(key, path, "merge keys (<<) are not supported; write the keys out")
            elif name.lower() not in self.refused:
                self.add(key, path, f"unknown key {shown(name)}{did_you_mean(name, known)}")
        return out

    def items(self, node: Node, path: str, example: str) -> list[Node]:
        """A sequence's entries; null is an empty list."""
        if isinstance(node, SeqNode):
            return node.items
        if not is_null(node):
            self.add(node, path, f"expected a list, like {example}, not {describe(node)}")
        return []

    def scalar(self, node: Node, path: str, what: str) -> Scalar | None:
        if isinstance(node, Scalar):
            return node
        self.add(node, path, f"expected {what}, not {describe(node)}")
        return None

    def text(self, node: Node, path: str, kind: str = HEADER) -> str | None:
        """One line of text (``HEADER`` or ``LINE``) or several (``BODY``)."""
        if not isinstance(node, Scalar):
            self.scalar(node, path, "text")
            return None
        sc = node
        t = sc.text
        if sc.plain:
            if t in NULLS:
                return None
            if t in BOOLS:
                self.add(sc, path, f'YAML reads {t} as {str(BOOLS[t]).lower()}; quote it: "{t}"')
                return None
        if t.isprintable():
            return t  # the control characters below are all unprintable
        bad = (_CONTROL_BODY if kind == BODY else _CONTROL_LINE).search(t)
        if bad is not None:
            c = bad.group()
            if c in _BREAKS and kind == HEADER:
                message = (
                    "holds a line break, which a mail header cannot carry; keep it on one line"
                )
            elif c in _BREAKS:
                message = "holds a line break; keep it on one line"
            else:
                message = f"holds a control character (U+{ord(c):04X}); remove it"
            self.add(sc, path, message)
            return None
        return t

    def required_text(self, node: Node | None, path: str, kind: str = HEADER) -> str | None:
        """Text that must not be empty; a missing or null one was reported by :meth:`fields`."""
        if node is None:
            return None
        t = self.text(node, path, kind)
        if t is not None and not t.strip():
            self.add(node, path, "must not be empty")
            return None
        return t

    def boolean(self, node: Node, path: str) -> bool | None:
        sc = self.scalar(node, path, "true or false")
        if sc is None or (sc.plain and sc.text in NULLS):
            return None
        if sc.plain and sc.text in BOOLS:
            return BOOLS[sc.text]
        if not sc.plain and sc.text in BOOLS:
            self.add(sc, path, f'expected true or false without quotes, not "{sc.text}"')
        else:
            self.add(sc, path, f"expected true or false, not {shown(sc.text)}")
        return None

    def integer(self, node: Node, path: str, low: int, high: int | None = None) -> int | None:
        sc = self.scalar(node, path, "a whole number")
        if sc is None or (sc.plain and sc.text in NULLS):
            return None
        if not (sc.plain and _INT.fullmatch(sc.text)):
            self.add(sc, path, f"expected a whole number, not {shown(sc.text)}")
            return None
        value = int(sc.text)
        if high is None and value < low:
            self.add(sc, path, f"must be at least {low}, not {value}")
        elif high is not None and not low <= value <= high:
            self.add(sc, path, f"must be between {low} and {high}, not {value}")
        else:
            return value
        return None

    def date(self, node: Node, path: str) -> dt.date | None:
        sc = self.scalar(node, path, "a date")
        if sc is None or (sc.plain and sc.text in NULLS):
            return None
        return self.date_of(sc, path, sc.text.strip())

    def date_of(self, sc: Scalar, path: str, t: str) -> dt.date | None:
        day = self.days.get(t)
        if day is not None:
            return day
        m = _DATE.fullmatch(t)
        if m is None:
            self.add(sc, path, f"expected a date like 2026-09-24, not {shown(sc.text)}")
            return None
        try:
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as err:
            self.add(sc, path, f"{shown(t)} is not a real date ({err})")
            return None
        self.days[t] = day
        return day

    def email(self, node: Node, path: str) -> str | None:
        addr = self.text(node, path)
        if addr is None:
            return None
        why = address_problem(addr)
        if why is not None:
            self.add(node, path, why)
            return None
        return addr

    def zone(self, node: Node, path: str) -> zoneinfo.ZoneInfo | None:
        name = self.text(node, path, LINE)
        if name is None:
            return None
        found = zone(name)
        if isinstance(found, str):
            self.add(node, path, found)
            return None
        return found

    def choice(self, node: Node, path: str, options: Collection[str]) -> str | None:
        word = self.text(node, path, LINE)
        if word is None:
            return None
        if word not in options:
            listed = " | ".join(options)
            self.add(
                node, path, f"{shown(word)} is not one of {listed}{did_you_mean(word, options)}"
            )
            return None
        return word


def ready_text(node: Node) -> str | None:
    """``node``'s text when :meth:`Source.text` would return it as it is, for any kind,
    without a problem; else ``None`` (and :meth:`Source.text` has the answer)."""
    if type(node) is Scalar:
        t = node.text
        if t.isprintable() and not (node.plain and (t in NULLS or t in BOOLS)):
            return t
    return None


def is_null(node: Node) -> bool:
    return isinstance(node, Scalar) and node.plain and node.text in NULLS


def describe(node: Node) -> str:
    if isinstance(node, MapNode):
        return "a mapping"
    if isinstance(node, SeqNode):
        return "a list"
    assert isinstance(node, Scalar)
    return shown(node.text)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
