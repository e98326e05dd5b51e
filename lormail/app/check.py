"""``check``'s template part, shared with the daemon: every template for every recommender."""

from __future__ import annotations

from datetime import UTC, datetime

from lormail.core.render import Templates
from lormail.errors import LormailError, Problem
from lormail.model import KINDS, SCHEDULED, Config, PlannedMessage, Recommender, Roster


def sample_messages(roster: Roster, rec: Recommender) -> list[PlannedMessage]:
    """One message of every kind to ``rec``, to prove every template renders for them."""
    from lormail.core.plan import open_letters

    progs = tuple(
        sorted(
            (lt.program for lt in rec.letters), key=lambda p: (roster.programs_by_id[p].deadline, p)
        )
    )
    opened = tuple(p.id for p in open_letters(roster, rec)) or progs
    # Dated at the first deadline (any instant would do; this one is real).
    at = min(
        (roster.programs_by_id[p].deadline for p in progs),
        default=datetime(2000, 1, 1, tzinfo=UTC),
    )
    n = len(rec.policy.reminders) or 1
    out = []
    for kind in KINDS:
        programs = opened if kind in ("request", "packet", "reminder") else progs
        if kind == "reminder":
            programs = programs[:1]
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
                programs=programs,
                reminder_number=n if kind == "reminder" else None,
                final_reminder=kind == "reminder",
                outcomes=tuple((p, "interview") for p in progs) if kind == "outcome" else (),
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
