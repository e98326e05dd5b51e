"""What ``check`` finds beyond the loaders.

Every template for every recommender (shared with the daemon), and whether
the config would send as someone else, or not at all.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from pathlib import Path

from lormail.core.render import Templates
from lormail.errors import LormailError, Problem
from lormail.load.yamlsrc import display_name, value_place
from lormail.model import KINDS, SCHEDULED, Config, PlannedMessage, Recommender, Roster

# Domains reserved for examples and tests (RFC 2606, RFC 6761): no one reads them.
_RESERVED_TLDS = frozenset(("example", "test", "invalid", "localhost"))


def sample_messages(roster: Roster, rec: Recommender) -> list[PlannedMessage]:
    """One message of every kind to ``rec``, to prove every template renders for them."""
    from lormail.core.plan import open_letters

    rec = roster.recommenders_by_id.get(rec.id, rec)  # its letters resolved
    letters = sorted(rec.letters, key=lambda lt: (lt.deadline, lt.key))
    opened = open_letters(rec) or letters
    # Dated at the first deadline (any instant would do; this one is real).
    at = letters[0].deadline if letters else datetime(2000, 1, 1, tzinfo=UTC)
    n = len(rec.policy.reminders) or 1
    progs = tuple(p for lt in letters for p in lt.programs)
    out = []
    for kind in KINDS:
        chosen = opened if kind in ("request", "packet", "reminder") else letters
        out.append(
            PlannedMessage(
                key=f"{kind}:{rec.id}",
                kind=kind,
                recommender=rec.id,
                to=rec.email,
                send_at=at,
                expires_at=None,
                status=SCHEDULED,
                reason="check",
                programs=tuple(p for lt in chosen for p in lt.programs),
                reminder_number=n if kind == "reminder" else None,
                final_reminder=kind == "reminder",
                outcomes=tuple((p, "interview") for p in progs) if kind == "outcome" else (),
                letters=tuple(lt.key for lt in chosen),
                first_contact=kind == "reminder",
                request_date=at.date() if kind == "request_followup" else None,
            )
        )
    return out


def check_templates(
    roster: Roster, templates: Templates, config: Config | None = None
) -> list[Problem]:
    """Every template rendered for every recommender; with ``config``, each message is
    also composed, so that one that could never be sent (a header line over 998
    bytes, text no encoding carries) is found now, not at send time."""
    from lormail.core.compose import wire_problem

    problems: list[Problem] = []
    seen: set[str] = set()
    for rec in roster.recommenders:
        for msg in sample_messages(roster, rec):
            try:
                rendered = templates.render(msg, roster)
                unsendable = None if config is None else wire_problem(msg, rendered, roster, config)
                if unsendable is not None:
                    problems.append(
                        Problem(
                            f"the {msg.kind} message to {rec.id} can never be sent: {unsendable}"
                        )
                    )
            except LormailError as err:
                for p in err.problems:
                    text = str(p)
                    if text not in seen:  # one line per template fault, not per person
                        seen.add(text)
                        problems.append(
                            Problem(
                                f"{p.message} (rendering {msg.kind} for {rec.id})",
                                p.file,
                                p.line,
                                p.col,
                                p.path,
                            )
                        )
    return problems


def is_example_address(addr: str) -> bool:
    """An address at a domain such as example.edu or hospital.example.org."""
    labels = addr.rpartition("@")[2].lower().rstrip(".").split(".")
    return "example" in labels or labels[-1] in _RESERVED_TLDS


def _at(path: Path, keys: tuple[str, ...], message: str) -> Problem:
    line, col = value_place(path, keys) or (None, None)
    return Problem(message, display_name(path), line, col, ".".join(keys))


def sender_findings(config: Config, roster: Roster) -> tuple[list[Problem], list[Problem]]:
    """Problems (that stop ``check``) and warnings about who sends, and whether anything goes.

    Going live (``dry_run: false``, ``transport: smtp``) with an example
    address would send as someone else; a maildir going live reaches no one.
    """
    problems: list[Problem] = []
    warnings: list[Problem] = []
    sender = email.utils.parseaddr(config.smtp.from_addr)[1] if config.smtp.from_addr else ""
    applicant = roster.applicant.email
    if sender and sender.lower() != applicant.lower():
        warnings.append(
            _at(
                config.path,
                ("smtp", "from"),
                f"sends as {sender}, but the roster's applicant.email is {applicant}; "
                "make them the same address",
            )
        )
    live = not config.dry_run
    if live and config.transport == "maildir":
        where = ("transport",) if value_place(config.path, ("transport",)) else ("dry_run",)
        warnings.append(
            _at(
                config.path,
                where,
                f"maildir only fills the folder {display_name(config.maildir)}: nothing "
                "reaches anyone; set transport: smtp to send",
            )
        )
    if live and config.transport == "smtp":
        for path, keys, addr in (
            (config.path, ("smtp", "from"), sender),
            (roster.path or config.roster, ("applicant", "email"), applicant),
        ):
            if addr and is_example_address(addr):
                problems.append(
                    _at(
                        path,
                        keys,
                        f"{addr} is an example address; put your own before sending for real",
                    )
                )
    return problems, warnings
