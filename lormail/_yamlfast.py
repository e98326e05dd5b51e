"""A fast reader for the plain subset of YAML that rosters are written in.

PyYAML needs about a second for a 10,000-letter roster, mostly to build a
Python mark for every event; this reader takes a fraction of that by working
line by line.  It accepts only what it is sure of, producing exactly the nodes
(text, plainness, line and column) that libyaml's events would:

- block mappings with simple keys (``[A-Za-z_][A-Za-z0-9_-]*``) and block
  sequences, indented with spaces;
- one-line flow sequences and mappings of scalars;
- plain scalars on one line, single-quoted ones, double-quoted ones without
  escapes, and ``|`` / ``|-`` literal blocks.

Anything else raises :class:`Unsupported` and ``yamlsrc`` hands the text to
PyYAML, which also gives every malformed file its exact error.  A test compares
the two readers on generated documents.
"""

from __future__ import annotations

import functools
import re

from lormail.yamlsrc import MapNode, Node, Scalar, SeqNode


class Unsupported(Exception):
    """Outside the subset; the caller falls back to PyYAML."""


EMPTY = Scalar(0, 0, "", True)  # returned for a document with no content

# One line: its indent, "- " (an entry of a sequence), a simple key with the
# spaces after its colon, and the rest; one match for every line of the text.
_ROW = re.compile(r"^( *)(- +)?(?:([A-Za-z_][A-Za-z0-9_-]*):( +|$))?(.*)$", re.MULTILINE)
_Row = tuple[str, str, str, str, str]
_FKEY = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*): +")
_FKEY_ONLY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_PLAIN = re.compile(
    r"((?:[^\s\-?:,\[\]{}#&*!|>'\"%@`]|[-?:](?=\S))(?:[^\s:#]|:(?=\S)|(?<=\S)#| +(?=[^\s#]))*)"
    r"(?: +#.*| *)$"
)
_FPLAIN = re.compile(
    r"(?:[^\s\-?:,\[\]{}#&*!|>'\"%@`]|-(?=[^\s,\[\]{}]))"
    r"(?:[^\s:,\[\]{}#]|:(?=[^\s,\[\]{}])| +(?=[^\s,\[\]{}#:]))*"
)
_DQ = re.compile(r'"([^"\\]*)"')
_SQ = re.compile(r"'((?:[^']|'')*)'")
_TAIL = re.compile(r"(?: +#.*| *)$")
_BLOCK = re.compile(r"\|(-?)(?: +#.*| *)$")
_SPACES = re.compile(" *")
# A one-line flow mapping in its most common form, {key: value, key: "value"}:
# what _flow would read, in one match.
_FENTRY = r'([A-Za-z_][A-Za-z0-9_-]*): ("[^"\\]*"|[A-Za-z0-9_][A-Za-z0-9_.+/@-]*)'
_FMAP = re.compile(rf"\{{({_FENTRY}(?:, {_FENTRY})*)\}}(?: +#.*| *)\Z")
_FENTRIES = re.compile(_FENTRY)
_FMAP2 = re.compile(rf"\{{{_FENTRY}(?:, {_FENTRY})?\}}(?: +#.*| *)\Z")  # one or two, as groups
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
# In a one-line flow collection, characters that need the careful tokenizer.
_FLOW_SPECIAL = re.compile(r"['\[\]{}#&*!|>%@`?\\]|:(?! )|^ *-|, *-|: +-")


@functools.cache
def _odd() -> re.Pattern[str]:
    """Tabs, CR, BOM and YAML 1.1's extra line breaks (NEL, LS, PS) and anything
    libyaml refuses: leave all of those to PyYAML.  (Compiled on first use: all
    of them are unprintable, so most texts never need it.)"""
    return re.compile(
        "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
    )


def parse(text: str) -> Node:
    """The document's root node, or :data:`EMPTY`; raises :class:`Unsupported`."""
    if not text.replace("\n", " ").isprintable() and _odd().search(text):
        raise Unsupported
    # One row per line: (indent, "- ", key, spaces after the colon, the rest).
    rows: list[_Row] = _ROW.findall(text)
    n = len(rows)
    root: Node | None = None
    # Open block collections, innermost last, with the column (0-based) of
    # their entries.  A sequence may share its parent key's column.
    cols: list[int] = []
    nodes: list[MapNode | SeqNode] = []
    # A key whose line ended after the colon: (its map's column, key, its line
    # and column, map).
    waiting: tuple[int, str, int, int, MapNode] | None = None
    # The innermost collection's column, and that collection when it is a
    # mapping: a line with a key at that column adds to it (the common case).
    top_col = -1
    top_map: MapNode | None = None
    entry: MapNode
    i = 0
    while i < n:
        sp, dash, key, sep, rest = rows[i]
        i += 1
        ind = len(sp)
        if ind == top_col and key and not dash and waiting is None and top_map is not None:
            entry = top_map
            col = ind
        else:
            if not key and not dash:
                if not rest or rest[0] == "#":
                    continue
                raise Unsupported  # a scalar on a line of its own: multi-line text
            if waiting is not None:
                wcol, wkey, wline, wkcol, wmap = waiting
                waiting = None
                if ind > wcol or (ind == wcol and dash):
                    child: MapNode | SeqNode = SeqNode(i, ind + 1) if dash else MapNode(i, ind + 1)
                    wmap.entries.append((wkey, wline, wkcol, True, child))
                    cols.append(ind)
                    nodes.append(child)
                else:
                    wmap.entries.append((wkey, wline, wkcol, True, _null_after(wkey, wline, wkcol)))
            while cols and cols[-1] > ind:
                cols.pop()
                nodes.pop()
            if root is None:
                if ind:
                    raise Unsupported
                root = SeqNode(i, 1) if dash else MapNode(i, 1)
                cols.append(0)
                nodes.append(root)
            if dash:
                top = nodes[-1] if cols and cols[-1] == ind else None
                if type(top) is not SeqNode:
                    raise Unsupported
                col = ind + len(dash)
                if not key:
                    if not rest or rest[0] == "#":
                        raise Unsupported
                    if rest[0] == "{":
                        value: Node | None = _flow_map(rest, i, col)
                        if value is None:
                            value, i = _inline(rest, i, col, ind, rows)
                    else:
                        value, i = _inline(rest, i, col, ind, rows)
                    top.items.append(value)
                    top_col, top_map = ind, None
                    continue
                entry = MapNode(i, col + 1)
                top.items.append(entry)
                cols.append(col)
                nodes.append(entry)
            else:
                if cols and cols[-1] == ind and type(nodes[-1]) is SeqNode and len(cols) > 1:
                    cols.pop()  # a sequence at its key's column ends at the next key
                    nodes.pop()
                top = nodes[-1] if cols and cols[-1] == ind else None
                if type(top) is not MapNode:
                    raise Unsupported
                entry = top
                col = ind
            top_col, top_map = col, entry
        if not rest or rest[0] == "#":
            waiting = (col, key, i, col + 1, entry)
            continue
        col0 = col + len(key) + 1 + len(sep)  # 0-based column of the value
        c = rest[0]
        if c not in _INDICATORS and ":" not in rest and "#" not in rest:
            # The common case inline: nothing in it can end a plain scalar.
            entry.entries.append(
                (key, i, col + 1, True, Scalar(i, col0 + 1, rest.rstrip(" "), True))
            )
        elif c == '"' and rest.find('"', 1) == len(rest) - 1 and "\\" not in rest:
            entry.entries.append((key, i, col + 1, True, Scalar(i, col0 + 1, rest[1:-1], False)))
        else:
            value, after = _inline(rest, i, col0, col, rows)  # after a | block's lines
            entry.entries.append((key, i, col + 1, True, value))
            i = after
    if waiting is not None:
        wcol, wkey, wline, wkcol, wmap = waiting
        wmap.entries.append((wkey, wline, wkcol, True, _null_after(wkey, wline, wkcol)))
    return EMPTY if root is None else root


def _null_after(key: str, line: int, col: int) -> Scalar:
    """The empty value of ``key:`` at the end of its line: libyaml places it after the colon."""
    return Scalar(line, col + len(key) + 1, "", True)


def _inline(rest: str, line: int, col0: int, parent: int, rows: list[_Row]) -> tuple[Node, int]:
    """A value starting at 0-based column ``col0`` of ``line``; and the next line's index.

    ``parent`` is the column of the collection the value belongs to: a ``|``
    block's lines must be indented deeper.
    """
    c = rest[0]
    if c not in _INDICATORS and ":" not in rest and "#" not in rest:
        # The common case, without a regex: nothing in it can end a plain scalar.
        return Scalar(line, col0 + 1, rest.rstrip(" "), True), line
    if c == '"' or c == "'":
        if c == '"' and rest.find('"', 1) == len(rest) - 1 and "\\" not in rest:
            return Scalar(line, col0 + 1, rest[1:-1], False), line  # what _DQ would take
        m = (_DQ if c == '"' else _SQ).match(rest)
        if m is None or not _TAIL.match(rest, m.end()):
            raise Unsupported
        text = m.group(1) if c == '"' else m.group(1).replace("''", "'")
        return Scalar(line, col0 + 1, text, False), line
    if c == "{":
        return _flow_map(rest, line, col0) or _flow_quick(rest, line, col0) or _flow(
            rest, line, col0
        ), line
    if c == "[":
        return _flow_quick(rest, line, col0) or _flow(rest, line, col0), line
    if c == "|":
        m = _BLOCK.match(rest)
        if m is None:
            raise Unsupported
        return _literal(rows, line, col0, parent, bool(m.group(1)))
    m = _PLAIN.match(rest)
    if m is None:
        raise Unsupported
    return Scalar(line, col0 + 1, m.group(1), True), line


def _flow_map(rest: str, line: int, col0: int) -> MapNode | None:
    """``{k: v, k2: "v2"}`` with one space after each colon and comma, in one match.

    Exactly what :func:`_flow` reads from such a line; ``None`` for any other.
    """
    m = _FMAP2.match(rest)
    found: list[tuple[str, str]]
    if m is not None:
        k1, v1, k2, v2 = m.groups()
        found = [(k1, v1)] if k2 is None else [(k1, v1), (k2, v2)]
    else:
        m = _FMAP.match(rest)
        if m is None:
            return None
        found = _FENTRIES.findall(rest, 1, m.end(1))
    node = MapNode(line, col0 + 1)
    entries = node.entries
    kcol = col0 + 2  # 1-based column of the first key
    for key, value in found:
        vcol = kcol + len(key) + 2
        if value[0] == '"':
            entries.append((key, line, kcol, True, Scalar(line, vcol, value[1:-1], False)))
        else:
            entries.append((key, line, kcol, True, Scalar(line, vcol, value, True)))
        kcol = vcol + len(value) + 2
    return node


def _flow(rest: str, line: int, col0: int) -> Node:
    """A one-line ``[a, b]`` or ``{k: v, k2: v2}`` of scalars, token by token."""
    closing = "]" if rest[0] == "[" else "}"
    node: MapNode | SeqNode = SeqNode(line, col0 + 1) if closing == "]" else MapNode(line, col0 + 1)
    pos = _SPACES.match(rest, 1).end()  # type: ignore[union-attr]
    if rest.startswith(closing, pos):
        pos += 1
    else:
        while True:
            key: Scalar | None = None
            if isinstance(node, MapNode):
                m = _FKEY.match(rest, pos)
                if m is None:
                    raise Unsupported
                key = Scalar(line, col0 + pos + 1, m.group(1), True)
                pos = m.end()
            value, pos = _flow_scalar(rest, pos, line, col0)
            if isinstance(node, MapNode):
                assert key is not None
                node.add(key, value)
            else:
                node.items.append(value)
            pos = _SPACES.match(rest, pos).end()  # type: ignore[union-attr]
            if rest.startswith(",", pos):
                pos = _SPACES.match(rest, pos + 1).end()  # type: ignore[union-attr]
                if rest.startswith(closing, pos):
                    raise Unsupported  # a trailing comma: leave it to libyaml
                continue
            if rest.startswith(closing, pos):
                pos += 1
                break
            raise Unsupported
    if not _TAIL.match(rest, pos):
        raise Unsupported
    return node


def _literal(
    rows: list[_Row], line: int, col0: int, parent: int, strip: bool
) -> tuple[Scalar, int]:
    """A ``|`` block after ``line`` (1-based): the lines indented deeper than ``parent``."""
    j, n = line, len(rows)
    ind = -1
    parts: list[str] = []
    while j < n:
        sp, dash, key, sep, rest = rows[j]
        raw = f"{sp}{dash}{key}:{sep}{rest}" if key else f"{sp}{dash}{rest}"
        if not raw:
            parts.append("")
            j += 1
            continue
        s = raw.lstrip(" ")
        k = len(raw) - len(s)
        if not s:
            raise Unsupported  # all-space lines: libyaml's rules are subtle
        if ind < 0:
            if k <= parent:
                break
            ind = k
        elif k < ind:
            break
        parts.append(raw[ind:])
        j += 1
    if ind < 0:
        raise Unsupported
    while parts and not parts[-1]:
        parts.pop()
    text = "\n".join(parts)
    if not strip:
        text += "\n"
    return Scalar(line, col0 + 1, text, False), j


def _flow_scalar(rest: str, pos: int, line: int, col0: int) -> tuple[Scalar, int]:
    c = rest[pos : pos + 1]
    if c == '"' or c == "'":
        m = (_DQ if c == '"' else _SQ).match(rest, pos)
        if m is None:
            raise Unsupported
        text = m.group(1) if c == '"' else m.group(1).replace("''", "'")
        return Scalar(line, col0 + pos + 1, text, False), m.end()
    m = _FPLAIN.match(rest, pos)
    if m is None:
        raise Unsupported
    return Scalar(line, col0 + pos + 1, m.group(0), True), m.end()


def _flow_quick(rest: str, line: int, col0: int) -> Node | None:
    """``[a, b]`` or ``{k: v, k2: v2}`` whose scalars are all simple, split without a regex each."""
    closing = "]" if rest[0] == "[" else "}"
    end = rest.find(closing)
    if end < 0:
        return None
    inner = rest[1:end]
    if _FLOW_SPECIAL.search(inner) or not _TAIL.match(rest, end + 1):
        return None
    if not inner.strip(" "):
        return SeqNode(line, col0 + 1) if closing == "]" else MapNode(line, col0 + 1)
    pos = col0 + 2  # 1-based column of inner[0]
    if closing == "]":
        seq = SeqNode(line, col0 + 1)
        for part in inner.split(","):
            text = part.strip(" ")
            if not text or '"' in text or ": " in text:  # `[a: b]` holds a mapping
                return None
            seq.items.append(Scalar(line, pos + len(part) - len(part.lstrip(" ")), text, True))
            pos += len(part) + 1
        return seq
    mapping = MapNode(line, col0 + 1)
    for part in inner.split(","):
        key, sep, value = part.partition(": ")
        lead = len(key) - len(key.lstrip(" "))
        key = key[lead:]
        text = value.strip(" ")
        if not sep or not text or ":" in value or not _FKEY_ONLY.match(key):
            return None
        plain = True
        if '"' in text:
            # Only "simple" quoted values: a comma inside quotes was split above.
            if len(text) < 2 or text[0] != '"' or text[-1] != '"' or '"' in text[1:-1]:
                return None
            text, plain = text[1:-1], False
        kcol = pos + lead
        vcol = kcol + len(key) + 2 + len(value) - len(value.lstrip(" "))
        mapping.entries.append((key, line, kcol, True, Scalar(line, vcol, text, plain)))
        pos += len(part) + 1
    return mapping
