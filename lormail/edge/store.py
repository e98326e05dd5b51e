"""The state database: send log, first-seen instants, calendar event stamps.

SQLite in WAL mode, one short exclusive transaction per change, the file and
its folder private to the user (0600 / 0700).  The send log's transitions
(``queued → sending → sent | failed | skipped``, and ``dry-run``) live here as
one method each, so that every writer moves a row the same way.  The schema carries a version so
that a newer lormail can migrate an older state.  Instants are stored as UTC
RFC 3339 text ("2026-09-14T14:00:00Z"), which sorts as time does.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from lormail.core.instants import utc_z
from lormail.edge.files import ensure_private_dir
from lormail.errors import LormailError, Problem
from lormail.model import (
    EMPTY_SNAPSHOT,
    LOG_DRY_RUN,
    LOG_FAILED,
    LOG_QUEUED,
    LOG_SENDING,
    LOG_SENT,
    LOG_SKIPPED,
    EventStamp,
    LogEntry,
    Snapshot,
)

SCHEMA_VERSION = 2
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
    reply       TEXT,
    -- how often a run died with this row in `sending` (SPEC §4: retried, reported)
    interruptions INTEGER NOT NULL DEFAULT 0
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


to_text = utc_z


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class LogRow:
    """One key's full row in the send log, as ``lormail log`` shows it."""

    key: str
    kind: str
    recommender: str
    state: str
    message_id: str | None
    to: str | None
    subject: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    retry_at: datetime | None
    error: str | None
    reply: str | None
    interruptions: int


@dataclass(frozen=True, slots=True)
class Outbound:
    """What the log records about a message as it is about to go (or be dry-run)."""

    key: str
    kind: str
    recommender: str
    message_id: str
    to: str
    subject: str


_LOG_COLUMNS = (
    "key, kind, recommender, state, message_id, to_addr, subject, attempts, created_at, "
    "updated_at, sent_at, retry_at, error, reply, interruptions"
)


# A row's new state and what the message is; created_at only when the row is new.
_UPSERT = (
    "INSERT INTO log(key, kind, recommender, state, message_id, to_addr, subject, "
    "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) "
    "ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, "
    "recommender = excluded.recommender, state = excluded.state, "
    "message_id = excluded.message_id, to_addr = excluded.to_addr, "
    "subject = excluded.subject, updated_at = excluded.updated_at"
)
# The same for `sending`, which also counts the attempt and clears retry_at.
_UPSERT_SENDING = (
    "INSERT INTO log(key, kind, recommender, state, message_id, to_addr, subject, "
    "created_at, updated_at, attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, 1) "
    "ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, "
    "recommender = excluded.recommender, state = excluded.state, "
    "message_id = excluded.message_id, to_addr = excluded.to_addr, "
    "subject = excluded.subject, updated_at = excluded.updated_at, "
    "attempts = attempts + 1, retry_at = NULL"
)


def _row(v: Sequence[Any]) -> LogRow:
    """A row selected with ``_LOG_COLUMNS``, in that order."""
    return LogRow(
        key=v[0],
        kind=v[1],
        recommender=v[2],
        state=v[3],
        message_id=v[4],
        to=v[5],
        subject=v[6],
        attempts=int(v[7]),
        created_at=from_text(v[8]),
        updated_at=from_text(v[9]),
        sent_at=from_text(v[10]) if v[10] else None,
        retry_at=from_text(v[11]) if v[11] else None,
        error=v[12],
        reply=v[13],
        interruptions=int(v[14]),
    )


class Store:
    """An open state database.  Use as a context manager or call :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        # Group commit (see group_commit): None = every commit is fsynced.
        self._window: float | None = None
        self._synced_at = 0.0  # time.monotonic() of the last fsynced commit
        self._lazy = False  # a commit since then was not fsynced
        self._sync = "FULL"

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
        lazy = self._window is not None and time.monotonic() - self._synced_at < self._window
        self._set_sync("NORMAL" if lazy else "FULL")
        self.conn.execute("BEGIN EXCLUSIVE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        if lazy:
            self._lazy = True
        else:
            self._synced_at, self._lazy = time.monotonic(), False

    def _set_sync(self, mode: str) -> None:
        if mode != self._sync:
            self.conn.execute(f"PRAGMA synchronous={mode}")
            self._sync = mode

    @contextlib.contextmanager
    def group_commit(self, window: float) -> Iterator[None]:
        """Within: every commit is safe from a crash of lormail at once (it is in
        the WAL), but fsynced, and so safe from a crash of the machine, only when
        the last fsynced commit is ``window`` seconds old; on exit everything is.

        A send batch talking to a fast server commits a row per message without
        paying an fsync per message; to a real server (tens of ms a message)
        nearly every commit is fsynced anyway.
        """
        self._window, self._synced_at = window, time.monotonic()
        try:
            yield
        finally:
            self._window = None
            if self._lazy:
                # A one-row write in a synchronous=FULL commit fsyncs the WAL,
                # and with it every lazy commit before it.
                with self.transaction() as conn:
                    conn.execute("UPDATE meta SET value = value WHERE name = 'schema'")

    def _migrate(self) -> None:
        with self.transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(log)")}
            if "interruptions" not in columns:  # schema 1 → 2
                conn.execute("ALTER TABLE log ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0")
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
            elif int(row[0]) < SCHEMA_VERSION:
                conn.execute(
                    "UPDATE meta SET value = ? WHERE name = 'schema'", (str(SCHEMA_VERSION),)
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
            uid: EventStamp(h, seq, from_text(stamp))
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

    # --- the send log ------------------------------------------------------

    def message_id_secret(self) -> bytes:
        """The random key under which Message-IDs are derived; made once per state.

        A secret of the state (not, say, a hash of the applicant's address, which
        is public in ``From``) so that nobody can test guesses of recommender or
        program ids against a Message-ID.  Stable for the life of the state,
        which is all that retries and threading need.
        """
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO meta(name, value) VALUES ('message_id_secret', ?)",
                (secrets.token_hex(32),),
            )
            row = conn.execute("SELECT value FROM meta WHERE name = 'message_id_secret'").fetchone()
        return bytes.fromhex(str(row[0]))

    def peek_message_id_secret(self) -> bytes | None:
        """The Message-ID secret if one was made already (creates nothing)."""
        row = self.conn.execute(
            "SELECT value FROM meta WHERE name = 'message_id_secret'"
        ).fetchone()
        return None if row is None else bytes.fromhex(str(row[0]))

    def log_rows(self) -> list[LogRow]:
        """Every row, oldest activity first (then by key)."""
        rows = [_row(r) for r in self.conn.execute(f"SELECT {_LOG_COLUMNS} FROM log")]
        rows.sort(key=lambda r: (r.sent_at or r.updated_at, r.key))
        return rows

    def log_row(self, key: str) -> LogRow | None:
        found = self.conn.execute(f"SELECT {_LOG_COLUMNS} FROM log WHERE key = ?", (key,))
        values = found.fetchone()
        return None if values is None else _row(values)

    def rows_in_state(self, state: str) -> list[LogRow]:
        found = self.conn.execute(
            f"SELECT {_LOG_COLUMNS} FROM log WHERE state = ? ORDER BY key", (state,)
        )
        return [_row(r) for r in found]

    def sent_since(self, since: datetime) -> list[datetime]:
        """When each message sent after ``since`` went, oldest first."""
        return [
            from_text(at)
            for (at,) in self.conn.execute(
                "SELECT sent_at FROM log WHERE state = ? AND sent_at > ? ORDER BY sent_at",
                (LOG_SENT, to_text(since)),
            )
        ]

    def _upsert(self, conn: sqlite3.Connection, out: Outbound, state: str, at: datetime) -> None:
        now = to_text(at)
        conn.execute(
            _UPSERT,
            (out.key, out.kind, out.recommender, state, out.message_id, out.to, out.subject, now),
        )

    def mark_sending(self, out: Outbound, at: datetime) -> None:
        """Committed before the SMTP transaction starts: a crash leaves ``sending``."""
        with self.transaction() as conn:
            self._sending(conn, out, at)

    def _sending(self, conn: sqlite3.Connection, out: Outbound, at: datetime) -> None:
        # The upsert and one more attempt in one statement: it runs once per message.
        now = to_text(at)
        conn.execute(
            _UPSERT_SENDING,
            (
                out.key,
                out.kind,
                out.recommender,
                LOG_SENDING,
                out.message_id,
                out.to,
                out.subject,
                now,
            ),
        )

    def mark_sent(
        self,
        key: str,
        at: datetime,
        reply: str,
        note: str | None = None,
        then_sending: Outbound | None = None,
    ) -> None:
        """Committed right after the server accepted.  ``note``: e.g. a refused Bcc.

        ``then_sending``: the next message of the batch, marked ``sending`` in the
        same transaction (one fsync for both) just before its SMTP transaction.
        """
        with self.transaction() as conn:
            conn.execute(
                "UPDATE log SET state = ?, sent_at = ?, updated_at = ?, retry_at = NULL, "
                "reply = ?, error = ? WHERE key = ?",
                (LOG_SENT, to_text(at), to_text(at), reply, note, key),
            )
            if then_sending is not None:
                self._sending(conn, then_sending, at)

    def mark_queued(self, out: Outbound, at: datetime, retry_at: datetime, error: str) -> None:
        """Waiting (transient failure, rate limit, outage): not before ``retry_at``."""
        with self.transaction() as conn:
            self._upsert(conn, out, LOG_QUEUED, at)
            conn.execute(
                "UPDATE log SET retry_at = ?, error = ? WHERE key = ?",
                (to_text(retry_at), error, out.key),
            )

    def mark_failed(self, out: Outbound, at: datetime, error: str, reply: str | None) -> None:
        """Final: a permanent refusal (5xx, with the server's reply) or an unsendable message."""
        with self.transaction() as conn:
            self._upsert(conn, out, LOG_FAILED, at)
            conn.execute(
                "UPDATE log SET retry_at = NULL, error = ?, reply = ? WHERE key = ?",
                (error, reply, out.key),
            )

    def mark_skipped(self, out: Outbound, at: datetime, reason: str) -> None:
        """Final: never sent (e.g. it expired while waiting to be retried)."""
        with self.transaction() as conn:
            self._upsert(conn, out, LOG_SKIPPED, at)
            conn.execute(
                "UPDATE log SET retry_at = NULL, error = ? WHERE key = ?", (reason, out.key)
            )

    def mark_dry_run(self, out: Outbound, at: datetime) -> None:
        """Rendered and logged, not sent; does not count as sent.  Never demotes a send."""
        with self.transaction() as conn:
            row = conn.execute("SELECT state FROM log WHERE key = ?", (out.key,)).fetchone()
            if row is not None and row[0] in (LOG_SENT, LOG_FAILED, LOG_SKIPPED, LOG_SENDING):
                return
            self._upsert(conn, out, LOG_DRY_RUN, at)
            conn.execute("UPDATE log SET retry_at = NULL, error = NULL WHERE key = ?", (out.key,))

    def note_interrupted(self, keys: list[str]) -> None:
        """Count one more interrupted send for each key (found in ``sending``)."""
        if not keys:
            return
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE log SET interruptions = interruptions + 1 WHERE key = ? AND state = ?",
                [(k, LOG_SENDING) for k in keys],
            )


def backoff(attempts: int) -> timedelta:
    """The wait after ``attempts`` failed tries: 1 min, doubling, at most 1 h."""
    return timedelta(minutes=min(60, 2 ** max(0, min(attempts - 1, 6))))


# The row states a send may still follow (the others are final or dry-run).
PENDING_STATES = frozenset({LOG_QUEUED, LOG_SENDING})


def read_snapshot(state_dir: Path) -> Snapshot:
    """The snapshot, or an empty one when no state exists yet (creates nothing)."""
    if not (state_dir / DB_NAME).exists():
        return EMPTY_SNAPSHOT
    with Store.open(state_dir) as store:
        return store.snapshot()
