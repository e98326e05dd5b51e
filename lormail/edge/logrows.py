"""The send log's schema and rows: what :mod:`lormail.edge.store` reads and writes.

Instants are stored as UTC RFC 3339 text ("2026-09-14T14:00:00Z"), which sorts
as time does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lormail.core.instants import utc_z

__all__ = [
    "LOG_COLUMNS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "UPSERT",
    "UPSERT_JOINED",
    "UPSERT_SENDING",
    "LogRow",
    "Outbound",
    "from_text",
    "to_log_row",
    "to_text",
]

SCHEMA_VERSION = 2


SCHEMA = """
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
-- until when the daemon holds what an edit made due (core/holds.py)
CREATE TABLE IF NOT EXISTS edit_holds (
    key   TEXT PRIMARY KEY,
    until TEXT NOT NULL
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
    joined: tuple[str, ...] = ()  # a reminder round: every reminder key it stands for


LOG_COLUMNS = (
    "key, kind, recommender, state, message_id, to_addr, subject, attempts, created_at, "
    "updated_at, sent_at, retry_at, error, reply, interruptions"
)


# A row's new state and what the message is; created_at only when the row is new.
UPSERT = (
    "INSERT INTO log(key, kind, recommender, state, message_id, to_addr, subject, "
    "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) "
    "ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, "
    "recommender = excluded.recommender, state = excluded.state, "
    "message_id = excluded.message_id, to_addr = excluded.to_addr, "
    "subject = excluded.subject, updated_at = excluded.updated_at"
)
# A reminder that went in another's round: its row copies the round's.
UPSERT_JOINED = (
    "INSERT INTO log(key, kind, recommender, state, message_id, to_addr, subject, "
    "created_at, updated_at, sent_at, reply) "
    "SELECT ?1, kind, recommender, state, message_id, to_addr, subject, updated_at, "
    "updated_at, sent_at, 'in the round of ' || key FROM log WHERE key = ?2 "
    "ON CONFLICT(key) DO UPDATE SET state = excluded.state, sent_at = excluded.sent_at, "
    "updated_at = excluded.updated_at, reply = excluded.reply, retry_at = NULL, error = NULL"
)
# The same for `sending`, which also counts the attempt and clears retry_at.
UPSERT_SENDING = (
    "INSERT INTO log(key, kind, recommender, state, message_id, to_addr, subject, "
    "created_at, updated_at, attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, 1) "
    "ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, "
    "recommender = excluded.recommender, state = excluded.state, "
    "message_id = excluded.message_id, to_addr = excluded.to_addr, "
    "subject = excluded.subject, updated_at = excluded.updated_at, "
    "attempts = attempts + 1, retry_at = NULL"
)


def to_log_row(v: Sequence[Any]) -> LogRow:
    """A row selected with ``LOG_COLUMNS``, in that order."""
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
