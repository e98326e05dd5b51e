"""The state folder itself: its Message-ID secret, a lost log, and its failures.

The Message-ID secret lives in its own 0600 file beside the database, so that
starting a new log (``lormail state reset``) keeps every Message-ID.  A folder
that holds that secret was used before (it is made with the first database):
a missing or empty ``state.db`` there is a lost log, and nothing is sent until
it is restored or reset, rather than a second round of every message.  Every
SQLite or file-system failure under the folder becomes one line
(:class:`StateError`), e.g. "state folder is read-only: …".
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from lormail.edge.files import ensure_private_dir, write_atomic
from lormail.errors import RuntimeFailure

DB_NAME = "state.db"
SECRET_FILE = "message-id.key"
LOCK_NAME = "send.lock"  # held by whoever sends, so that two senders never send one key


class StateError(RuntimeFailure):
    """The state folder cannot be used right now (read-only, full, lost log): exit 1."""


def state_error(where: Path, err: BaseException) -> StateError:
    """One line for a failure of SQLite or of the file system under the state folder."""
    code = getattr(err, "sqlite_errorcode", None)
    # A read-only folder shows as READONLY or CANTOPEN (no room for the WAL files).
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM) or (
        isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    ):
        return StateError(f"state folder is read-only: {where}")
    if code == sqlite3.SQLITE_FULL or (
        isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    ):
        return StateError(f"state folder is full: {where} (free some disk space)")
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    if code is not None and code & 0xFF == sqlite3.SQLITE_IOERR:
        return StateError(f"cannot write the state folder {where}: {text} (is the disk full?)")
    return StateError(f"cannot use the state folder {where}: {text}")


def used_before(state_dir: Path) -> bool:
    """The folder holds the Message-ID secret, made with its first database: lormail ran here.

    The feed token alone does not count: the daemon and ``feed-url`` make it
    before any log exists, and a fresh folder must not look like a lost one.
    """
    return (state_dir / SECRET_FILE).exists()


def log_is_lost(state_dir: Path) -> bool:
    """A used folder whose ``state.db`` is missing or empty (SPEC §4)."""
    path = state_dir / DB_NAME
    try:
        empty = path.stat().st_size == 0
    except FileNotFoundError:
        empty = True
    return empty and used_before(state_dir)


def _lost_log(state_dir: Path) -> StateError:
    return StateError(
        f"{state_dir / DB_NAME} is missing or empty, but this state folder was used before; "
        "nothing is sent until you restore it from a backup, or run 'lormail state reset' "
        "to start a new log (messages already sent may then go again)"
    )


def ensure_log_intact(state_dir: Path) -> None:
    """Raise :class:`StateError` when the send log of a used state folder is lost."""
    if log_is_lost(state_dir):
        raise _lost_log(state_dir)


def write_secret(state_dir: Path, value: str) -> None:
    try:
        write_atomic(state_dir / SECRET_FILE, (value + "\n").encode("ascii"), keep_mode=False)
    except OSError as err:
        raise state_error(state_dir, err) from None


def peek_message_id_secret(state_dir: Path) -> bytes | None:
    """The Message-ID secret if one was made already (creates nothing)."""
    try:
        text = (state_dir / SECRET_FILE).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise StateError(
            f"{state_dir / SECRET_FILE}: cannot read the Message-ID secret: {err}"
        ) from None
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise StateError(
            f"{state_dir / SECRET_FILE}: is not a Message-ID secret (64 hex digits)"
        ) from None


def message_id_secret(state_dir: Path) -> bytes:
    """The random key under which Message-IDs are derived; made once per state folder.

    A secret of the state (not, say, a hash of the applicant's address, which
    is public in ``From``) so that nobody can test guesses of recommender or
    program ids against a Message-ID.  It lives in its own 0600 file, apart
    from the log, so that a new log keeps every Message-ID.
    """
    found = peek_message_id_secret(state_dir)
    if found is not None:
        return found
    ensure_private_dir(state_dir)
    write_secret(state_dir, secrets.token_hex(32))
    made = peek_message_id_secret(state_dir)
    assert made is not None
    return made


def set_aside(state_dir: Path, at: datetime) -> Path | None:
    """Move ``state.db`` (and its WAL files) aside, named by ``at``; where it went."""
    path = state_dir / DB_NAME
    if not path.exists():
        return None
    kept = state_dir / f"{DB_NAME}.{at.strftime('%Y%m%dT%H%M%SZ')}.old"
    try:
        for suffix in ("-wal", "-shm", ""):
            old = Path(f"{path}{suffix}")
            if old.exists():
                os.replace(old, Path(f"{kept}{suffix}"))
    except OSError as err:
        raise state_error(state_dir, err) from None
    return kept


@contextlib.contextmanager
def sender_lock(state_dir: Path) -> Iterator[bool]:
    """Hold the state's send lock if free; yields False when another sender has it."""
    import fcntl

    try:
        ensure_private_dir(state_dir)
        fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise state_error(state_dir, err) from None
    with os.fdopen(fd, "r+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
