"""A real Dovecot IMAP server for the inbox tests.

:class:`Dovecot` runs Debian's ``dovecot`` binary with its own config in a
temporary folder: loopback only, implicit TLS (a trustme certificate) and a
plain listener, IDLE on, one user from a passwd file.  As a normal user it
runs entirely as that user; as root (CI containers) Dovecot insists that its
login processes and mail are not root's, so it uses the package's own
``dovenull``/``dovecot`` accounts and ``nobody`` for the mail.  Messages arrive
by IMAP APPEND from the test (:meth:`Dovecot.append`), and :meth:`flags`
reads them back to prove nothing was marked.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

USER = "sarah@example.edu"
PASSWORD = "imap-Pa55word-never-shown"


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    def __init__(self, binary: str, ca: Any, idle: bool = True, still_here: str = "2 mins") -> None:
        self.binary = binary
        self.idle = idle
        self.still_here = still_here  # how often an IDLE client hears "* OK Still here"
        # Not pytest's tmp_path: as root, Dovecot's unprivileged processes must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="lormail-dovecot-"))
        self.dir.chmod(0o755)
        self.ssl_port = _free_port()
        self.plain_port = _free_port()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        cert.private_key_pem.write_to_path(str(self.dir / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(self.dir / "cert.pem"))
        self.ca_file = self.dir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.set_password(PASSWORD)
        self._write_config()
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        d = self.dir
        if os.geteuid() == 0:
            internal, login = "dovecot", "dovenull"
            mail = pwd.getpwnam("nobody")
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            internal = login = me
            mail = pwd.getpwuid(os.geteuid())
        for sub in ("mail", "home"):
            (d / sub).mkdir(exist_ok=True)
            if os.geteuid() == 0:
                os.chown(d / sub, mail.pw_uid, mail.pw_gid)
        group = "dovecot" if os.geteuid() == 0 else _group_name(os.getegid())
        (d / "dovecot.conf").write_text(
            f"""
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%u
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = {min(mail.pw_uid, 500)}
imap_idle_notify_interval = {self.still_here}
{"" if self.idle else "imap_capability = IMAP4rev1 SASL-IR LITERAL+ ENABLE UIDPLUS"}
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={mail.pw_uid} gid={mail.pw_gid} home={d}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {self.plain_port}
  }}
  inet_listener imaps {{
    port = {self.ssl_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
"""
        )

    def set_password(self, password: str) -> None:
        """Dovecot re-reads the passwd file when it changes: a new password takes at once."""
        path = self.dir / "passwd"
        before = path.stat().st_mtime if path.exists() else time.time()
        path.write_text(f"{USER}:{{PLAIN}}{password}::::::\n")
        path.chmod(0o644)
        # passwd-file is re-read when its mtime changes, which may not tick within a second.
        os.utime(path, (before + 5, before + 5))

    def start(self) -> None:
        shutil.rmtree(self.dir / "run", ignore_errors=True)
        self.proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.dir / "dovecot.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: the server and all it started
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot failed: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", self.ssl_port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not start listening")

    def stop(self, graceful: bool = True) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if graceful:  # as a server goes down for a restart (about a second)
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        proc.kill()
        proc.wait()
        # Dovecot's master lets running IMAP sessions linger after it exits; a
        # server going down takes them with it, so its process group ends too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        # The ports are free again only once every child let go of them.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ssl_port), timeout=0.2):
                    time.sleep(0.05)
            except OSError:
                return

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop(graceful=False)  # the test is over: nobody is left to say goodbye to
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @contextmanager
    def client(self) -> Iterator[IMAPClient]:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        c = IMAPClient("127.0.0.1", port=self.ssl_port, ssl_context=context, timeout=10)
        c.login(USER, self.password())
        try:
            yield c
        finally:
            c.logout()

    def password(self) -> str:
        return (self.dir / "passwd").read_text().split(":")[1].removeprefix("{PLAIN}")

    def append(self, data: bytes, folder: str = "INBOX") -> int:
        """Deliver ``data`` into ``folder`` by APPEND; its UID."""
        raw = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        with self.client() as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            reply = c.append(folder, raw, flags=())
        return int(reply.split(b"]")[0].split()[-1])

    def flags(self, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        with self.client() as c:
            c.select_folder(folder, readonly=True)
            return {
                uid: item[b"FLAGS"] for uid, item in c.fetch(c.search(["ALL"]), ["FLAGS"]).items()
            }

    def recreate(self, folder: str) -> None:
        """Delete and create ``folder`` again: it gets a new UIDVALIDITY."""
        with self.client() as c:
            if c.folder_exists(folder):
                c.delete_folder(folder)
            c.create_folder(folder)


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name
