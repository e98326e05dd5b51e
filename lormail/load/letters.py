"""A recommender's ``letters``: one program each, or several with an id.

Owns the letter keys' rules (SPEC §2.1): ``program: x`` or ``id`` with
``programs``, a program in at most one letter of a recommender, ids unique
among its letters, an optional ``due`` (a date or timestamp), ``name`` and
``portal``.  The :class:`~lormail.model.Roster` resolves deadlines and names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from lormail.load import fields as F
from lormail.load.fields import LINE, Source
from lormail.load.yamlsrc import Node, Scalar
from lormail.model import Letter, Program

__all__ = ["ID", "LetterReader"]

# Ids go into message keys such as reminder:R:L:N and thank_you:R:L1+L2.
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LETTER = frozenset(
    ("program", "programs", "id", "due", "name", "portal", "letter_id", "submitted_on")
)
ReadDeadline = Callable[[Node | None, str, ZoneInfo], "tuple[datetime, bool] | None"]


def _no_deadline(node: Node | None, path: str, zone: ZoneInfo) -> tuple[datetime, bool] | None:
    return None


class LetterReader:
    def __init__(
        self,
        src: Source,
        program_ids: set[str],
        programs_by_id: dict[str, Program],
        where: dict[str, tuple[int, int]],
    ) -> None:
        self.src = src
        self.program_ids = program_ids  # every id written, valid or not
        self.programs_by_id = programs_by_id
        self.where = where  # positions warnings point at
        self.applicant_zone = ZoneInfo("UTC")
        self.deadline: ReadDeadline = _no_deadline

    def letters(
        self, node: Node | None, path: str, applicant_zone: ZoneInfo, deadline: ReadDeadline
    ) -> list[Letter]:
        """The recommender's letters that read without a problem."""
        self.applicant_zone = applicant_zone
        self.deadline = deadline
        if node is None:
            return []
        out = []
        base = path + ".letters"
        first: dict[str, str] = {}  # program → the letters[j] that has it
        keys: dict[str, str] = {}  # letter key → the letters[j] that has it
        for j, entry in enumerate(self.src.items(node, base, "[{program: ...}]")):
            value = self.letter(entry, f"{base}[{j}]", first, keys, f"letters[{j}]")
            if value is not None:
                out.append(value)
        return out

    def letter(
        self, node: Node, path: str, first: dict[str, str], keys: dict[str, str], name: str
    ) -> Letter | None:
        """One letter (``name`` is its ``letters[j]``): one program, or several with an id."""
        src = self.src
        f = src.fields(node, path, _LETTER)
        if f is None:
            return None
        if ("program" in f) == ("programs" in f):
            src.add(
                node,
                path,
                "give either program (one program) or programs (several, with an id), not "
                + ("both" if "program" in f else "neither"),
            )
            return None
        if "program" in f:
            pnodes = [f["program"]]
            paths = [path + ".program"]
        else:
            pnodes = src.items(f["programs"], path + ".programs", "[bwh-im, mgh-im]")
            paths = [f"{path}.programs[{k}]" for k in range(len(pnodes))]
            if not pnodes:
                src.add(f["programs"], path + ".programs", "must list at least one program")
                return None
        programs: list[str] = []
        ok = True
        for pnode, ppath in zip(pnodes, paths, strict=True):
            program = self.letter_program(pnode, ppath, first, name)
            if program is None:
                ok = False
            elif program in programs:
                src.add(pnode, ppath, f"'{program}' is listed twice")
                ok = False
            else:
                programs.append(program)
        key = self.letter_key(f, path, programs, keys, name)
        submitted = None
        if (snode := f.get("submitted_on")) is not None:
            if type(snode) is Scalar:
                submitted = src.days.get(snode.text)  # a date read before, as it was
            if submitted is None:
                submitted = src.date(snode, path + ".submitted_on")
            if submitted is not None:
                self.where[path + ".submitted_on"] = (snode.line, snode.col)
        due = None
        if (dnode := f.get("due")) is not None and not F.is_null(dnode):
            due = self.deadline(dnode, path + ".due", self.applicant_zone)
        lnode = f.get("letter_id")
        letter_id = src.text(lnode, path + ".letter_id") if lnode is not None else None
        own_name = src.required_text(f["name"], path + ".name") if "name" in f else None
        own_portal = src.required_text(f["portal"], path + ".portal") if "portal" in f else None
        if not ok or key is None:
            return None
        return Letter(
            key=key,
            letter_id=letter_id,
            submitted_on=submitted,
            programs=tuple(programs),
            due=due[0] if due else None,
            due_is_date=due[1] if due else False,
            own_name=own_name,
            own_portal=own_portal,
        )

    def letter_program(
        self, pnode: Node, path: str, first: dict[str, str], name: str
    ) -> str | None:
        """A program id a letter names: it must exist, in one letter of the recommender."""
        src = self.src
        program = F.ready_text(pnode)
        if program is None:
            program = src.text(pnode, path, LINE)
        if program is None:
            return None
        if program not in self.program_ids:
            hint = F.did_you_mean(program, sorted(self.program_ids))
            src.add(pnode, path, f"no program has the id '{program}'{hint}")
            return None
        if program in first:
            src.add(pnode, path, f"a second letter for '{program}' (the first is {first[program]})")
            return None
        first[program] = name
        return program if program in self.programs_by_id else None

    def letter_key(
        self, f: dict[str, Node], path: str, programs: list[str], keys: dict[str, str], name: str
    ) -> str | None:
        """The letter's key: its ``id`` (required with ``programs``), else its program."""
        src = self.src
        inode = f.get("id")
        if inode is None:
            if "programs" in f:
                src.add(
                    f["programs"],
                    path + ".programs",
                    "a letter for several programs needs an id (like id: eras), "
                    "unique among this recommender's letters",
                )
                return None
            if not programs:
                return None
            if programs[0] in keys:
                src.add(
                    f["program"],
                    path + ".program",
                    f"'{programs[0]}' is also the id of {keys[programs[0]]}",
                )
                return None
            keys[programs[0]] = name
            return programs[0]
        value = src.text(inode, path + ".id", LINE)
        if value is None:
            return None
        if not ID.fullmatch(value):
            src.add(
                inode,
                path + ".id",
                f"{F.shown(value)} is not a valid id: use letters, digits, "
                "'.', '_' and '-', starting with a letter or digit",
            )
            return None
        if value in keys:
            src.add(inode, path + ".id", f"duplicate letter id '{value}' (also {keys[value]})")
            return None
        keys[value] = name
        return value
