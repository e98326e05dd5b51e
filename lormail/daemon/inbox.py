"""The daemon's inbox (SPEC §8): a watcher thread that asks for a check when mail
changes the plan, and a quick scan before each send batch.

- The watcher (:class:`lormail.app.inbox.Watcher`) keeps one IMAP connection
  in IDLE (or polls), and kicks a check when it records an event that is not
  ``unrelated``: the check plans again, with the event in the state.
- Before a check sends anything due, what is new is read first, so a reply
  that reached the server before a reminder's slot always holds it.  While
  the watcher is backing off from a failure, the quick scan is skipped:
  sending never waits on a server that is known to be away.
- Its state ("watching INBOX (IDLE)", or the failure and the next try) goes
  into the heartbeat for ``status`` and ``/healthz``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from lormail.app.context import utc_now
from lormail.core.instants import utc_z
from lormail.errors import LormailError

if TYPE_CHECKING:
    from lormail.app.context import App
    from lormail.app.inbox import Watcher
    from lormail.model import ImapConfig

log = logging.getLogger("lormail.daemon")


class DaemonInbox:
    def __init__(
        self, app: Callable[[], App], kick: Callable[[str], None], changed: Callable[[], None]
    ) -> None:
        self.app = app  # the inputs in force
        self.kick = kick
        self.changed = changed  # the watcher's state changed: rewrite the heartbeat
        self.watcher: Watcher | None = None
        self.config: ImapConfig | None = None

    def follow(self, imap: ImapConfig | None) -> None:
        """Start, restart or stop the watcher for the config's ``imap`` section."""
        if imap == self.config and (imap is None) == (self.watcher is None):
            return
        self.stop()
        self.config = imap
        if imap is None:
            return
        from lormail.app.inbox import Watcher

        self.watcher = Watcher(
            self.app,
            lambda events: self.kick("inbox"),
            now=utc_now,
            on_state=lambda state: self.changed(),
        )
        self.watcher.start()

    def stop(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.stop()

    def quick_scan(self) -> None:
        """Read what is new now (before sending); a failure is logged, never raised."""
        watcher = self.watcher
        if watcher is None or not watcher.state.ok:
            return
        from lormail.app.inbox import scan

        try:
            found = scan(self.app(), utc_now())
        except LormailError as err:
            log.warning("inbox: quick scan failed: %s", "; ".join(str(p) for p in err.problems))
            return
        for e in found:
            if e.kind != "unrelated":
                log.info("inbox: %s: %s", e.kind, e.detail)

    def state(self) -> str | None:
        """One line for the heartbeat, or None without an imap section."""
        watcher = self.watcher
        if watcher is None:
            return None
        s = watcher.state
        if s.ok:
            return s.detail
        retry = f"; next try {utc_z(s.retry_at)}" if s.retry_at else ""
        return f"failing: {s.detail}{retry}"
