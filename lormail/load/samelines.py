"""Keeping every line no edit touched exactly as it was.

ruamel.yaml re-emits the whole document, and some layouts it cannot keep: a
flow list broken over lines comes out on one.  :func:`keep_untouched` compares
the text before and after an edit as logical lines (a flow collection with its
continuation lines, whitespace aside) and puts back as they were those no edit
touched.  The result must still mean what the re-emitted text means.
"""

from __future__ import annotations

import difflib

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

__all__ = ["LinesWouldChange", "keep_untouched"]


class LinesWouldChange(Exception):
    """An edit cannot be written without rewriting lines it does not touch."""

    def __init__(self, lines: list[int]) -> None:
        self.lines = lines  # 0-based lines of the text before; empty when unknown
        super().__init__(lines)


def keep_untouched(old: str, new: str, touched: set[int], added: set[str]) -> str:
    """``new`` with every line of ``old`` outside ``touched`` as it was.

    ``touched`` holds the lines (0-based) of ``old`` an edit may rewrite;
    ``added`` the keys whose lines an edit inserted.  Both texts end in a
    newline.  Raises :class:`LinesWouldChange` when that cannot be.
    """
    a, b = _logical(old), _logical(new)
    units = {
        n for n, (first, lines) in enumerate(a) if touched & set(range(first, first + len(lines)))
    }
    matcher = difflib.SequenceMatcher(
        None, [_shape(u) for u in a], [_shape(u) for u in b], autojunk=False
    )
    out: list[str] = []
    stray: list[int] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend(line for _, lines in a[i1:i2] for line in lines)
            continue
        news = [line for _, lines in b[j1:j2] for line in lines]
        if tag == "replace" and i2 - i1 == j2 - j1:
            # Line for line: the touched as re-emitted, the others as they were.
            for n, m in zip(range(i1, i2), range(j1, j2), strict=True):
                out.extend(b[m][1] if n in units else a[n][1])
            continue
        if tag == "insert" or units.intersection(range(i1, i2)):
            out.extend(news)
            stray.extend(a[n][0] for n in range(i1, i2) if n not in units)
            continue
        # A new key's line next to something re-emitted in another layout.
        lead, _, tail = _added_lines(news, added)
        out.extend(lead + [line for _, lines in a[i1:i2] for line in lines] + tail)
    merged = "".join(out)
    if stray or not _same_meaning(merged, new):
        raise LinesWouldChange(stray)
    return merged


def _logical(text: str) -> list[tuple[int, list[str]]]:
    """The lines of ``text`` grouped as a flow collection's continuation lines are:
    (index of the first line, the lines)."""
    out: list[tuple[int, list[str]]] = []
    depth = 0
    for n, line in enumerate(text.splitlines(keepends=True)):
        if depth > 0:
            out[-1][1].append(line)
        else:
            out.append((n, [line]))
        depth = max(0, depth + _open_brackets(line))
    return out


def _open_brackets(line: str) -> int:
    """Brackets a line opens minus those it closes, outside quotes and comments."""
    depth, quote, previous = 0, "", " "
    for char in line:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"" and previous in " [{,:":
            quote = char
        elif char == "#" and previous in " \t":
            break
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        previous = char
    return depth


def _shape(unit: tuple[int, list[str]]) -> str:
    """A logical line, its continuation lines joined and its spacing made one."""
    text = "".join(unit[1])
    indent = text[: len(text) - len(text.lstrip(" "))]
    return indent + " ".join(text.split())


def _added_lines(lines: list[str], keys: set[str]) -> tuple[list[str], list[str], list[str]]:
    """(lines of added keys at the start, the rest, lines of added keys at the end)."""

    def added(line: str) -> bool:
        key, colon, _ = line.strip().partition(":")
        return bool(colon) and key in keys

    start = 0
    while start < len(lines) and added(lines[start]):
        start += 1
    end = len(lines)
    while end > start and added(lines[end - 1]):
        end -= 1
    return lines[:start], lines[start:end], lines[end:]


def _same_meaning(merged: str, new: str) -> bool:
    reader = YAML(typ="safe", pure=True)
    try:
        return bool(reader.load(merged) == reader.load(new))
    except YAMLError:
        return False
