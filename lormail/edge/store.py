"""The state database: send log, first-seen instants, calendar event stamps.

SQLite in WAL mode, one short exclusive transaction per change, each commit
durable at once (``synchronous=FULL``), the file and its folder private to the
user (0600 / 0700).  The send log's transitions (``queued → sending → sent |
local | failed | skipped``, and ``dry-run``) live here as one method each, so
that every writer moves a row the same way.  The schema carries a version so
that a newer lormail can migrate an older state.  Instants are stored as UTC
RFC 3339 text ("2026-09-14T14:00:00Z"), which sorts as time does.

Opening refuses the lost log of a used state folder, and every SQLite or
file-system failure becomes one line (see :mod:`lormail.edge.statedir`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from lormail.edge.files import ensure_private_dir
from lormail.edge.logrows import (
    LOG_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    UPSERT,
    UPSERT_JOINED,
    UPSERT_SENDING,
    LogRow,
    Outbound,
    from_text,
    to_log_row,
    to_text,
)
from lormail.edge.statedir import (
    DB_NAME,
    SECRET_FILE,
    StateError,
    ensure_log_intact,
    message_id_secret,
    set_aside,
    state_error,
    write_secret,
)
from lormail.errors import EXIT_USAGE, LormailError, Problem
from lormail.model import (
    EMPTY_SNAPSHOT,
    LOG_DRY_RUN,
    LOG_FAILED,
    LOG_LOCAL,
    LOG_QUEUED,
    LOG_SENDING,
    LOG_SENT,
    LOG_SKIPPED,
    EventStamp,
    LogEntry,
    Snapshot,
)


class Store:
    """An open state database.  Use as a context manager or call :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        """Open (or create) the database; a lost log of a used folder is refused."""
        ensure_log_intact(state_dir)
        return cls._open(state_dir)

    @classmethod
    def _open(cls, state_dir: Path) -> Store:
        path = state_dir / DB_NAME
        try:
            ensure_private_dir(state_dir)
            if not path.exists():
                # Create it private before SQLite does, so it is never world-readable.
                fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
                os.close(fd)
        except OSError as err:
            raise state_error(state_dir, err) from None
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            store = cls(conn, path)
            store._migrate()
            # Made with the database (after an older state's secret moved out of
            # it), so that a folder with a log always has one.
            message_id_secret(state_dir)
        except BaseException as err:
            if conn is not None:
                conn.close()
            if isinstance(err, sqlite3.OperationalError):
                raise state_error(state_dir, err) from None
            if isinstance(err, sqlite3.DatabaseError):
                raise StateError(f"{path}: cannot open the state database: {err}") from None
            raise
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.chmod(str(path) + suffix, 0o600)
        return store

    @classmethod
    def reset(cls, state_dir: Path, at: datetime) -> Path | None:
        """Start a new, empty log on purpose (``lormail state reset``); returns where the
        old database went.  The Message-ID secret stays, so every Message-ID does."""
        kept = set_aside(state_dir, at)
        cls._open(state_dir).close()
        return kept

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short exclusive transaction: all or nothing, one writer at a time, durable
        when it returns.  A failure of the disk is a :class:`StateError`."""
        try:
            self.conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as err:
            raise state_error(self.path.parent, err) from None
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as err:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.OperationalError):
                raise state_error(self.path.parent, err) from None
            raise

    def _migrate(self) -> None:
        with self.transaction() as conn:
            for statement in SCHEMA.split(";"):
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
            old = conn.execute("SELECT value FROM meta WHERE name = 'message_id_secret'").fetchone()
        if old is not None and not (self.path.parent / SECRET_FILE).exists():
            # An older state kept the secret in the database: it moves to its own file.
            write_secret(self.path.parent, str(old[0]))

    # --- what the planner reads ------------------------------------------

    def snapshot(self, transport: str) -> Snapshot:
        """The log as the planner sees it when sending through ``transport``.

        A Maildir delivery (``local``) counts as sent while the transport is
        ``maildir``; with ``smtp`` it reached nobody, so the planner does not see
        it at all and plans the message afresh.
        """
        log: dict[str, LogEntry] = {}
        for key, state, sent_at, updated_at, retry_at, error, to, subject, mid in self.conn.execute(
            "SELECT key, state, sent_at, updated_at, retry_at, error, to_addr, subject, "
            "message_id FROM log"
        ):
            if state == LOG_LOCAL:
                if transport != "maildir":
                    continue
                state = LOG_SENT
            log[key] = LogEntry(
                key=key,
                state=state,
                at=from_text(sent_at or updated_at),
                retry_at=from_text(retry_at) if retry_at else None,
                error=error,
                to=to,
                subject=subject,
                message_id=mid,
            )
        first_seen = {
            key: from_text(at) for key, at in self.conn.execute("SELECT key, at FROM first_seen")
        }
        from lormail.edge.inbox_store import events

        return Snapshot(log=log, first_seen=first_seen, inbox=events(self))

    def record_first_seen(self, observed: Mapping[str, datetime]) -> None:
        """Keep the first instant each fact was seen; later sightings change nothing."""
        if not observed:
            return
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO first_seen(key, at) VALUES (?, ?)",
                [(k, to_text(v)) for k, v in sorted(observed.items())],
            )

    # --- edit holds -----------------------------------------------------------

    def edit_holds(self) -> dict[str, datetime]:
        return {
            key: from_text(until)
            for key, until in self.conn.execute("SELECT key, until FROM edit_holds")
        }

    def save_edit_holds(self, holds: Mapping[str, datetime]) -> None:
        """Replace the holds with ``holds``."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM edit_holds")
            conn.executemany(
                "INSERT INTO edit_holds(key, until) VALUES (?, ?)",
                [(k, to_text(v)) for k, v in sorted(holds.items())],
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
        """The state folder's Message-ID secret (see :func:`message_id_secret`)."""
        return message_id_secret(self.path.parent)

    def log_rows(self) -> list[LogRow]:
        """Every row, oldest activity first (then by key)."""
        rows = [to_log_row(r) for r in self.conn.execute(f"SELECT {LOG_COLUMNS} FROM log")]
        rows.sort(key=lambda r: (r.sent_at or r.updated_at, r.key))
        return rows

    def log_row(self, key: str) -> LogRow | None:
        found = self.conn.execute(f"SELECT {LOG_COLUMNS} FROM log WHERE key = ?", (key,))
        values = found.fetchone()
        return None if values is None else to_log_row(values)

    def rows_in_state(self, state: str) -> list[LogRow]:
        found = self.conn.execute(
            f"SELECT {LOG_COLUMNS} FROM log WHERE state = ? ORDER BY key", (state,)
        )
        return [to_log_row(r) for r in found]

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
            UPSERT,
            (out.key, out.kind, out.recommender, state, out.message_id, out.to, out.subject, now),
        )

    def mark_sending(self, out: Outbound, at: datetime) -> None:
        """Committed before the SMTP transaction starts: a crash leaves ``sending``."""
        with self.transaction() as conn:
            self._sending(conn, out, at)

    def _sending(self, conn: sqlite3.Connection, out: Outbound, at: datetime) -> None:
        values = (out.key, out.kind, out.recommender, LOG_SENDING, out.message_id, out.to)
        conn.execute(UPSERT_SENDING, (*values, out.subject, to_text(at)))

    def mark_sent(
        self,
        key: str,
        at: datetime,
        reply: str,
        note: str | None = None,
        joined: Sequence[str] = (),
    ) -> None:
        """Committed right after the server accepted.  ``note``: e.g. a refused Bcc.

        ``joined``: the other reminders of a round (SPEC §3.0 rule 4), logged as
        sent with it, in the same transaction, so that none goes again.
        """
        self._delivered(key, LOG_SENT, at, reply, note, joined)

    def mark_local(self, key: str, at: datetime, where: str, joined: Sequence[str] = ()) -> None:
        """Delivered into the local Maildir: no recommender got it (see :meth:`snapshot`)."""
        self._delivered(key, LOG_LOCAL, at, where, None, joined)

    def _delivered(
        self,
        key: str,
        state: str,
        at: datetime,
        reply: str,
        note: str | None,
        joined: Sequence[str] = (),
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE log SET state = ?, sent_at = ?, updated_at = ?, retry_at = NULL, "
                "reply = ?, error = ? WHERE key = ?",
                (state, to_text(at), to_text(at), reply, note, key),
            )
            for other in joined:
                if other != key:
                    conn.execute(UPSERT_JOINED, (other, key))

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
        """Rendered and logged, not sent; does not count as sent.  Never demotes a send
        (a local delivery, which reached nobody, is no send)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT state FROM log WHERE key = ?", (out.key,)).fetchone()
            final = (LOG_SENT, LOG_FAILED, LOG_SKIPPED, LOG_SENDING)
            if row is not None and row[0] in final:
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

    def retry(self, key: str, at: datetime) -> LogRow:
        """Plan a ``failed`` message again (``lormail retry``): same key, same Message-ID."""
        with self.transaction() as conn:
            row = conn.execute("SELECT state FROM log WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise LormailError(
                    [Problem(f"retry: no message {key!r} in the log (see 'lormail log')")],
                    EXIT_USAGE,
                )
            if row[0] != LOG_FAILED:
                raise LormailError(
                    [Problem(f"retry: {key} is {row[0]}; only a failed message is retried")],
                    EXIT_USAGE,
                )
            # Queued from now on, with a fresh count of attempts and interruptions:
            # the planner schedules it like any message that waits for a retry.
            conn.execute(
                "UPDATE log SET state = ?, updated_at = ?, retry_at = ?, attempts = 0, "
                "interruptions = 0, error = NULL WHERE key = ?",
                (LOG_QUEUED, to_text(at), to_text(at), key),
            )
        found = self.log_row(key)
        assert found is not None
        return found


def read_snapshot(state_dir: Path, transport: str) -> Snapshot:
    """The snapshot for ``transport``, or an empty one when no state exists yet
    (creates nothing); a lost log of a used folder is a :class:`StateError`."""
    ensure_log_intact(state_dir)
    if not (state_dir / DB_NAME).exists():
        return EMPTY_SNAPSHOT
    with Store.open(state_dir) as store:
        return store.snapshot(transport)


def read_edit_holds(state_dir: Path) -> dict[str, datetime]:
    """The edit holds, or none when no state exists yet (creates nothing)."""
    if not (state_dir / DB_NAME).exists():
        return {}
    with Store.open(state_dir) as store:
        return store.edit_holds()
