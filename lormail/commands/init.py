"""``lormail init``: a commented config, an example roster and the templates.

The example files speak as "Sarah Chen"; ``init`` puts the user's own name,
e-mail address and time zone into both (asked on a terminal, defaults from
this machine; ``--name/--email/--timezone`` without one), so that nothing goes
out as someone else.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lormail.app.context import App
from lormail.commands.output import console
from lormail.errors import EXIT_OK, LormailError, Problem
from lormail.load import fields as F

# The example identity, exactly as the shipped files spell it.
_EXAMPLE_NAME = "Sarah Chen"
_EXAMPLE_EMAIL = "sarah.chen@example.edu"
_EXAMPLE_ZONE = "America/New_York"


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    email: str
    timezone: str


def _data_file(name: str) -> Path:
    from lormail.core.render import default_templates_dir

    # Beside the shipped templates in a wheel; the source tree's root otherwise.
    return default_templates_dir().parent / name


def name_problem(name: str) -> str | None:
    if not name.strip():
        return "must not be empty"
    if not name.isprintable():
        return "must be one line of text"
    return None


def email_problem(addr: str) -> str | None:
    return F.address_problem(addr)


def zone_problem(name: str) -> str | None:
    found = F.zone(name)
    return found if isinstance(found, str) else None


_CHECKS: dict[str, Callable[[str], str | None]] = {
    "name": name_problem,
    "email": email_problem,
    "timezone": zone_problem,
}


def machine_defaults() -> dict[str, str | None]:
    """What this machine knows: the account's full name, ``$EMAIL``, the local zone."""
    from lormail.load.roster import machine_zone

    name = None
    try:
        import pwd

        name = pwd.getpwuid(os.getuid()).pw_gecos.split(",")[0].strip() or None
    except (ImportError, KeyError):
        pass
    addr = os.environ.get("EMAIL", "").strip() or None
    if addr is not None and email_problem(addr) is not None:
        addr = None
    return {"name": name, "email": addr, "timezone": machine_zone().key}


def _ask(label: str, default: str | None, check: Callable[[str], str | None]) -> str:
    while True:
        shown = f" [{default}]" if default else ""
        try:
            answer = input(f"{label}{shown}: ").strip()
        except EOFError:
            raise LormailError(
                [Problem("init: stopped before the questions were answered")]
            ) from None
        answer = answer or (default or "")
        why = check(answer)
        if why is None:
            return answer
        print(f"  {why}", file=sys.stderr)


def identity(args: argparse.Namespace, interactive: bool) -> Identity:
    """The user's identity: the options, else asked on a terminal (this machine's
    guesses as defaults); without a terminal, name and e-mail must be given."""
    defaults = machine_defaults()
    given = {key: getattr(args, key) for key in _CHECKS}
    problems = [
        Problem(f"--{key}: {why}")
        for key, value in given.items()
        if value is not None and (why := _CHECKS[key](value)) is not None
    ]
    if problems:
        raise LormailError(problems)
    # Unasked, only the zone is taken from the machine: an account's name
    # ("root") or $EMAIL is no sure guess at who the mail should be from.
    missing = [f"--{key}" for key in ("name", "email") if given[key] is None]
    if missing and not interactive:
        raise LormailError(
            [Problem(f"init: give {' and '.join(missing)} (there is no terminal to ask on)")]
        )
    labels = {"name": "Your name", "email": "Your e-mail address", "timezone": "Your time zone"}
    values: dict[str, str] = {}
    for key, check in _CHECKS.items():
        value = given[key]
        if value is None and interactive:
            value = _ask(labels[key], defaults[key], check)
        values[key] = value if value is not None else (defaults[key] or "")
    return Identity(values["name"], values["email"], values["timezone"])


def _replace_once(text: str, old: str, new: str) -> str:
    if old not in text:  # the shipped example changed under us
        raise AssertionError(f"example file lacks {old!r}")
    return text.replace(old, new, 1)


def _quoted(value: str) -> str:
    # A JSON string is a YAML double-quoted scalar: safe for any name.
    return json.dumps(value, ensure_ascii=False)


_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


def sender(who: Identity) -> str:
    """``Name <addr>`` for ``smtp.from``, the name quoted when it must be.

    Not :func:`email.utils.formataddr`: it would write a non-ASCII name as an
    encoded word into the config; lormail's composer does the encoding.
    """
    name = f'"{email.utils.quote(who.name)}"' if _SPECIALS.search(who.name) else who.name
    return f"{name} <{who.email}>"


def personal_config(text: str, who: Identity) -> str:
    text = _replace_once(text, "roster: roster.example.yaml", "roster: roster.yaml        ")
    text = _replace_once(text, f"username: {_EXAMPLE_EMAIL}", f"username: {who.email}")
    return _replace_once(
        text, f'from: "{_EXAMPLE_NAME} <{_EXAMPLE_EMAIL}>"', f"from: {_quoted(sender(who))}"
    )


def personal_roster(text: str, who: Identity) -> str:
    text = _replace_once(
        text,
        f"applicant:\n  name: {_EXAMPLE_NAME}\n  email: {_EXAMPLE_EMAIL}\n"
        f"  timezone: {_EXAMPLE_ZONE}\n",
        f"applicant:\n  name: {_quoted(who.name)}\n  email: {who.email}\n"
        f"  timezone: {who.timezone}\n",
    )
    return _replace_once(
        text,
        f"  signature: |\n    {_EXAMPLE_NAME}\n    MS4, Example School of Medicine\n",
        f"  signature: |\n    {who.name}\n",
    )


def cmd_init(app: App, args: argparse.Namespace) -> int:
    target: Path = (args.dir or app.config_path.parent).expanduser()
    templates_src = _data_file("templates")
    templates = sorted(templates_src.glob("*.j2"))
    paths = [target / "config.yaml", target / "roster.yaml"]
    paths += [target / "templates" / tmpl.name for tmpl in templates]
    existing = [p for p in paths if p.exists()]
    if existing and not args.force:
        raise LormailError(
            [
                Problem(f"{p}: already exists; keep it, or run 'lormail init --force'")
                for p in existing
            ]
        )
    who = identity(args, interactive=sys.stdin.isatty())
    texts = {
        target / "config.yaml": personal_config(
            _data_file("config.example.yaml").read_text(encoding="utf-8"), who
        ),
        target / "roster.yaml": personal_roster(
            _data_file("roster.example.yaml").read_text(encoding="utf-8"), who
        ),
    }
    for tmpl in templates:
        texts[target / "templates" / tmpl.name] = tmpl.read_text(encoding="utf-8")
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    out = console()
    out.print(
        f"Wrote {target / 'config.yaml'}, {target / 'roster.yaml'} and "
        f"{len(texts) - 2} templates in {target / 'templates'}, "
        f"as {sender(who)} ({who.timezone}).",
        markup=False,
        highlight=False,
    )
    out.print("Next: edit roster.yaml, then run 'lormail check' and 'lormail plan'.")
    if args.dir is not None:
        out.print(
            f"(Pass '--config {target / 'config.yaml'}' or set LORMAIL_CONFIG.)",
            markup=False,
            highlight=False,
        )
    return EXIT_OK
