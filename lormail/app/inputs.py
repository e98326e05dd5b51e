"""The daemon's inputs: config, roster and templates, read together and kept if good.

Owns reading the three from disk for ``lormail run``, telling whether their
bytes changed since the last good set (a touch or a save of the same text
changes nothing), and refusing a set that does not validate or whose
templates do not render for every recommender.  An :class:`Inputs` is
immutable; the daemon swaps the whole of it, so a sender never sees a new
roster with old templates.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from lormail.app.context import App
from lormail.core.render import Templates
from lormail.errors import LormailError
from lormail.model import Config, Roster


@dataclass(frozen=True, eq=False)
class Inputs:
    """One consistent, validated set of what the user edits, with the digest of its bytes."""

    config: Config
    roster: Roster
    templates: Templates
    digest: str

    def app(self) -> App:
        """An App that uses exactly these objects (never reloads from disk)."""
        return App(
            config_path=self.config.path,
            _config=self.config,
            _roster=self.roster,
            _templates=self.templates,
        )


@dataclass(frozen=True)
class Sources:
    """The files as read once: the config (parsed: it names the others), the roster's
    text, and the digests of the config, the roster and the templates (``a:b:c``)."""

    config: Config
    roster_text: str
    digest: str


def templates_digest(folder: Path | None) -> str:
    """A digest of every file's name and bytes under the override folder ("" if none)."""
    if folder is None:
        return ""
    h = hashlib.sha256()
    try:
        paths = sorted(p for p in folder.rglob("*") if p.is_file())
    except OSError:
        return "unreadable"
    for path in paths:
        h.update(os.fsencode(path.relative_to(folder)) + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError as err:
            h.update(f"unreadable {err.errno}".encode())
        h.update(b"\0")
    return h.hexdigest()


def read_sources(config_path: Path, previous: Inputs | None = None) -> Sources:
    """Read the config and roster and digest them with the templates.

    Raises :class:`LormailError` when a file cannot be read or the config is
    bad (``FILE:LINE:COL: ...``).  An unchanged config keeps ``previous``'s.
    """
    from lormail.load.config import parse_config
    from lormail.load.yamlsrc import display_name, read_text

    config_text = read_text(config_path, display_name(config_path), "run 'lormail init'")
    config_digest = hashlib.sha256(config_text.encode()).hexdigest()
    if previous is not None and previous.digest.startswith(config_digest + ":"):
        config = previous.config
    else:
        config = parse_config(config_text, config_path)
    roster_text = read_text(
        config.roster, display_name(config.roster), "check 'roster' in config.yaml"
    )
    roster = hashlib.sha256(f"{config.roster}\0".encode() + roster_text.encode()).hexdigest()
    templates = hashlib.sha256(
        f"{config.templates}\0{templates_digest(config.templates)}".encode()
    ).hexdigest()
    return Sources(config, roster_text, f"{config_digest}:{roster}:{templates}")


def accept(sources: Sources) -> Inputs:
    """Parse the roster and prove every template renders for every recommender.

    Raises :class:`LormailError` with every problem.
    """
    from lormail.app.check import check_templates
    from lormail.load.roster import parse_roster

    config = sources.config
    roster = parse_roster(sources.roster_text, config.roster)
    templates = Templates(config.templates)
    problems = check_templates(roster, templates)
    if problems:
        raise LormailError(problems)
    # The checked instance: it compiled every template it rendered, so a later
    # save reaches the daemon only through a check of its own.
    return Inputs(config, roster, templates, sources.digest)
