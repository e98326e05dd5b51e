"""config.yaml → a frozen :class:`~lormail.model.Config` (SPEC §2.2).

Owns the config's schema, defaults and checks.  Problems use the roster's
format (``config.yaml:LINE:COL: PATH: message``, FILE as in
:func:`lormail.load.yamlsrc.display_name`) and are raised together as one
:class:`LormailError`.  Relative paths resolve against the config file's
folder and ``~`` expands; every path in the result is absolute.

Secrets never live here: a ``password`` key anywhere is an error that points
to ``lormail credentials set``.
"""

from __future__ import annotations

import email.policy
import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path

from lormail.core.hosts import is_loopback
from lormail.load import fields as F
from lormail.load.fields import LINE, Source, join
from lormail.load.imap_config import read_imap
from lormail.load.policy import duration
from lormail.load.yamlsrc import MapNode, Node, SeqNode, display_name, parse, read_text
from lormail.model import DEFAULT_EDIT_GRACE, CalendarConfig, Config, FeedConfig, SmtpConfig

__all__ = ["from_address_problem", "is_loopback", "load_config", "parse_config"]

_ROOT = frozenset((
    "roster", "templates", "state_dir", "dry_run", "transport", "maildir", "smtp", "calendar",
    "edit_grace", "imap",
))  # fmt: skip
_SMTP = frozenset((
    "host", "port", "security", "username", "auth", "token_command", "from", "bcc_self",
    "timeout", "max_per_hour",
))  # fmt: skip
_CALENDAR = frozenset(("file", "alarms", "include_messages", "feed"))
_FEED = frozenset(("enabled", "bind", "port"))
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.?")
_DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
_PASSWORD = (
    "never put a password in the config; run 'lormail credentials set' to keep it in the OS keyring"
)


def load_config(path: Path) -> Config:
    """Read and validate ``path``; raises :class:`LormailError` with every problem."""
    file = display_name(path)
    return parse_config(read_text(path, file, "run 'lormail init' to write one"), path)


def parse_config(text: str, path: Path) -> Config:
    """Validate ``text`` as if read from ``path`` (which anchors relative paths)."""
    file = display_name(path)
    root = parse(text, file)
    src = Source(file)
    src.refused = ("password",)
    reader = _ConfigReader(src, Path(os.path.abspath(path)))
    if root is not None:
        reader.find_passwords(root)
    return reader.read(root)


def from_address_problem(value: str) -> str | None:
    """Why ``value`` is not one ``Name <addr>`` or ``addr``, or ``None``."""
    try:
        header = email.policy.SMTP.header_factory("from", value)
        addresses = header.addresses
        defects = header.defects
    except Exception:  # the header parser's failures are many and undocumented
        addresses, defects = (), ("unparsable",)
    if defects or len(addresses) != 1 or not addresses[0].addr_spec:
        return f'{F.shown(value)} is not an address like "Sarah Chen <sarah@example.edu>"'
    return F.address_problem(addresses[0].addr_spec)


class _ConfigReader:
    def __init__(self, src: Source, path: Path) -> None:
        self.src = src
        self.path = path
        self.base = path.parent

    def find_passwords(self, root: Node) -> None:
        todo: list[tuple[Node, str]] = [(root, "")]
        while todo:
            node, path = todo.pop()
            if isinstance(node, MapNode):
                for key, value in node.items:
                    if key.text.lower() == "password":
                        self.src.add(key, join(path, key.text), _PASSWORD)
                    todo.append((value, join(path, key.text)))
            elif isinstance(node, SeqNode):
                todo.extend((item, f"{path}[{i}]") for i, item in enumerate(node.items))

    def folder(self, f: dict[str, Node], key: str, path: str, default: str | None) -> Path | None:
        """A path from the config, absolute; ``default`` when the key is absent or null."""
        text = default
        if key in f and not F.is_null(f[key]):
            text = self.src.text(f[key], join(path, key), LINE)
            if text is not None and not text.strip():
                self.src.add(f[key], join(path, key), "must not be empty")
                text = None
        if text is None:
            return None
        found = Path(text).expanduser()
        return Path(os.path.normpath(self.base / found))

    def read(self, root: Node | None) -> Config:
        src = self.src
        f = src.fields(root, "", _ROOT) if root is not None else {}
        f = f or {}
        transport = "maildir"
        if "transport" in f:
            transport = src.choice(f["transport"], "transport", ("maildir", "smtp")) or transport
        smtp = self.smtp(f.get("smtp"), transport == "smtp", f.get("transport"))
        calendar = self.calendar(f["calendar"]) if "calendar" in f else CalendarConfig()
        dry_run = src.boolean(f["dry_run"], "dry_run") if "dry_run" in f else None
        edit_grace = self.edit_grace(f.get("edit_grace"))
        config = Config(
            path=self.path,
            roster=self.folder(f, "roster", "", "roster.yaml") or self.base / "roster.yaml",
            templates=self.folder(f, "templates", "", None),
            state_dir=self.folder(f, "state_dir", "", None),
            dry_run=True if dry_run is None else dry_run,
            transport=transport,
            maildir=self.folder(f, "maildir", "", "outbox") or self.base / "outbox",
            smtp=smtp,
            calendar=calendar,
            edit_grace=DEFAULT_EDIT_GRACE if edit_grace is None else edit_grace,
            imap=read_imap(self, f.get("imap"), smtp),
        )
        src.raise_problems()
        return config

    def edit_grace(self, node: Node | None) -> timedelta | None:
        """How long the daemon holds what an edit made due (SPEC §7); ``None``: the default."""
        if node is None or F.is_null(node):
            return None
        return duration(self.src, node, "edit_grace")

    def smtp(self, node: Node | None, needed: bool, transport: Node | None) -> SmtpConfig:
        src = self.src
        if node is None or F.is_null(node):
            if needed and transport is not None:
                src.add(transport, "transport", "smtp needs an smtp section with host and from")
            return SmtpConfig()
        required = ("host", "from") if needed else ()
        f = src.fields(node, "smtp", _SMTP, required)
        if f is None:
            return SmtpConfig()

        def get(key: str) -> Node | None:
            value = f.get(key)
            return None if value is None or F.is_null(value) else value

        out: dict[str, object] = {}
        host = get("host")
        if host is not None:
            name = src.text(host, "smtp.host", LINE)
            if name is not None and not (_HOST.fullmatch(name) or is_loopback(name)):
                src.add(host, "smtp.host", f"{F.shown(name)} is not a host name")
            elif name is not None:
                out["host"] = name
        security = get("security")
        if security is not None:
            out["security"] = src.choice(security, "smtp.security", ("ssl", "starttls", "none"))
        auth = get("auth")
        if auth is not None:
            out["auth"] = src.choice(auth, "smtp.auth", ("password", "xoauth2", "none"))
        port = get("port")
        if port is not None:
            out["port"] = src.integer(port, "smtp.port", 1, 65535)
        elif isinstance(out.get("security"), str):
            out["port"] = _DEFAULT_PORTS[str(out["security"])]
        for key, name in (("username", "username"), ("token_command", "token_command")):
            value = get(key)
            if value is not None:
                out[name] = src.text(value, f"smtp.{key}", LINE)
        sender = get("from")
        if sender is not None:
            text = src.text(sender, "smtp.from")
            why = from_address_problem(text) if text is not None else None
            if why is not None:
                src.add(sender, "smtp.from", why)
            elif text is not None:
                out["from_addr"] = text
        if get("bcc_self") is not None:
            out["bcc_self"] = src.boolean(f["bcc_self"], "smtp.bcc_self")
        if get("timeout") is not None:
            timeout = duration(src, f["timeout"], "smtp.timeout")
            if timeout is not None and timeout <= timedelta(0):
                src.add(f["timeout"], "smtp.timeout", "must be longer than 0s")
            else:
                out["timeout"] = timeout
        if get("max_per_hour") is not None:
            out["max_per_hour"] = src.integer(f["max_per_hour"], "smtp.max_per_hour", 1)
        smtp = SmtpConfig(**{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]
        self.smtp_rules(smtp, node, f, needed)
        return smtp

    def smtp_rules(self, smtp: SmtpConfig, node: Node, f: dict[str, Node], needed: bool) -> None:
        """Checks across keys: a clear-text hop only to this machine, auth's needs."""
        src = self.src
        if smtp.security == "none" and "security" in f and not is_loopback(smtp.host):
            src.add(
                f["security"],
                "smtp.security",
                f"none sends in the clear, so it is allowed only to a loopback host "
                f"(localhost, 127.0.0.1, ::1), not {F.shown(smtp.host)}",
            )
        if smtp.auth == "xoauth2" and not smtp.token_command:
            src.add(
                f.get("auth", node),
                "smtp.auth",
                "xoauth2 needs token_command, a command that prints an access token",
            )
        if needed and smtp.auth != "none" and not smtp.username and "username" not in f:
            src.add(node, "smtp", f"missing key 'username', which auth: {smtp.auth} needs")

    def calendar(self, node: Node) -> CalendarConfig:
        src = self.src
        f = src.fields(node, "calendar", _CALENDAR)
        if f is None:
            return CalendarConfig()
        out: dict[str, object] = {"file": self.folder(f, "file", "calendar", None)}
        if "alarms" in f:
            alarms = [
                duration(src, item, f"calendar.alarms[{i}]")
                for i, item in enumerate(src.items(f["alarms"], "calendar.alarms", "[7d, 1d]"))
            ]
            out["alarms"] = tuple(a for a in alarms if a is not None)
        if "include_messages" in f:
            out["include_messages"] = src.boolean(
                f["include_messages"], "calendar.include_messages"
            )
        if "feed" in f:
            out["feed"] = self.feed(f["feed"])
        return CalendarConfig(**{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]

    def feed(self, node: Node) -> FeedConfig:
        src = self.src
        f = src.fields(node, "calendar.feed", _FEED)
        if f is None:
            return FeedConfig()
        out: dict[str, object] = {}
        if "enabled" in f:
            out["enabled"] = src.boolean(f["enabled"], "calendar.feed.enabled")
        if "port" in f:
            out["port"] = src.integer(f["port"], "calendar.feed.port", 1, 65535)
        if "bind" in f:
            bind = src.text(f["bind"], "calendar.feed.bind", LINE)
            if bind is not None:
                try:
                    out["bind"] = str(ipaddress.ip_address(bind))
                except ValueError:
                    if bind.lower() == "localhost":
                        out["bind"] = "127.0.0.1"
                    else:
                        src.add(
                            f["bind"],
                            "calendar.feed.bind",
                            f"{F.shown(bind)} is not an IP address, like 127.0.0.1",
                        )
        return FeedConfig(**{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]
