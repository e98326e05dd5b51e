"""The one error type users see, and the problems it carries.

Anything that is the user's to fix raises :class:`LormailError`; ``cli.py``
catches it once, prints one line per problem and exits 2 (or 1 for a runtime
failure).  A problem renders as ``FILE:LINE:COL: PATH: message`` when it has a
place in a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class Problem:
    message: str
    file: str | None = None
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based
    path: str | None = None  # e.g. "recommenders[1].email"

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
            parts.append(where)
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


class LormailError(Exception):
    """One or more problems for the user; ``exit_code`` 2 (bad input) or 1 (runtime)."""

    def __init__(self, problems: Iterable[Problem | str], exit_code: int = EXIT_USAGE) -> None:
        self.problems: tuple[Problem, ...] = tuple(
            p if isinstance(p, Problem) else Problem(p) for p in problems
        )
        self.exit_code = exit_code
        super().__init__("\n".join(str(p) for p in self.problems))


class RuntimeFailure(LormailError):
    """A failure of the world, not of the input (SMTP down, keyring locked): exit 1."""

    def __init__(self, message: str) -> None:
        super().__init__([Problem(message)], exit_code=EXIT_RUNTIME)
