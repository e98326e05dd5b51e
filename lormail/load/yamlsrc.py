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


def read_text(path: Path, file: str, missing_hint: str) -> str:
    """The file's text as UTF-8, or a one-line :class:`LormailError`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LormailError([Problem(f"no such file; {missing_hint}", file=file)]) from None
    except IsADirectoryError:
        raise LormailError([Problem("is a folder, not a file", file=file)]) from None
    except OSError as err:
        raise LormailError([Problem(f"cannot read: {err.strerror}", file=file)]) from None
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
        raise _from_marked(err, file) from None
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


def _error(file: str, line: int, col: int, message: str) -> LormailError:
    return LormailError([Problem(message, file=file, line=line, col=col)])


def _from_marked(err: yaml.MarkedYAMLError, file: str) -> LormailError:
    mark = err.problem_mark or err.context_mark
    message = " ".join((err.problem or "not valid YAML").split())
    if err.context:
        message += f" ({' '.join(err.context.split())})"
    if mark is None:
        return LormailError([Problem(message, file=file)])
    return _error(file, mark.line + 1, mark.column + 1, message)


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
