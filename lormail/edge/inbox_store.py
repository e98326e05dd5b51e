"""The inbox's part of the state database (SPEC §8): events and where each folder was left.

Only an event's fields are kept, its ``detail`` at most 100 characters; never
a body, a subject line beyond the detail, or an address other than the
sender's.  Each folder's UIDVALIDITY and last UID say where the next scan
starts.  An event is stored once per Message-ID (Gmail shows one message in
several folders); one without a Message-ID is keyed by its folder and UID.
The tables live in ``state.db`` beside the send log, created when first used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from lormail.core.inbox import clip
from lormail.edge.logrows import from_text, to_text
from lormail.edge.store import Store
from lormail.model import LOG_LOCAL, LOG_SENT, InboxEvent

__all__ = ["FolderMark", "add_events", "events", "folder_marks", "sent_message_ids"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox_folders (
    folder      TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox_events (
    id          TEXT PRIMARY KEY,   -- the Message-ID, else folder/UIDVALIDITY/UID
    kind        TEXT NOT NULL,
    at          TEXT,
    message_id  TEXT,
    sender      TEXT NOT NULL,
    recommender TEXT,
    letter      TEXT,
    until       TEXT,
    detail      TEXT NOT NULL,       -- at most 100 characters
    folder      TEXT,
    uid         INTEGER,
    address     TEXT,                -- bounce: the address that failed
    entry       TEXT                 -- the recommender's roster entry (a digest) when recorded
);
"""


@dataclass(frozen=True, slots=True)
class FolderMark:
    """Where a folder's last scan stopped; a new UIDVALIDITY voids it."""

    uidvalidity: int
    last_uid: int


def _ensure(store: Store) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            store.conn.execute(statement)


def _exists(store: Store) -> bool:
    """Whether the inbox was ever read into this state (reading creates nothing)."""
    row = store.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inbox_events'"
    ).fetchone()
    return row is not None


def folder_marks(store: Store) -> dict[str, FolderMark]:
    if not _exists(store):
        return {}
    rows = store.conn.execute("SELECT folder, uidvalidity, last_uid FROM inbox_folders")
    return {folder: FolderMark(v, u) for folder, v, u in rows}


def add_events(
    store: Store, marks: Mapping[str, FolderMark], found: Iterable[InboxEvent]
) -> list[InboxEvent]:
    """Record the events and the folders' new marks in one transaction; the new ones back."""
    _ensure(store)
    added: list[InboxEvent] = []
    with store.transaction() as conn:
        for e in found:
            key = e.message_id or f"{e.folder}/{e.uid}"
            done = conn.execute(
                "INSERT OR IGNORE INTO inbox_events(id, kind, at, message_id, sender, "
                "recommender, letter, until, detail, folder, uid, address, entry) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    e.kind,
                    to_text(e.at) if e.at else None,
                    e.message_id,
                    e.sender,
                    e.recommender,
                    e.letter,
                    e.until.isoformat() if e.until else None,
                    clip(e.detail),
                    e.folder,
                    e.uid,
                    e.address,
                    e.entry,
                ),
            )
            if done.rowcount:
                added.append(e)
        for folder, mark in marks.items():
            conn.execute(
                # Two scans at once (the watcher's and the one before sending)
                # never move a folder's mark back.
                "INSERT INTO inbox_folders(folder, uidvalidity, last_uid) VALUES (?, ?, ?) "
                "ON CONFLICT(folder) DO UPDATE SET last_uid = CASE "
                "WHEN uidvalidity = excluded.uidvalidity "
                "THEN max(last_uid, excluded.last_uid) ELSE excluded.last_uid END, "
                "uidvalidity = excluded.uidvalidity",
                (folder, mark.uidvalidity, mark.last_uid),
            )
    return added


def events(store: Store) -> tuple[InboxEvent, ...]:
    """Every stored event that is not ``unrelated``, oldest first."""
    if not _exists(store):
        return ()
    rows = store.conn.execute(
        "SELECT kind, at, message_id, sender, recommender, letter, until, detail, folder, uid, "
        "address, entry FROM inbox_events WHERE kind != 'unrelated' ORDER BY at, id"
    )
    return tuple(
        InboxEvent(
            kind=kind,
            message_id=mid,
            at=from_text(at) if at else None,
            sender=sender,
            recommender=rid,
            letter=letter,
            until=date.fromisoformat(until) if until else None,
            detail=detail,
            folder=folder,
            uid=uid,
            address=address,
            entry=entry,
        )
        for kind, at, mid, sender, rid, letter, until, detail, folder, uid, address, entry in rows
    )


def sent_message_ids(store: Store) -> dict[str, str]:
    """Every Message-ID lormail delivered, by any transport, with its recommender."""
    # A Maildir delivery (local) can be replied to just the same.
    rows = store.conn.execute(
        "SELECT message_id, recommender FROM log WHERE message_id IS NOT NULL AND state IN (?, ?)",
        (LOG_SENT, LOG_LOCAL),
    )
    return {mid: rid for mid, rid in rows}
