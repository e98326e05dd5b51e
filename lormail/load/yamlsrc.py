"""YAML text → position-aware nodes, and YAML's own errors as one-line problems.

Owns the reading of ``roster.yaml`` and ``config.yaml`` up to, but not
including, their meaning: :func:`parse` gives a tree of :class:`Scalar`,
:class:`MapNode` and :class:`SeqNode`, each with its 1-based line and column.
Scalars keep their original text and whether they were plain (unquoted); the
loaders type them themselves, so that YAML 1.1's guesses (``9:30`` as 570,
``no`` as false) are caught with a hint instead of passing silently.
Duplicate keys survive in :attr:`MapNode.entries` for the loaders to report.

The tree is built from libyaml's event stream (PyYAML's ``CSafeLoader``
where it was built with libyaml), whose positions and errors are the
reference.  Aliases, explicit tags and more than one document are refused.

File names in problems: see :func:`display_name`.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from lormail.errors import LormailError, Problem

if TYPE_CHECKING:
    import yaml

# Tags a plain scalar may carry from the resolver; an explicit one is refused.
_STR_TAG = "tag:yaml.org,2002:str"
_COLLECTION_TAGS = (None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class Node:
    __slots__ = ("col", "line")

    def __init__(self, line: int, col: int) -> None:
        self.line = line  # 1-based
        self.col = col  # 1-based, in characters


class Scalar(Node):
    __slots__ = ("plain", "text")

    def __init__(self, line: int, col: int, text: str, plain: bool) -> None:
        self.line = line
        self.col = col
        self.text = text
        self.plain = plain  # unquoted, untagged: YAML 1.1 would guess its type

    def __repr__(self) -> str:
        return f"Scalar({self.line}:{self.col} {self.text!r}{'' if self.plain else ' quoted'})"


class MapNode(Node):
    __slots__ = ("entries",)

    def __init__(self, line: int, col: int) -> None:
        self.line = line
        self.col = col
        # Per key, in order and duplicates kept: its text, line, column and
        # plainness, and its value.  (Key scalars are made only when asked for.)
        self.entries: list[tuple[str, int, int, bool, Node]] = []

    @property
    def items(self) -> list[tuple[Scalar, Node]]:
        """The (key, value) pairs, as a new list: add to the mapping with :meth:`add`."""
        return [
            (Scalar(line, col, key, plain), value) for key, line, col, plain, value in self.entries
        ]

    def add(self, key: Scalar, value: Node) -> None:
        self.entries.append((key.text, key.line, key.col, key.plain, value))

    def __repr__(self) -> str:
        return f"MapNode({self.line}:{self.col} {self.items!r})"


class SeqNode(Node):
    __slots__ = ("items",)

    def __init__(self, line: int, col: int) -> None:
        self.line = line
        self.col = col
        self.items: list[Node] = []

    def __repr__(self) -> str:
        return f"SeqNode({self.line}:{self.col} {self.items!r})"


def display_name(path: Path) -> str:
    """How problems name a file: relative to the working folder when inside it.

    The path as given is made absolute (without resolving symlinks); if it lies
    under the current working directory, the relative path is used
    (``roster.yaml``, ``sub/roster.yaml``), otherwise the path exactly as given.
    """
    try:
        absolute = os.path.abspath(path)
        cwd = os.getcwd()
    except OSError:
        return str(path)
    if absolute.startswith(cwd.rstrip(os.sep) + os.sep):
        return os.path.relpath(absolute, cwd)
    return str(path)


MAX_BYTES = 5 * 1024 * 1024  # far above any real roster; a bigger file is not one
_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_problem(st: os.stat_result) -> str | None:
    """Why a file with this status is not one lormail reads, or ``None``."""
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "a special file")
        return f"is {kind}, not a regular file"
    if st.st_size > MAX_BYTES:
        return f"is {st.st_size / 2**20:.1f} MB; lormail reads files up to {MAX_BYTES // 2**20} MB"
    return None


def read_bytes(path: Path, file: str, missing_hint: str) -> bytes:
    """A regular file's bytes, at most :data:`MAX_BYTES`, or a one-line :class:`LormailError`.

    A pipe, a device or ``/dev/zero`` is refused before anything is read
    (opened without blocking, so a FIFO with no writer cannot hang us).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LormailError([Problem(f"no such file; {missing_hint}", file=file)]) from None
    except IsADirectoryError:
        raise LormailError([Problem("is a folder, not a file", file=file)]) from None
    except OSError as err:
        raise LormailError([Problem(f"cannot read: {err.strerror}", file=file)]) from None
    try:
        why = file_problem(os.fstat(fd))
        if why is not None:
            raise LormailError([Problem(why, file=file)])
        buf = bytearray()
        while chunk := os.read(fd, MAX_BYTES + 1 - len(buf)):
            buf += chunk
        data = bytes(buf)
    except OSError as err:
        raise LormailError([Problem(f"cannot read: {err.strerror}", file=file)]) from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:  # it grew after the check
        raise LormailError([Problem(f"is over {MAX_BYTES // 2**20} MB", file=file)])
    return data


def template_file_problems(folder: Path | None) -> list[Problem]:
    """Templates in the override ``folder`` that are not files lormail reads."""
    problems = []
    for path in sorted(folder.glob("*.j2")) if folder is not None else ():
        try:
            why = file_problem(path.stat())
        except OSError:
            continue  # a dangling link: the template loader reports what it misses
        if why is not None:
            problems.append(Problem(why, file=display_name(path)))
    return problems


def read_text(path: Path, file: str, missing_hint: str) -> str:
    """The file's text as UTF-8, or a one-line :class:`LormailError`."""
    data = read_bytes(path, file, missing_hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise LormailError(
            [
                Problem(
                    f"not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8",
                    file=file,
                    line=line,
                    col=col,
                )
            ]
        ) from None


def parse(text: str, file: str) -> Node | None:
    """The single document in ``text`` as nodes; ``None`` when it holds nothing.

    Raises :class:`LormailError` for malformed YAML, aliases, explicit tags
    and more than one document, each as ``FILE:LINE:COL: message``.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    return _parse_events(text, file)


@functools.cache
def _loader() -> type:
    """libyaml's loader when PyYAML was built with it."""
    import yaml

    loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return loader


def _parse_events(text: str, file: str) -> Node | None:
    """The reference reader: libyaml's event stream, built into nodes without recursion."""
    import yaml

    stack: list[MapNode | SeqNode] = []
    keys: list[Scalar | None] = []  # per open mapping: the key awaiting its value
    root: Node | None = None
    documents = 0
    try:
        for ev in yaml.parse(text, Loader=_loader()):
            mark = ev.start_mark
            line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            node: Node
            if isinstance(ev, yaml.ScalarEvent):
                if ev.tag is None or ev.tag == "!":
                    plain = ev.style in (None, "") and ev.implicit[0]
                elif ev.tag == _STR_TAG:
                    plain = False  # `!!str yes`: the author asked for text
                else:
                    raise _error(file, line, col, f"explicit tags ({ev.tag}) are not supported")
                node = Scalar(line, col, ev.value, bool(plain))
            elif isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if ev.tag not in _COLLECTION_TAGS:
                    raise _error(file, line, col, f"explicit tags ({ev.tag}) are not supported")
                node = (
                    MapNode(line, col)
                    if isinstance(ev, yaml.MappingStartEvent)
                    else (SeqNode(line, col))
                )
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                stack.pop()
                if isinstance(ev, yaml.MappingEndEvent):
                    keys.pop()
                continue
            elif isinstance(ev, yaml.AliasEvent):
                raise _error(
                    file,
                    line,
                    col,
                    f"aliases (*{ev.anchor}) are not supported; write the value out in full",
                )
            elif isinstance(ev, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _error(file, line, col, "a second document (---); keep everything in one")
                continue
            else:
                continue
            if not stack:
                root = node
            else:
                parent = stack[-1]
                if isinstance(parent, SeqNode):
                    parent.items.append(node)
                elif keys[-1] is None:
                    if not isinstance(node, Scalar):
                        raise _error(file, line, col, "a key must be plain text")
                    keys[-1] = node
                else:
                    key = keys[-1]
                    assert key is not None
                    parent.add(key, node)
                    keys[-1] = None
            if isinstance(node, MapNode):
                stack.append(node)
                keys.append(None)
            elif isinstance(node, SeqNode):
                stack.append(node)
    except yaml.MarkedYAMLError as err:
        raise _from_marked(err, text, file) from None
    except yaml.reader.ReaderError as err:
        raise _from_reader(err, text, file) from None
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "not valid YAML"
        raise LormailError([Problem(first, file=file)]) from None
    except UnicodeError:
        raise LormailError(
            [Problem("holds characters that are not valid Unicode text", file=file)]
        ) from None
    if isinstance(root, Scalar) and root.plain and root.text in ("", "~", "null", "Null", "NULL"):
        return None
    return root


def value_place(path: Path, keys: tuple[str, ...]) -> tuple[int, int] | None:
    """The 1-based line and column of the value at ``keys`` in a YAML file, if it is there."""
    file = display_name(path)
    try:
        node = parse(read_text(path, file, ""), file)
    except LormailError:
        return None
    for key in keys:
        if not isinstance(node, MapNode):
            return None
        node = next((value for name, *_, value in node.entries if name == key), None)
    return (node.line, node.col) if node is not None else None


def _error(file: str, line: int, col: int, message: str) -> LormailError:
    return LormailError([Problem(message, file=file, line=line, col=col)])


def _from_marked(err: yaml.MarkedYAMLError, text: str, file: str) -> LormailError:
    """YAML's error at the place to fix: where an unclosed quote or bracket began.

    libyaml stops where the text stopped making sense, often far below the
    quote or bracket left open; its context mark, or the quoted string that
    ran on, says where that began.
    """
    opened = _unclosed(err, text)
    if opened is not None:
        (line, col), what = opened
        return _error(file, line, col, f"this {what} is never closed")
    began = err.context_mark
    if err.context == "while scanning a simple key" and began is not None:
        # libyaml notices the missing ':' on the next line; the key is the place.
        return _error(file, began.line + 1, began.column + 1, "this key has no ':' after it")
    mark = err.problem_mark or err.context_mark
    message = " ".join((err.problem or "not valid YAML").split())
    block = _BLOCKS.get(err.context or "")
    if block is not None and began is not None and mark is not None and began.line < mark.line:
        # The line to fix is here; where its block began tells which one it breaks.
        message += f" (in the {block} that begins at line {began.line + 1})"
    elif err.context:
        message += f" ({' '.join(err.context.split())})"
    if mark is None:
        return LormailError([Problem(message, file=file)])
    return _error(file, mark.line + 1, mark.column + 1, message)


# A line that reads like a key or a list item, no deeper than the line the
# quote opened on: inside a quoted string, the sign that the string ran on
# past where its closing quote was meant to be.
_STRUCTURE = re.compile(r"( *)(?:-\s|[^\s:#'\"][^:#]*:(?:\s|$))")
_BLOCKS = {"while parsing a block mapping": "mapping", "while parsing a block collection": "list"}
_FLOWS = {"while parsing a flow sequence": "[", "while parsing a flow mapping": "{"}


def _swallowed(opening: str, inside: list[str]) -> bool:
    """Whether a quoted string's lines hold keys or items at its own depth or less."""
    depth = len(opening) - len(opening.lstrip(" "))
    return any(
        (m := _STRUCTURE.match(line)) is not None and len(m.group(1)) <= depth for line in inside
    )


def _unclosed(err: yaml.MarkedYAMLError, text: str) -> tuple[tuple[int, int], str] | None:
    """Where a quote or bracket that was never closed began (1-based), and which."""
    import yaml

    context, problem = err.context_mark, err.problem_mark
    if context is not None and err.context == "while scanning a quoted scalar":
        return (context.line + 1, context.column + 1), "quoted string"
    if context is not None and problem is not None and problem.line > context.line:
        bracket = _FLOWS.get(err.context or "")
        if bracket is not None:
            return (context.line + 1, context.column + 1), bracket
    if problem is None:
        return None
    lines = text.splitlines()
    try:
        for token in yaml.scan(text, Loader=_loader()):
            start, end = token.start_mark, token.end_mark
            if (start.line, start.column) >= (problem.line, problem.column):
                break
            if (
                isinstance(token, yaml.ScalarToken)
                and token.style in ("'", '"')
                and end.line > start.line
                and (
                    end.line == problem.line
                    or _swallowed(lines[start.line], lines[start.line + 1 : end.line + 1])
                )
            ):
                return (start.line + 1, start.column + 1), "quoted string"
    except yaml.YAMLError:
        pass
    return None


def _from_reader(err: yaml.reader.ReaderError, text: str, file: str) -> LormailError:
    import yaml

    char = err.character if isinstance(err.character, int) else ord(str(err.character)[:1] or "?")
    position = int(err.position)
    if _loader() is not yaml.SafeLoader:
        # libyaml counts bytes of the UTF-8 encoding; the pure reader counts characters.
        position = len(text.encode("utf-8", "surrogatepass")[:position].decode("utf-8", "ignore"))
    position = max(0, min(position, len(text)))
    line = text.count("\n", 0, position) + 1
    col = position - (text.rfind("\n", 0, position) + 1) + 1
    return _error(file, line, col, f"character U+{char:04X} is not allowed ({err.reason})")
