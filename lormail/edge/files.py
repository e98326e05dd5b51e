"""Private folders, atomic file replacement, and the careful read of an attachment.

A file lormail writes is either absent or whole: written to a temporary file
beside it, flushed to disk, renamed over the old one, and the rename itself
made durable by syncing the folder.  A file the roster names as a material is
read only when it is a regular file of sane size.
"""

from __future__ import annotations

import contextlib
import errno
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


MAX_ATTACHMENT = 20 * 1024 * 1024  # bytes; providers refuse messages of ~25 MB


def read_attachment(path: Path, limit: int = MAX_ATTACHMENT) -> bytes:
    """A regular file's bytes, at most ``limit`` of them; raises OSError otherwise.

    Opened without blocking and checked before it is read, so that a FIFO, a
    device or ``/dev/zero`` named as a material is refused at once instead of
    hanging the send or filling memory.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit // (1024 * 1024)} MB")
        data = fh.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise OSError(errno.EFBIG, f"larger than {limit // (1024 * 1024)} MB")
    return data
