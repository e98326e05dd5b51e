"""Delivery behind one small interface: a local Maildir, or SMTP (SPEC §4).

:func:`open_transport` returns a :class:`Transport`; its :meth:`send` either
returns the server's reply or raises :class:`TransportError`, which says
whether the failure is ``transient`` (retry later: 4xx, connection lost,
timeout, DNS, offline, keyring locked) or permanent (5xx, with the reply), and
whether it is of the connection (nothing after it can go either) or of the one
message.

SMTP: smtplib's public API (``mail``/``rcpt``/``data``, so that a refused Bcc
copy does not stop the message while a refused recommender does), one
connection for a whole batch, opened on the first send; TLS always
verified with ``ssl.create_default_context()`` (which honours
``SSL_CERT_FILE``); STARTTLS required, never opportunistic; ``security: none``
only to a loopback host; a timeout on every socket operation; an explicit EHLO
name, so that no slow ``socket.getfqdn()`` runs.  Credentials come from a
callable, so the secret is fetched only when a server asks for it, and every
text that may hold a server's echo of the login is scrubbed of the secret in
each form it went on the wire (plain, base64, the PLAIN and XOAUTH2 blobs).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from lormail.core.hosts import is_loopback
from lormail.errors import LormailError, Problem
from lormail.model import Config, SmtpConfig

if TYPE_CHECKING:
    from mailbox import Maildir

    from lormail.edge.credentials import Secret

# What a failure was, for `credentials test` and the log.
DNS = "dns"
REFUSED = "refused"
TLS = "tls"
NO_STARTTLS = "no-starttls"
AUTH = "auth"
TIMEOUT = "timeout"
NETWORK = "network"
CREDENTIALS = "credentials"
REJECTED = "rejected"  # the server's answer to this one message


class TransportError(Exception):
    """A failed delivery; the message never includes a secret."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        kind: str = REJECTED,
        reply: str | None = None,
        connection: bool = False,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.kind = kind
        self.reply = reply
        self.connection = connection  # the connection is gone: reconnect or stop


@dataclass(frozen=True, slots=True)
class Accepted:
    """The server took the message.  ``refused``: envelope recipients it turned down.

    ``local``: it went into the local Maildir and reached no recipient.
    """

    reply: str
    refused: tuple[tuple[str, str], ...] = ()  # (address, "550 reply")
    local: bool = False


class Transport(Protocol):
    def send(self, data: bytes, from_addr: str, to_addrs: Sequence[str]) -> Accepted:
        """Deliver ``data`` (the message, CRLF lines) to ``to_addrs``; the first must accept."""
        ...

    def reconnect(self) -> None:
        """Drop the connection; the next send opens a new one."""
        ...

    def close(self) -> None: ...


# --- Maildir ------------------------------------------------------------------


class MaildirTransport:
    """Delivers into a local Maildir, created (0700) as needed.

    ``mailbox.Maildir.add`` writes into ``tmp/`` and renames into ``new/``: a
    reader never sees half a message.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._box: Maildir | None = None

    def send(self, data: bytes, from_addr: str, to_addrs: Sequence[str]) -> Accepted:
        try:
            if self._box is None:
                import mailbox  # here: an SMTP sender never needs it

                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._box = mailbox.Maildir(self.path, create=True)
            # Maildir files hold LF line ends; the SMTP policy writes CRLF.
            name = self._box.add(data.replace(b"\r\n", b"\n"))
        except OSError as err:
            raise TransportError(
                f"cannot deliver into {self.path}: {err.strerror or err}",
                transient=True,
                kind=NETWORK,
                connection=True,
            ) from None
        return Accepted(reply=f"delivered to {self.path / 'new' / name}", local=True)

    def reconnect(self) -> None:
        self._box = None

    def close(self) -> None:
        self._box = None


# --- SMTP -----------------------------------------------------------------------


SecretSource = Callable[[], "Secret"]


def _reply_text(code: int, resp: bytes | str) -> str:
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else resp
    return f"{code} {' '.join(text.split())}".strip()


def classify(err: BaseException, where: str, timeout: float) -> TransportError:
    """A connection-level exception as a transient :class:`TransportError` with a clear text."""
    if isinstance(err, TransportError):
        return err
    if isinstance(err, socket.gaierror):
        return TransportError(
            f"cannot resolve {where} (DNS or offline): {err.strerror or err}",
            transient=True,
            kind=DNS,
            connection=True,
        )
    if isinstance(err, ConnectionRefusedError):
        return TransportError(
            f"connection refused by {where}", transient=True, kind=REFUSED, connection=True
        )
    if isinstance(err, ssl.SSLCertVerificationError):
        return TransportError(
            f"TLS certificate verification failed for {where}: {err.verify_message}",
            transient=True,
            kind=TLS,
            connection=True,
        )
    if isinstance(err, ssl.SSLError):
        return TransportError(
            f"TLS failed with {where}: {err.reason or err}",
            transient=True,
            kind=TLS,
            connection=True,
        )
    if isinstance(err, TimeoutError) or "timed out" in str(err):
        return TransportError(
            f"{where} did not answer within {timeout:g}s",
            transient=True,
            kind=TIMEOUT,
            connection=True,
        )
    if isinstance(err, smtplib.SMTPServerDisconnected):
        return TransportError(
            f"{where} closed the connection", transient=True, kind=NETWORK, connection=True
        )
    if isinstance(err, smtplib.SMTPResponseException):
        reply = _reply_text(err.smtp_code, err.smtp_error)
        return TransportError(
            f"{where} refused the session: {reply}",
            transient=True,
            kind=NETWORK,
            reply=reply,
            connection=True,
        )
    if isinstance(err, OSError):
        return TransportError(
            f"cannot reach {where}: {err.strerror or err}",
            transient=True,
            kind=NETWORK,
            connection=True,
        )
    return TransportError(
        f"SMTP session with {where} failed: {type(err).__name__}",
        transient=True,
        kind=NETWORK,
        connection=True,
    )


def _ehlo_name(conn: smtplib.SMTP) -> str:
    # An address literal of our end of the socket, as Thunderbird sends: no DNS
    # lookup, and no machine name leaked into the recipient's Received headers.
    with contextlib.suppress(OSError, AttributeError, IndexError, ValueError):
        sock = conn.sock
        addr = sock.getsockname()[0] if sock is not None else ""
        ip = ipaddress.ip_address(addr)
        return f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"
    return "[127.0.0.1]"


class SmtpTransport:
    """One SMTP session for a batch: connect, STARTTLS, AUTH on first use; QUIT on close."""

    def __init__(self, smtp: SmtpConfig, secret: SecretSource | None = None) -> None:
        if smtp.security not in ("ssl", "starttls", "none"):
            raise LormailError([Problem(f"smtp.security: unknown value {smtp.security!r}")])
        if smtp.security == "none" and not is_loopback(smtp.host):
            raise LormailError(
                [
                    Problem(
                        f"smtp.security: none sends in the clear; it is allowed only to a "
                        f"loopback host, not {smtp.host!r} (use ssl or starttls)"
                    )
                ]
            )
        self.smtp = smtp
        self.secret = secret
        self.timeout = max(0.1, smtp.timeout.total_seconds())
        self.where = f"{smtp.host}:{smtp.port}"
        self._conn: smtplib.SMTP | None = None

    # -- the session ----------------------------------------------------------

    def connect(self) -> smtplib.SMTP:
        """Open, secure and authenticate a session; raise a connection-level TransportError."""
        if self._conn is not None:
            return self._conn
        smtp = self.smtp
        # Loading the trusted certificates takes tens of ms: only for TLS.
        context = None if smtp.security == "none" else ssl.create_default_context()
        conn: smtplib.SMTP | None = None
        try:
            # local_hostname given so that smtplib skips socket.getfqdn(); the real
            # EHLO name is set once the socket exists.
            if smtp.security == "ssl":
                conn = smtplib.SMTP_SSL(
                    smtp.host,
                    smtp.port,
                    local_hostname="localhost",
                    timeout=self.timeout,
                    context=context,
                )
            else:
                conn = smtplib.SMTP(
                    smtp.host, smtp.port, local_hostname="localhost", timeout=self.timeout
                )
            conn.local_hostname = _ehlo_name(conn)
            conn.ehlo()
            if smtp.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise TransportError(
                        f"{self.where} does not offer STARTTLS; refusing to send in the clear",
                        transient=True,
                        kind=NO_STARTTLS,
                        connection=True,
                    )
                conn.starttls(context=context)
                conn.ehlo()
            self._authenticate(conn)
        except BaseException as err:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            raise classify(err, self.where, self.timeout) from None
        self._conn = conn
        return conn

    def _authenticate(self, conn: smtplib.SMTP) -> None:
        smtp = self.smtp
        if smtp.auth == "none":
            return
        if self.secret is None:
            raise TransportError(
                "no credential source", transient=True, kind=CREDENTIALS, connection=True
            )
        from lormail.edge.credentials import CredentialError  # only a login needs it

        try:
            secret = self.secret()
        except CredentialError as err:
            raise TransportError(
                str(err), transient=True, kind=CREDENTIALS, connection=True
            ) from None
        value, user = secret.reveal(), smtp.username

        def scrub(text: str) -> str:
            return secret.scrub(text, user)

        try:
            if smtp.auth == "xoauth2":

                def xoauth2(challenge: bytes | None = None) -> str:
                    # A second call means the server sent an error challenge; the
                    # empty answer lets it report the failure as a 535 reply.
                    return "" if challenge else f"user={user}\x01auth=Bearer {value}\x01\x01"

                conn.auth("XOAUTH2", xoauth2, initial_response_ok=True)
            elif user.isascii() and value.isascii():
                conn.login(user, value)
            else:
                _login_utf8(conn, user, value)
        except smtplib.SMTPAuthenticationError as err:
            reply = scrub(_reply_text(err.smtp_code, err.smtp_error))
            raise TransportError(
                f"{self.where} rejected the login for {user!r}: {reply}",
                transient=True,
                kind=AUTH,
                reply=reply,
                connection=True,
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise TransportError(
                f"{self.where} offers no AUTH here; check smtp.security and smtp.auth",
                transient=True,
                kind=AUTH,
                connection=True,
            ) from None
        except smtplib.SMTPException as err:
            # The server could echo what it was sent: scrub every form of the secret.
            raise TransportError(
                scrub(f"login to {self.where} failed: {err}"),
                transient=True,
                kind=AUTH,
                connection=True,
            ) from None

    def send(self, data: bytes, from_addr: str, to_addrs: Sequence[str]) -> Accepted:
        conn = self.connect()
        try:
            return self._transaction(conn, data, from_addr, to_addrs)
        except TransportError as err:
            if err.connection:
                self._drop()
            raise
        except (smtplib.SMTPException, OSError) as err:
            self._drop()
            raise classify(err, self.where, self.timeout) from None

    def _transaction(
        self, conn: smtplib.SMTP, data: bytes, from_addr: str, to_addrs: Sequence[str]
    ) -> Accepted:
        # mail/rcpt/data rather than sendmail(): the DATA reply (with the
        # server's queue id) is worth keeping, and a refused Bcc copy must not
        # stop the message to the recommender while a refused recommender must.
        options: list[str] = []
        if any(not a.isascii() for a in (from_addr, *to_addrs)):
            if not conn.has_extn("smtputf8"):
                raise TransportError(
                    f"{self.where} cannot take non-ASCII addresses (no SMTPUTF8)",
                    transient=False,
                )
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        code, resp = conn.mail(from_addr, options)
        if code != 250:
            self._rset(conn)
            raise _refusal("MAIL FROM", code, resp)
        refused: list[tuple[str, str]] = []
        for index, rcpt in enumerate(to_addrs):
            code, resp = conn.rcpt(rcpt)
            if code in (250, 251):
                continue
            if index == 0:
                self._rset(conn)
                raise _refusal(f"RCPT TO {rcpt}", code, resp)
            refused.append((rcpt, _reply_text(code, resp)))
        try:
            code, resp = conn.data(data)
        except smtplib.SMTPDataError as err:  # DATA itself refused: no 354
            self._rset(conn)
            raise _refusal("DATA", err.smtp_code, err.smtp_error) from None
        if code != 250:
            raise _refusal("DATA", code, resp)
        return Accepted(reply=_reply_text(code, resp), refused=tuple(refused))

    def _rset(self, conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def reconnect(self) -> None:
        self._drop()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.quit()
        self._drop()


def _login_utf8(conn: smtplib.SMTP, user: str, password: str) -> None:
    """AUTH PLAIN (else LOGIN) with UTF-8 credentials (RFC 4616), which smtplib's
    ``login`` cannot send: it encodes its answers as ASCII."""
    conn.ehlo_or_helo_if_needed()
    if not conn.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = conn.esmtp_features.get("auth", "").upper().split()

    def b64(text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    if "PLAIN" in offered:
        code, resp = conn.docmd("AUTH", "PLAIN " + b64(f"\0{user}\0{password}"))
    elif "LOGIN" in offered:
        code, resp = conn.docmd("AUTH", "LOGIN " + b64(user))
        if code == 334:
            code, resp = conn.docmd(b64(password))
    else:
        raise smtplib.SMTPException("no AUTH mechanism that carries a non-ASCII password")
    if code not in (235, 503):  # 503: already authenticated
        raise smtplib.SMTPAuthenticationError(code, resp)


def _refusal(stage: str, code: int, resp: bytes | str) -> TransportError:
    reply = _reply_text(code, resp)
    if code == 421:  # the server is closing the session
        return TransportError(
            f"{stage}: {reply}", transient=True, reply=reply, kind=NETWORK, connection=True
        )
    return TransportError(f"{stage}: {reply}", transient=400 <= code < 500, reply=reply)


@contextlib.contextmanager
def open_transport(config: Config, secret: SecretSource | None = None) -> Iterator[Transport]:
    """The configured transport; closed (QUIT) on exit."""
    transport: Transport
    if config.transport == "smtp":
        transport = SmtpTransport(config.smtp, secret)
    else:
        transport = MaildirTransport(config.maildir)
    try:
        yield transport
    finally:
        transport.close()
