"""The inbox use cases (SPEC §8): classify message files, scan the mailbox, watch it.

``classify_files`` reads ``.eml`` files and touches no state.  ``scan`` reads
what is new in each configured folder since its last mark, classifies it, and
records the events with the folders' new marks, each folder in one
transaction.  :class:`Watcher` is the daemon's loop: IDLE where the server
offers it (re-issued every 24 minutes), else a poll every ``imap.poll``; a
failure backs off 1 min doubling to 1 h and never stops anything else.
"""

from __future__ import annotations

import email
import email.policy
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import getaddresses
from pathlib import Path

from lormail.app.context import App
from lormail.app.send import backoff
from lormail.core.inbox import Known, classify
from lormail.core.inbox_plan import entry_digest
from lormail.edge import inbox_store
from lormail.edge.credentials import Secret
from lormail.edge.imap import IDLE_RENEW, Mailbox
from lormail.edge.statedir import DB_NAME
from lormail.edge.store import Store
from lormail.errors import LormailError, Problem
from lormail.load.portals import load_rules
from lormail.load.yamlsrc import display_name
from lormail.model import ImapConfig, InboxEvent

__all__ = ["FIRST_SCAN", "WatchState", "Watcher", "classify_files", "known", "scan", "shown_wait"]

# How far back the first scan of a folder (or one whose UIDVALIDITY changed) reads.
FIRST_SCAN = timedelta(days=30)
log = logging.getLogger("lormail")


def _sent(app: App) -> dict[str, str]:
    path = app.state_dir() / DB_NAME
    if not path.exists():
        return {}
    with Store.open(app.state_dir()) as store:
        return inbox_store.sent_message_ids(store)


def known(app: App) -> Known:
    """The roster, lormail's Message-IDs and the portal rules, as classification needs them."""
    config = app.config()
    rules = load_rules(config.imap.portals if config.imap is not None else None)
    own = {addr for _, addr in getaddresses([config.smtp.from_addr]) if "@" in addr}
    return Known(app.roster(), _sent(app), rules, frozenset(a.lower() for a in own))


def classify_files(app: App, paths: Sequence[Path]) -> list[InboxEvent]:
    """One event per file, offline; nothing is stored."""
    context = known(app)
    out = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise LormailError([Problem(f"cannot read: {err.strerror}", file=str(path))]) from None
        msg = email.message_from_bytes(data, policy=email.policy.default)
        out.append(replace(classify(context, msg), file=str(path)))
    return out


def imap_config(app: App) -> ImapConfig:
    imap = app.config().imap
    if imap is None:
        file = display_name(app.config().path)
        raise LormailError(
            [
                Problem(
                    "no imap section, so lormail reads no mail; add one (see README, Inbox)", file
                )
            ]
        )
    return imap


def scan(app: App, now: datetime, mailbox: Mailbox | None = None) -> list[InboxEvent]:
    """Read what is new in every folder, record it, return it (unrelated ones too)."""
    imap = imap_config(app)
    context = known(app)
    own = mailbox is None
    box = mailbox or Mailbox(imap)
    found: list[InboxEvent] = []
    try:
        if own:
            box.connect()
        with Store.open(app.state_dir()) as store:
            marks = inbox_store.folder_marks(store)
            for folder in imap.folders:
                since = (now - FIRST_SCAN).date()
                mark, messages = box.new_messages(folder, marks.get(folder), since)
                events = [
                    _recorded(context, classify(context, f.message, f.received), f.folder, f.uid)
                    for f in messages
                ]
                inbox_store.add_events(store, {folder: mark}, events)
                found += events
    finally:
        if own:
            box.close()
    return found


def _recorded(context: Known, e: InboxEvent, folder: str, uid: int) -> InboxEvent:
    """The event with where it was read and, to know later whether the roster entry
    changed since, a digest of its recommender's entry as it is now."""
    r = context.roster.recommenders_by_id.get(e.recommender or "")
    return replace(e, folder=folder, uid=uid, entry=entry_digest(r) if r is not None else None)


@dataclass(frozen=True, slots=True)
class WatchState:
    """What ``status`` and ``/healthz`` say of the inbox."""

    ok: bool
    detail: str  # "watching INBOX (IDLE)", or the last failure
    retry_at: datetime | None = None


class Watcher:
    """The daemon's inbox thread: scan, then wait for news (IDLE or poll), and again.

    ``on_events`` runs (in this thread) after a scan that found anything that is
    not ``unrelated``; ``now`` gives the wall clock; ``app`` gives the inputs in
    force (a daemon's last good roster: each scan classifies against the roster
    of its time).  ``stop()`` ends it at once, even in the middle of an IDLE.
    """

    def __init__(
        self,
        app: Callable[[], App],
        on_events: Callable[[list[InboxEvent]], None],
        now: Callable[[], datetime],
        secret: Callable[[], Secret] | None = None,
        pause: Callable[[int], timedelta] = backoff,
        on_state: Callable[[WatchState], None] = lambda state: None,
    ) -> None:
        self.app = app
        self.on_state = on_state
        self.secret = secret  # None: the keyring, as for SMTP
        self.pause = pause
        self.on_events = on_events
        self.now = now
        self.state = WatchState(True, "starting")
        self._stop = threading.Event()
        self._box: Mailbox | None = None
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="lormail-inbox", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._box is not None:
                self._box.interrupt()
        self.thread.join(timeout=10)

    def _set(self, state: WatchState) -> None:
        if state != self.state:
            self.state = state
            self.on_state(state)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._session()
                failures = 0
            except LormailError as err:
                if self._stop.is_set():
                    break
                failures += 1
                wait = self.pause(failures)
                message = "; ".join(str(p) for p in err.problems)
                self._set(WatchState(False, message, self.now() + wait))
                log.warning("inbox: %s; retrying in %s", message, shown_wait(wait))
                self._stop.wait(wait.total_seconds())
            finally:
                with self._lock:
                    box, self._box = self._box, None
                if box is not None:
                    box.close()

    def _session(self) -> None:
        imap = imap_config(self.app())
        box = Mailbox(imap, self.secret)
        with self._lock:
            self._box = box
        if self._stop.is_set():
            return
        box.connect()
        poll = f"a poll every {shown_wait(imap.poll)}"
        first, *others = imap.folders
        if not box.idle_capable:
            watching = f"{', '.join(imap.folders)} ({poll})"
        elif others:
            # IDLE watches one folder; the others are read every `poll` (and before
            # every send batch, as all are).
            watching = f"{first} (IDLE), {', '.join(others)} ({poll})"
        else:
            watching = f"{first} (IDLE)"
        self._set(WatchState(True, f"watching {watching}"))
        idle_for = min(IDLE_RENEW, imap.poll.total_seconds()) if others else IDLE_RENEW
        while not self._stop.is_set():
            found = scan(self.app(), self.now(), box)
            news = [e for e in found if e.kind != "unrelated"]
            for e in news:
                log.info("inbox: %s: %s", e.kind, e.detail)
            if news:
                self.on_events(news)
            if box.idle_capable:
                box.idle(first, idle_for)
            else:
                if self._stop.wait(imap.poll.total_seconds()):
                    break
                box.noop()


def shown_wait(wait: timedelta) -> str:
    """``5 min``, ``0.2 s``: a wait as the watcher's state and ``credentials test`` say it."""
    seconds = wait.total_seconds()
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
