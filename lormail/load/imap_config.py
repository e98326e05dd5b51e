"""The config's ``imap:`` section → :class:`~lormail.model.ImapConfig` (SPEC §8).

Checked like the SMTP section: unknown keys, a clear-text connection to
anything but this machine, xoauth2 without a ``token_command``.  Without a
username the SMTP one is used, so one keyring entry serves both.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from lormail.core.hosts import is_loopback
from lormail.load import fields as F
from lormail.load.fields import LINE
from lormail.load.policy import duration
from lormail.model import ImapConfig, SmtpConfig

if TYPE_CHECKING:
    from lormail.load.config import _ConfigReader
    from lormail.load.yamlsrc import Node

__all__ = ["read_imap"]

_IMAP = frozenset((
    "host", "port", "security", "username", "auth", "token_command", "folders", "poll",
    "portals", "timeout",
))  # fmt: skip
_DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}


def read_imap(reader: _ConfigReader, node: Node | None, smtp: SmtpConfig) -> ImapConfig | None:
    """The section, or None when it is absent or null (lormail then reads no mail)."""
    from lormail.load.config import _HOST

    src = reader.src
    if node is None or F.is_null(node):
        return None
    f = src.fields(node, "imap", _IMAP, ("host",))
    if f is None:
        return None

    def get(key: str) -> Node | None:
        value = f.get(key)
        return None if value is None or F.is_null(value) else value

    out: dict[str, object] = {}
    host = get("host")
    name = src.text(host, "imap.host", LINE) if host is not None else None
    if name is None:
        return None
    if not (_HOST.fullmatch(name) or is_loopback(name)):
        src.add(host or node, "imap.host", f"{F.shown(name)} is not a host name")
    security = "ssl"
    if (node_ := get("security")) is not None:
        security = src.choice(node_, "imap.security", ("ssl", "starttls", "none")) or security
        if security == "none" and not is_loopback(name):
            src.add(
                node_,
                "imap.security",
                f"none reads in the clear, so it is allowed only from a loopback host "
                f"(localhost, 127.0.0.1, ::1), not {F.shown(name)}",
            )
    out["security"] = security
    port = get("port")
    out["port"] = (
        src.integer(port, "imap.port", 1, 65535) if port is not None else _DEFAULT_PORTS[security]
    )
    if (auth := get("auth")) is not None:
        out["auth"] = src.choice(auth, "imap.auth", ("password", "xoauth2", "none"))
    for key in ("username", "token_command"):
        if (value := get(key)) is not None:
            out[key] = src.text(value, f"imap.{key}", LINE)
    out.setdefault("username", smtp.username)
    if out.get("auth") == "xoauth2" and not out.get("token_command"):
        src.add(
            f["auth"],
            "imap.auth",
            "xoauth2 needs token_command, a command that prints an access token",
        )
    if out.get("auth", "password") != "none" and not out.get("username"):
        src.add(node, "imap", "missing key 'username' (nor is there an smtp.username to share)")
    if (folders := get("folders")) is not None:
        names = [
            src.required_text(item, f"imap.folders[{i}]", LINE)
            for i, item in enumerate(src.items(folders, "imap.folders", "[INBOX]"))
        ]
        out["folders"] = tuple(n for n in names if n)
        if not names:
            src.add(folders, "imap.folders", "needs at least one folder, like [INBOX]")
    for key in ("poll", "timeout"):
        if (value := get(key)) is not None:
            length = duration(src, value, f"imap.{key}")
            if length is not None and length <= timedelta(0):
                src.add(value, f"imap.{key}", "must be longer than 0s")
            else:
                out[key] = length
    out["portals"] = reader.folder(f, "portals", "imap", None)
    return ImapConfig(host=name, **{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]
