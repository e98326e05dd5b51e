"""What every command needs: where the files are, loading them once, and `now`.

Commands receive an :class:`App`; it loads the config, roster and state lazily
and caches them, so a command pays only for what it uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lormail.errors import LormailError, Problem

if TYPE_CHECKING:
    from lormail.core.render import Templates
    from lormail.model import Config, Plan, Roster, Snapshot


def default_config_path() -> Path:
    env = os.environ.get("LORMAIL_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("lormail")) / "config.yaml"


def parse_instant(text: str) -> datetime:
    """An RFC 3339 timestamp (``Z`` or an offset) as an aware UTC datetime."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise LormailError(
            [Problem(f"--now: {text!r} is not an RFC 3339 timestamp, e.g. 2026-09-01T12:00:00Z")]
        ) from None
    if value.tzinfo is None:
        raise LormailError([Problem(f"--now: {text!r} has no offset; add Z or e.g. -04:00")])
    return value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class App:
    config_path: Path
    now_override: datetime | None = None
    debug: bool = False
    _config: Config | None = field(default=None, repr=False)
    _roster: Roster | None = field(default=None, repr=False)
    _templates: Templates | None = field(default=None, repr=False)

    def now(self) -> datetime:
        return self.now_override if self.now_override is not None else utc_now()

    def config(self) -> Config:
        if self._config is None:
            from lormail.load.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    def roster(self) -> Roster:
        if self._roster is None:
            from lormail.load.roster import load_roster

            self._roster = load_roster(self.config().roster)
        return self._roster

    def templates(self) -> Templates:
        if self._templates is None:
            from lormail.core.render import Templates

            self._templates = Templates(self.config().templates)
        return self._templates

    def state_dir(self) -> Path:
        configured = self.config().state_dir
        if configured is not None:
            return configured
        env = os.environ.get("LORMAIL_STATE_DIR")
        if env:
            return Path(env).expanduser().resolve()
        import platformdirs

        return Path(platformdirs.user_state_dir("lormail"))

    def snapshot(self) -> Snapshot:
        """The state as the planner sees it; empty when there is no state yet."""
        from lormail.edge.store import read_snapshot

        return read_snapshot(self.state_dir(), self.config().transport)

    def plan(self, now: datetime | None = None) -> Plan:
        from lormail.core.plan import plan

        return plan(self.roster(), self.snapshot(), now or self.now())
