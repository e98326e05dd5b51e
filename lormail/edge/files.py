"""Private folders and atomic file replacement, shared by everything that writes.

A file lormail writes is either absent or whole: written to a temporary file
beside it, flushed to disk, renamed over the old one, and the rename itself
made durable by syncing the folder.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if needed; the folder itself is 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)


def fsync_dir(path: Path) -> None:
    """Make the entries of ``path`` (a rename into it) durable; best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: bytes, keep_mode: bool = True, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` all at once; raises OSError.

    A new file is 0600 (what lormail writes names people, or is a secret);
    an existing one keeps its mode unless ``keep_mode`` is false.  Without
    ``durable`` nothing is synced: still whole, but a power cut may lose it —
    right for a heartbeat rewritten every minute, where each sync would wake
    an idle daemon for the disk.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if keep_mode:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)
