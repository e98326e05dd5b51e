"""Reading the applicant's mailbox over IMAP, read-only (SPEC §8).

Owned here: the connection (TLS verified with ``ssl.create_default_context()``,
which honours ``SSL_CERT_FILE``; ``security: none`` only to a loopback host;
a timeout on every socket operation), the login (keyring password or XOAUTH2
token, as for SMTP), and what is fetched.  Folders are opened with
``EXAMINE`` and read with ``BODY.PEEK`` only, so nothing is ever marked seen,
moved or deleted.  A message is fetched as its header and, of its parts, only
the text ones and delivery reports, at most 64 KB in all; an attachment is
never downloaded.  Those pieces are put back together as one flat message for
the classifier.

Every failure is an :class:`ImapError`: transient, one line, never the secret.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import imaplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from typing import Any

from lormail.core.hosts import is_loopback
from lormail.core.inbox import TEXT_LIMIT
from lormail.edge.credentials import CredentialError, Secret, secret_source
from lormail.edge.inbox_store import FolderMark
from lormail.errors import RuntimeFailure
from lormail.model import ImapConfig, SmtpConfig

__all__ = ["Fetched", "ImapError", "Mailbox", "imap_secret"]

IDLE_RENEW = 24 * 60.0  # seconds: IDLE is re-issued before servers drop it (RFC 2177: 29 min)
_WANTED = {("message", "delivery-status"), ("message", "global-delivery-status")}


class ImapError(RuntimeFailure):
    """The mailbox cannot be read right now; the reason in one line."""

    def __init__(self, message: str, auth: bool = False) -> None:
        super().__init__(message)
        self.auth = auth


@dataclass(frozen=True, slots=True)
class Fetched:
    folder: str
    uid: int
    message: EmailMessage
    received: datetime | None  # the server's INTERNALDATE


def imap_account(imap: ImapConfig) -> SmtpConfig:
    """The inbox's login as the keyring code takes one: host, user, auth, token command."""
    return SmtpConfig(
        host=imap.host, username=imap.username, auth=imap.auth, token_command=imap.token_command
    )


def imap_secret(imap: ImapConfig) -> Secret:
    """The IMAP secret from its keyring entry (SMTP's, unless imap.username differs) or
    token command."""
    return secret_source(imap_account(imap), section="imap")


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Mailbox:
    """One IMAP session; every folder opened read-only."""

    def __init__(self, imap: ImapConfig, secret: Callable[[], Secret] | None = None) -> None:
        if imap.security == "none" and not is_loopback(imap.host):
            raise ImapError(
                f"imap.security none is allowed only to a loopback host, not {imap.host}"
            )
        self.imap = imap
        self.where = f"{imap.host}:{imap.port}"
        self.secret = secret or (lambda: imap_secret(imap))
        self.client: Any = None
        self.idle_capable = False

    # --- the session ---------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Any failure of the world as one ImapError line, without the secret."""
        try:
            yield
        except ImapError:
            raise
        except CredentialError as err:
            raise ImapError(str(err), auth=True) from None
        except Exception as err:
            raise self._failure(err, doing) from None

    def _failure(self, err: BaseException, doing: str) -> ImapError:
        from imapclient.exceptions import LoginError

        where = self.where
        if isinstance(err, LoginError):
            return ImapError(f"{where} refused the login for {self.imap.username}", auth=True)
        if isinstance(err, socket.gaierror):
            return ImapError(f"cannot resolve {self.imap.host} (DNS or offline)")
        if isinstance(err, ConnectionRefusedError):
            return ImapError(f"connection refused by {where}")
        if isinstance(err, ssl.SSLCertVerificationError):
            return ImapError(
                f"TLS certificate verification failed for {where}: {err.verify_message}"
            )
        if isinstance(err, ssl.SSLError):
            return ImapError(f"TLS failed with {where}: {err.reason or err}")
        if isinstance(err, TimeoutError | socket.timeout):
            return ImapError(f"{where} did not answer within {self._timeout():g}s ({doing})")
        if isinstance(err, imaplib.IMAP4.abort | EOFError | ConnectionError):
            return ImapError(f"{where} closed the connection ({doing})")
        if isinstance(err, imaplib.IMAP4.error):
            return ImapError(f"{where} refused {doing}: {' '.join(str(err).split())[:200]}")
        if isinstance(err, OSError):
            return ImapError(f"cannot reach {where}: {err.strerror or err}")
        return ImapError(f"IMAP session with {where} failed ({doing}): {type(err).__name__}")

    def _timeout(self) -> float:
        return max(0.1, self.imap.timeout.total_seconds())

    def connect(self) -> None:
        from imapclient import IMAPClient

        imap = self.imap
        with self._guard("connecting"):
            context = None if imap.security == "none" else ssl.create_default_context()
            client = IMAPClient(
                imap.host,
                port=imap.port,
                ssl=imap.security == "ssl",
                ssl_context=context,
                timeout=self._timeout(),
            )
            client.normalise_times = False  # INTERNALDATE with its offset, not local and naive
            self.client = client
            if imap.security == "starttls":
                client.starttls(context)
            if imap.auth == "xoauth2":
                client.oauth2_login(imap.username, self.secret().reveal())
            elif imap.auth == "password":
                secret = self.secret()
                try:
                    client.login(imap.username, secret.reveal())
                except Exception as err:  # some servers echo what they were sent
                    raise self._failure(err, "the login") from None
            self.idle_capable = client.has_capability("IDLE")

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            client.logout()
        with contextlib.suppress(Exception):
            client.shutdown()

    def interrupt(self) -> None:
        """From another thread: make a waiting IDLE return at once."""
        client = self.client
        if client is not None:
            with contextlib.suppress(Exception):
                client.socket().shutdown(socket.SHUT_RDWR)

    # --- reading -------------------------------------------------------------

    def examine(self, folder: str) -> int:
        """Open ``folder`` read-only (EXAMINE); its UIDVALIDITY."""
        with self._guard(f"EXAMINE {folder}"):
            info = self.client.select_folder(folder, readonly=True)
            return int(info[b"UIDVALIDITY"])

    def new_messages(
        self, folder: str, mark: FolderMark | None, since: date
    ) -> tuple[FolderMark, list[Fetched]]:
        """What arrived in ``folder`` after ``mark``; with no valid mark, what arrived
        since ``since``.  The folder's new mark comes back with the messages."""
        validity = self.examine(folder)
        with self._guard(f"SEARCH in {folder}"):
            if mark is not None and mark.uidvalidity == validity:
                found = self.client.search(["UID", f"{mark.last_uid + 1}:*"])
                uids = sorted(u for u in found if u > mark.last_uid)
                last = mark.last_uid
            else:
                uids = sorted(self.client.search(["SINCE", since]))
                last = 0
        fetched = [self.fetch(folder, uid) for uid in uids]
        return FolderMark(validity, max([last, *uids])), [f for f in fetched if f is not None]

    def fetch(self, folder: str, uid: int) -> Fetched | None:
        """One message: its header and text parts (BODY.PEEK), None when it is gone."""
        with self._guard(f"FETCH in {folder}"):
            head = self.client.fetch([uid], ["BODY.PEEK[HEADER]", "BODYSTRUCTURE", "INTERNALDATE"])
            if uid not in head:
                return None
            item = head[uid]
            header: bytes = item[b"BODY[HEADER]"]
            structure = item[b"BODYSTRUCTURE"]
            parts = list(_text_parts(structure, ""))
            items = []
            budget = TEXT_LIMIT
            for number, size in parts:
                if budget <= 0:
                    break
                take = min(size or budget, budget)
                budget -= take
                section = number or "TEXT"
                if number:
                    items.append(f"BODY.PEEK[{number}.MIME]")
                items.append(f"BODY.PEEK[{section}]<0.{take}>")
            bodies = self.client.fetch([uid], items).get(uid, {}) if items else {}
        raw = _assemble(header, structure, parts, bodies)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)  # what policy.default makes
        received = item.get(b"INTERNALDATE")
        if not isinstance(received, datetime):
            received = None
        elif received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        return Fetched(folder, uid, message, received)

    # --- waiting ---------------------------------------------------------------

    def idle(self, folder: str, seconds: float) -> bool:
        """Wait in IDLE on ``folder`` for at most ``seconds``; True when the server told
        of a change.  The caller re-issues it: every call ends with DONE."""
        self.examine(folder)
        deadline = time.monotonic() + seconds
        with self._guard(f"IDLE on {folder}"):
            self.client.idle()
            try:
                while (left := deadline - time.monotonic()) > 0:
                    responses = self.client.idle_check(timeout=left)
                    if not responses:
                        return False  # the time is up
                    if any(_tells_of_mail(r) for r in responses):
                        return True
                    # A keep-alive ("* OK Still here", Dovecot's every 2 minutes):
                    # nothing to read, so no scan; wait on.
                return False
            finally:
                with contextlib.suppress(Exception):
                    self.client.idle_done()

    def noop(self) -> None:
        with self._guard("NOOP"):
            self.client.noop()


# Untagged IDLE responses that say the folder changed (RFC 3501 §7.3, §7.4).
_MAIL_NEWS = frozenset((b"EXISTS", b"RECENT", b"EXPUNGE", b"FETCH"))


def _tells_of_mail(response: Any) -> bool:
    return isinstance(response, tuple) and len(response) > 1 and response[1] in _MAIL_NEWS


def _text_parts(structure: Any, prefix: str) -> Iterator[tuple[str, int]]:
    """(section number, size) of each text or delivery-report part, in order.

    A single-part message yields ``("", size)``: its body is ``TEXT``.
    Attachments and enclosed messages are left out.
    """
    if structure.is_multipart:
        children = structure[0]
        for i, child in enumerate(children, start=1):
            yield from _text_parts(child, f"{prefix}.{i}" if prefix else str(i))
        return
    kind = (_text(structure[0]).lower(), _text(structure[1]).lower())
    size = int(structure[6]) if len(structure) > 6 and isinstance(structure[6], int) else 0
    disposition = _disposition(structure)
    if disposition == "attachment":
        return
    if kind[0] == "text" or kind in _WANTED:
        yield prefix, size


def _disposition(structure: Any) -> str:
    # The extension fields of a non-multipart part: MD5, then (disposition params).
    text_lines = 1 if _text(structure[0]).lower() == "text" else 0
    index = 7 + text_lines + 1
    if len(structure) > index and isinstance(structure[index], tuple) and structure[index]:
        return _text(structure[index][0]).lower()
    return ""


def _assemble(header: bytes, structure: Any, parts: list[tuple[str, int]], bodies: Any) -> bytes:
    """The fetched pieces as one message: a multipart one's parts laid flat under its boundary."""
    head = header.rstrip(b"\r\n") + b"\r\n\r\n"
    if not structure.is_multipart:
        return head + (bodies.get(b"BODY[TEXT]<0>") or b"")
    boundary = _boundary(structure) or b"lormail-flat-boundary"
    out = [head]
    for number, _ in parts:
        mime = bodies.get(f"BODY[{number}.MIME]".encode())
        body = bodies.get(f"BODY[{number}]<0>".encode())
        if mime is None or body is None:
            continue  # past the 64 KB budget
        out += [b"--", boundary, b"\r\n", mime.rstrip(b"\r\n"), b"\r\n\r\n", body, b"\r\n"]
    out += [b"--", boundary, b"--\r\n"]
    return b"".join(out)


def _boundary(structure: Any) -> bytes | None:
    params = structure[2] if len(structure) > 2 and isinstance(structure[2], tuple) else ()
    for name, value in zip(params[::2], params[1::2], strict=False):
        if _text(name).lower() == "boundary":
            return value if isinstance(value, bytes) else str(value).encode()
    return None
