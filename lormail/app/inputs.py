"""The daemon's inputs: config, roster and templates, loaded together and kept if good.

Owns reading the three from disk for ``lormail run``, telling whether their
bytes changed since the last good load (a touch or a save of the same text
changes nothing), and refusing a set that does not validate or whose
templates do not render.  An :class:`Inputs` is immutable; the daemon swaps
the whole of it, so a sender never sees a new roster with old templates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from lormail.app.context import App
from lormail.core.render import Templates
from lormail.errors import LormailError
from lormail.model import Config, Recommender, Roster


@dataclass(frozen=True, eq=False)
class Inputs:
    """One consistent, validated set of what the user edits, with the digests of its bytes."""

    config: Config
    roster: Roster
    templates: Templates
    config_digest: str
    roster_digest: str
    templates_digest: str

    @property
    def digest(self) -> str:
        return f"{self.config_digest}:{self.roster_digest}:{self.templates_digest}"

    def app(self) -> App:
        """An App that uses exactly these objects (never reloads from disk)."""
        return App(
            config_path=self.config.path,
            _config=self.config,
            _roster=self.roster,
            _templates=self.templates,
        )

    def pinned(self, state_dir: Path) -> Inputs:
        """The same inputs with the state folder fixed (the daemon does not move it while up)."""
        if self.config.state_dir == state_dir:
            return self
        config = dataclasses.replace(self.config, state_dir=state_dir)
        return dataclasses.replace(self, config=config)


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def templates_digest_of(folder: Path | None) -> str:
    """What :attr:`Inputs.templates_digest` holds for the override ``folder``."""
    return _hash(f"{folder}\0{templates_digest(folder)}".encode())


def load_inputs(
    config_path: Path, previous: Inputs | None = None, check: bool = True
) -> Inputs | None:
    """Load and validate config, roster and templates; ``None`` when nothing changed.

    ``check=False`` skips the render check (the daemon's start plans first and
    calls :func:`checked` before it sends anything).

    Raises :class:`LormailError` with every problem (``FILE:LINE:COL: ...``).
    Only what changed is parsed again: an unchanged roster keeps its objects.
    Templates are render-checked for every recommender when they (or the
    config) changed, else for the recommenders whose entry changed.
    """
    from lormail.load.config import parse_config
    from lormail.load.roster import parse_roster
    from lormail.load.yamlsrc import display_name, read_text

    config_text = read_text(config_path, display_name(config_path), "run 'lormail init'")
    config_digest = _hash(config_text.encode())
    if previous is not None and config_digest == previous.config_digest:
        config = previous.config
    else:
        config = parse_config(config_text, config_path)
    del config_text

    roster_text = read_text(
        config.roster, display_name(config.roster), "check 'roster' in config.yaml"
    )
    roster_digest = _hash(config.roster.as_posix().encode() + b"\0" + roster_text.encode())
    if previous is not None and roster_digest == previous.roster_digest:
        roster = previous.roster
    else:
        roster = parse_roster(roster_text, config.roster)
    del roster_text

    tmpl_digest = templates_digest_of(config.templates)
    if previous is not None and (config_digest, roster_digest, tmpl_digest) == (
        previous.config_digest,
        previous.roster_digest,
        previous.templates_digest,
    ):
        return None

    if previous is not None and tmpl_digest == previous.templates_digest:
        templates = previous.templates
        changed = _changed_recommenders(previous.roster, roster)
        to_check = dataclasses.replace(roster, recommenders=changed, recommenders_by_id={})
    else:
        templates = Templates(config.templates)
        to_check = roster
    inputs = Inputs(config, roster, templates, config_digest, roster_digest, tmpl_digest)
    if not check:
        return inputs
    return _check(inputs, to_check, templates is not (previous.templates if previous else None))


def checked(inputs: Inputs) -> Inputs:
    """``inputs`` once every template renders for every recommender; else LormailError."""
    return _check(inputs, inputs.roster, True)


def _check(inputs: Inputs, to_check: Roster, new_templates: bool) -> Inputs:
    from lormail.app.check import check_templates

    problems = check_templates(to_check, inputs.templates) if to_check.recommenders else []
    if problems:
        raise LormailError(problems)
    if not new_templates:
        return inputs
    # The check cached a context for every recommender; a fresh instance
    # holds the same templates without it.
    return dataclasses.replace(inputs, templates=Templates(inputs.config.templates).load_all())


def _changed_recommenders(old: Roster, new: Roster) -> tuple[Recommender, ...]:
    """Who could render differently: changed entries, and writers for changed programs."""
    if (old.applicant, old.defaults) != (new.applicant, new.defaults):
        return new.recommenders
    programs = {p.id for p in new.programs if old.programs_by_id.get(p.id) != p}
    before = old.recommenders_by_id
    return tuple(
        r
        for r in new.recommenders
        if before.get(r.id) != r or any(letter.program in programs for letter in r.letters)
    )
