"""The state database: send log, first-seen instants, calendar event stamps.

SQLite in WAL mode, one short exclusive transaction per change, the file and
its folder private to the user (0600 / 0700).  The schema carries a version so
that a newer lormail can migrate an older state.  Instants are stored as UTC
RFC 3339 text ("2026-09-14T14:00:00Z"), which sorts as time does.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lormail.errors import LormailError, Problem
from lormail.model import EMPTY_SNAPSHOT, LogEntry, Snapshot

SCHEMA_VERSION = 1
DB_NAME = "state.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    key         TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    recommender TEXT NOT NULL,
    state       TEXT NOT NULL,   -- queued | sending | sent | failed | skipped | dry-run
    message_id  TEXT,
    to_addr     TEXT,
    subject     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    sent_at     TEXT,
    retry_at    TEXT,
    error       TEXT,
    reply       TEXT
);
CREATE INDEX IF NOT EXISTS log_state ON log(state);
CREATE TABLE IF NOT EXISTS first_seen (
    key TEXT PRIMARY KEY,
    at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    uid      TEXT PRIMARY KEY,
    hash     TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    stamp    TEXT NOT NULL
);
"""


def to_text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class EventStamp:
    """A calendar event's last published content hash, SEQUENCE and DTSTAMP."""

    hash: str
    sequence: int
    stamp: datetime


def ensure_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)


class Store:
    """An open state database.  Use as a context manager or call :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        ensure_private_dir(state_dir)
        path = state_dir / DB_NAME
        if not path.exists():
            # Create it private before SQLite does, so it is never world-readable.
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        try:
            conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            store = cls(conn, path)
            store._migrate()
        except sqlite3.DatabaseError as err:
            raise LormailError(
                [Problem(f"{path}: cannot open the state database: {err}")], exit_code=1
            ) from None
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.chmod(str(path) + suffix, 0o600)
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short exclusive transaction: all or nothing, one writer at a time."""
        self.conn.execute("BEGIN EXCLUSIVE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self.transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta(name, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise LormailError(
                    [
                        Problem(
                            f"{self.path}: the state was written by a newer lormail "
                            f"(schema {row[0]}); upgrade lormail"
                        )
                    ],
                    exit_code=1,
                )

    # --- what the planner reads ------------------------------------------

    def snapshot(self) -> Snapshot:
        log: dict[str, LogEntry] = {}
        for key, state, sent_at, updated_at, retry_at, error in self.conn.execute(
            "SELECT key, state, sent_at, updated_at, retry_at, error FROM log"
        ):
            log[key] = LogEntry(
                key=key,
                state=state,
                at=from_text(sent_at or updated_at),
                retry_at=from_text(retry_at) if retry_at else None,
                error=error,
            )
        first_seen = {
            key: from_text(at) for key, at in self.conn.execute("SELECT key, at FROM first_seen")
        }
        return Snapshot(log=log, first_seen=first_seen)

    def record_first_seen(self, observed: Mapping[str, datetime]) -> None:
        """Keep the first instant each fact was seen; later sightings change nothing."""
        if not observed:
            return
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO first_seen(key, at) VALUES (?, ?)",
                [(k, to_text(v)) for k, v in sorted(observed.items())],
            )

    # --- calendar event stamps -------------------------------------------

    def event_stamps(self) -> dict[str, EventStamp]:
        return {
            uid: EventStamp(hash=h, sequence=seq, stamp=from_text(stamp))
            for uid, h, seq, stamp in self.conn.execute(
                "SELECT uid, hash, sequence, stamp FROM events"
            )
        }

    def save_event_stamps(self, stamps: Mapping[str, EventStamp]) -> None:
        """Store the stamps that changed (upsert); stamps of vanished events stay."""
        if not stamps:
            return
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO events(uid, hash, sequence, stamp) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(uid) DO UPDATE SET hash = excluded.hash, "
                "sequence = excluded.sequence, stamp = excluded.stamp",
                [(u, s.hash, s.sequence, to_text(s.stamp)) for u, s in sorted(stamps.items())],
            )


def read_snapshot(state_dir: Path) -> Snapshot:
    """The snapshot, or an empty one when no state exists yet (creates nothing)."""
    if not (state_dir / DB_NAME).exists():
        return EMPTY_SNAPSHOT
    with Store.open(state_dir) as store:
        return store.snapshot()
