"""``lormail credentials set|test|delete [--imap]``: the mail password in the OS keyring.

One entry (service ``lormail``, user ``smtp.username``) serves SMTP and, unless
``imap.username`` differs, the inbox too; ``--imap`` acts on the inbox's entry.
``test`` logs in to the SMTP server, and to the IMAP server when there is an
``imap:`` section, and says exactly what failed.  The secret is read without
echo (or from stdin when it is not a terminal) and never printed.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from lormail.errors import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, LormailError, Problem

if TYPE_CHECKING:
    from lormail.app.context import App
    from lormail.model import ImapConfig, SmtpConfig

_FAILURE_LABEL = {
    "dns": "DNS lookup failed",
    "refused": "connection refused",
    "tls": "TLS verification failed",
    "no-starttls": "STARTTLS missing",
    "auth": "authentication rejected",
    "timeout": "timed out",
    "network": "connection failed",
    "credentials": "no usable secret",
}
_SECURITY = {"ssl": "TLS", "starttls": "STARTTLS", "none": "no TLS (loopback)"}


def cmd_credentials(app: App, args: argparse.Namespace) -> int:
    from lormail.edge import credentials
    from lormail.edge.imap import imap_account

    action: str = args.action
    if action == "test":
        return _test(app, smtp=not args.imap)
    if args.imap:
        imap = _imap_section(app)
        account, section, server = imap_account(imap), "imap", "IMAP"
    else:
        account, section, server = app.config().smtp, "smtp", "SMTP"
    if not account.username:
        raise LormailError([Problem(f"{section}.username is empty in the config; set it first")])
    where = f"{credentials.SERVICE}/{account.username}"
    if action == "delete":
        if credentials.delete_password(account, section):
            print(f"deleted the password for {where} from the keyring")
        else:
            print(f"no password was stored for {where}")
        return EXIT_OK
    if account.auth != "password":
        raise LormailError(
            [Problem(f"{section}.auth is {account.auth}: there is no password to store")],
            EXIT_USAGE,
        )
    value = _read_secret(f"{server} password for {account.username} at {account.host}: ")
    if not value:
        raise LormailError([Problem("no password given; nothing stored")], EXIT_USAGE)
    credentials.set_password(account, credentials.Secret(value), section)
    print(f"stored the password for {where} in the keyring")
    return EXIT_OK


def _imap_section(app: App) -> ImapConfig:
    imap = app.config().imap
    if imap is None:
        raise LormailError(
            [Problem("--imap: config.yaml has no imap section (see the README's Inbox)")],
            EXIT_USAGE,
        )
    return imap


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


def _test(app: App, smtp: bool) -> int:
    """SMTP (unless ``--imap``), then IMAP when configured: one line each."""
    imap = app.config().imap if smtp else _imap_section(app)
    ok = _test_smtp(app.config().smtp) if smtp else True
    if imap is not None:
        ok = _test_imap(imap) and ok
    return EXIT_OK if ok else EXIT_RUNTIME


def _test_smtp(smtp: SmtpConfig) -> bool:
    from lormail.edge.credentials import secret_source
    from lormail.edge.transport import SmtpTransport, TransportError

    transport = SmtpTransport(smtp, lambda: secret_source(smtp))
    try:
        transport.connect()
    except TransportError as err:
        label = _FAILURE_LABEL.get(err.kind, "failed")
        print(f"lormail: SMTP test failed: {label}: {err}", file=sys.stderr)
        return False
    finally:
        transport.close()
    who = f", authenticated as {smtp.username}" if smtp.auth != "none" else ""
    print(f"ok: {smtp.host}:{smtp.port} over {_SECURITY.get(smtp.security, smtp.security)}{who}")
    return True


def _test_imap(imap: ImapConfig) -> bool:
    from lormail.app.inbox import shown_wait
    from lormail.edge.imap import ImapError, Mailbox, imap_secret

    box = Mailbox(imap, lambda: imap_secret(imap))
    try:
        box.connect()
    except ImapError as err:
        print(f"lormail: IMAP test failed: {err}", file=sys.stderr)
        return False
    finally:
        box.close()
    who = f", authenticated as {imap.username}" if imap.auth != "none" else ""
    how = "IDLE" if box.idle_capable else f"no IDLE: a poll every {shown_wait(imap.poll)}"
    security = _SECURITY.get(imap.security, imap.security)
    print(f"ok: IMAP {imap.host}:{imap.port} over {security}{who} ({how})")
    return True
