"""Real SMTP servers, rosters and configs for the sending tests.

- :class:`Sink`: an aiosmtpd handler that records every message, and can be
  scripted to answer 4xx/5xx.
- :func:`smtp_server`: aiosmtpd on 127.0.0.1 with a free port, in this
  process, plain / implicit TLS / STARTTLS, with AUTH PLAIN and LOGIN.
- :func:`silent_server`: accepts TCP connections and never says a word.
- :func:`make_roster`, :func:`make_config`, :func:`make_app`: model objects
  built directly, so these tests need no YAML loader.
- :func:`write_setup` and :func:`lormail`: YAML files and the argv of the
  real command line, for the subprocess tests.
- Run as a script (``python tests/_smtp_helpers.py sink SPEC.json``), it is a
  recording sink in its own process, which a killed sender cannot take down.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

if __name__ == "__main__":  # run as a script: make `lormail` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lormail.app.context import App
from lormail.model import (
    Applicant,
    Config,
    Letter,
    Material,
    Policy,
    Program,
    Recommender,
    Roster,
    SmtpConfig,
)

CHICAGO = ZoneInfo("America/Chicago")
NY = ZoneInfo("America/New_York")
# A Tuesday, 10:00 in Chicago: inside every default send window.
NOW = datetime(2026, 9, 1, 15, 0, tzinfo=UTC)
NOW_TEXT = "2026-09-01T15:00:00Z"
USER = "sarah@example.edu"
PASSWORD = "s3cr3t-Pa55word-never-shown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the recording sink -----------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        msg = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class Sink:
    """An aiosmtpd handler: records what it accepts; replies may be scripted.

    ``data_replies``: replies for the next DATA commands (then 250);
    ``script``: a reply for the Nth DATA command (1-based, counting all);
    ``rcpt_replies``: per address, a reply to RCPT TO;
    ``xoauth2_token``: accept AUTH XOAUTH2 with this bearer token.
    """

    received: list[Received] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    script: dict[int, str] = field(default_factory=dict)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    record: Path | None = None  # also append one JSON line per message (subprocess sinks)
    xoauth2_token: str | None = None
    ehlo: list[str] = field(default_factory=list)  # the EHLO names, one per EHLO
    delay: float = 0.0  # seconds each DATA waits before it is recorded and answered
    data_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.ehlo.append(hostname)
        return responses

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:
        import base64

        from aiosmtpd.smtp import AuthResult

        if self.xoauth2_token is None or len(args) < 2:
            return AuthResult(success=False, handled=False)
        blob = base64.b64decode(args[1]).decode()
        ok = blob == f"user={USER}\x01auth=Bearer {self.xoauth2_token}\x01\x01"
        return AuthResult(success=ok, handled=False)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        with self.lock:
            self.data_count += 1
            if self.data_count in self.script:
                return self.script[self.data_count]
            if self.data_replies:
                return self.data_replies.pop(0)
            item = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
            if self.record is not None:
                line = json.dumps(
                    {"message_id": item.message_id, "to": item.rcpt_tos, "from": item.mail_from}
                )
                # Recorded before the 250 goes out: "delivered" means "in this file".
                with self.record.open("a") as fh:
                    fh.write(line + "\n")
                    fh.flush()
            self.received.append(item)
        return "250 2.0.0 Ok: queued"


def authenticator(users: dict[str, str]) -> Callable[..., Any]:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = data.login.decode()
        ok = users.get(user) == data.password.decode()
        return AuthResult(success=ok, handled=False)

    return check


@dataclass
class Server:
    host: str
    port: int
    sink: Sink


@contextlib.contextmanager
def smtp_server(
    sink: Sink | None = None,
    *,
    security: str = "none",  # none | ssl | starttls | plain-no-starttls
    cert: Any = None,  # a trustme LeafCert for ssl/starttls
    users: dict[str, str] | None = None,
    exclude_auth: tuple[str, ...] = (),
    port: int | None = None,
    smtputf8: bool = True,  # aiosmtpd's Controller offers SMTPUTF8 unless told not to
) -> Iterator[Server]:
    """aiosmtpd on 127.0.0.1 (a free port unless given) in a thread of this process."""
    import ssl

    from aiosmtpd.controller import Controller

    sink = sink or Sink()
    port = port or free_port()
    kwargs: dict[str, Any] = {}
    context = None
    if security in ("ssl", "starttls"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
    if security == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    if users is not None:
        # aiosmtpd sees implicit TLS as plain text; it would then hide AUTH.
        kwargs.update(authenticator=authenticator(users), auth_require_tls=security == "starttls")
        kwargs["auth_required"] = True
        kwargs["auth_exclude_mechanism"] = list(exclude_auth)
    kwargs["enable_SMTPUTF8"] = smtputf8
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        ssl_context=context if security == "ssl" else None,
        server_hostname="lormail-test",
        ready_timeout=10,
        **kwargs,
    )
    controller.start()
    try:
        yield Server("127.0.0.1", port, sink)
    finally:
        controller.stop()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP listener that accepts and then says nothing (for timeouts)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port: int = listener.getsockname()[1]
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        done.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


# --- rosters and configs ---------------------------------------------------------


def make_roster(
    n: int = 3,
    *,
    kind: str = "request",
    materials: tuple[Material, ...] = (),
    names: Callable[[int], str] | None = None,
) -> Roster:
    """``n`` recommenders with one message each due at :data:`NOW`.

    ``kind`` request: planned, asked by e-mail today; packet: agreed today.
    """
    deadline = datetime.combine(date(2026, 12, 1), time(23, 59, 59), tzinfo=NY)
    prog = Program(
        id="im",
        name="Internal Medicine",
        deadline=deadline,
        deadline_is_date=True,
        timezone=NY,
        portal="ERAS",
    )
    today = NOW.astimezone(CHICAGO).date()
    recs = []
    for i in range(n):
        rid = f"r{i:04d}"
        extra: dict[str, Any] = (
            {"status": "planned", "ask_by_email": True, "ask_on": today}
            if kind == "request"
            else {"status": "agreed", "asked_on": today - timedelta(days=3), "agreed_on": today}
        )
        recs.append(
            Recommender(
                id=rid,
                name=names(i) if names else f"Dr. Rec {i}",
                salutation=f"Dr. Rec {i}",
                email=f"{rid}@hospital.example.org",
                timezone=CHICAGO,
                policy=Policy(),
                letters=(Letter(program="im"),),
                **extra,
            )
        )
    return Roster(
        applicant=Applicant(
            name="Sarah Chen", email=USER, timezone=NY, signature="Sarah", materials=materials
        ),
        defaults=Policy(),
        programs=(prog,),
        recommenders=tuple(recs),
    )


def make_config(tmp: Path, **smtp: Any) -> Config:
    """Config for ``tmp``: maildir unless ``transport='smtp'`` is in ``smtp``."""
    transport = smtp.pop("transport", "smtp" if smtp else "maildir")
    dry_run = smtp.pop("dry_run", False)
    smtp.setdefault("from_addr", f"Sarah Chen <{USER}>")
    smtp.setdefault("username", USER)
    smtp.setdefault("auth", "none")
    smtp.setdefault("security", "none")
    smtp.setdefault("timeout", timedelta(seconds=5))
    smtp.setdefault("max_per_hour", 0)
    return Config(
        path=tmp / "config.yaml",
        roster=tmp / "roster.yaml",
        state_dir=tmp / "state",
        dry_run=dry_run,
        transport=transport,
        maildir=tmp / "outbox",
        smtp=SmtpConfig(**smtp),
    )


def make_app(config: Config, roster: Roster, now: datetime | None = NOW) -> App:
    return App(config_path=config.path, now_override=now, _config=config, _roster=roster)


def state_secret(state_dir: Path) -> bytes:
    from lormail.edge.statedir import peek_message_id_secret

    secret = peek_message_id_secret(state_dir)
    assert secret is not None
    return secret


def message_ids(roster: Roster, state_dir: Path, kind: str = "request") -> dict[str, str]:
    """Message-ID → key, computed as compose does."""
    from lormail.core.compose import message_id

    secret = state_secret(state_dir)
    return {
        message_id(f"{kind}:{r.id}", secret, "example.edu"): f"{kind}:{r.id}"
        for r in roster.recommenders
    }


# --- YAML files for the real command line -----------------------------------------


def write_setup(
    tmp: Path,
    n: int = 3,
    *,
    smtp: dict[str, Any] | None = None,
    dry_run: bool = False,
    name: str = "config.yaml",
) -> Path:
    """A ``roster.yaml`` like :func:`make_roster`'s (requests due at :data:`NOW`) and a
    config; SMTP when ``smtp`` is given (keys as in config.yaml), else the Maildir."""
    lines = [
        "applicant:",
        "  name: Sarah Chen",
        f"  email: {USER}",
        "  timezone: America/New_York",
        "  signature: Sarah",
        "programs:",
        "  - id: im",
        "    name: Internal Medicine",
        "    portal: ERAS",
        "    deadline: 2026-12-01",
        "    timezone: America/New_York",
        "recommenders:" + ("" if n else " []"),
    ]
    for i in range(n):
        rid = f"r{i:04d}"
        lines += [
            f"  - id: {rid}",
            f"    name: Dr. Rec {i}",
            f"    salutation: Dr. Rec {i}",
            f"    email: {rid}@hospital.example.org",
            "    timezone: America/Chicago",
            "    status: planned",
            "    ask_by_email: true",
            "    ask_on: 2026-09-01",
            "    letters: [{program: im}]",
        ]
    (tmp / "roster.yaml").write_text("\n".join(lines) + "\n")
    config = [
        "roster: roster.yaml",
        "state_dir: state",
        f"dry_run: {'true' if dry_run else 'false'}",
        f"transport: {'smtp' if smtp is not None else 'maildir'}",
        "maildir: outbox",
    ]
    if smtp is not None:
        fields = {
            "security": "none",
            "auth": "none",
            "username": USER,
            "from": f"Sarah Chen <{USER}>",
            "max_per_hour": 100000,  # the default 30 would hold back most test batches
            **smtp,
        }
        config.append("smtp:")
        config += [f"  {key}: {json.dumps(value)}" for key, value in fields.items()]
    path = tmp / name
    path.write_text("\n".join(config) + "\n")
    return path


def lormail(config: Path, *args: str) -> list[str]:
    """argv of the real command line, ``python -m lormail --config CONFIG ARGS``."""
    return [sys.executable, "-m", "lormail", "--config", str(config), *args]


# --- subprocess driver -------------------------------------------------------------


def run_steps(steps_file: Path, results_file: Path) -> None:
    """Run commands one after another (inside a dbus session) and record what each did.

    ``steps_file``: a JSON list of ``{"name", "argv", "input"}``; results: a JSON
    object name → ``{"rc", "stdout", "stderr"}``.
    """
    import subprocess

    results = {}
    for step in json.loads(steps_file.read_text()):
        done = subprocess.run(
            step["argv"], input=step.get("input"), capture_output=True, text=True, timeout=60
        )
        results[step["name"]] = {
            "rc": done.returncode,
            "stdout": done.stdout,
            "stderr": done.stderr,
        }
    results_file.write_text(json.dumps(results))


def _drive(argv: list[str]) -> int:
    """``sink SPEC.json``: a recording sink in its own process, serving until killed;
    ``steps STEPS.json RESULTS.json``: :func:`run_steps`."""
    if argv[0] == "steps":
        run_steps(Path(argv[1]), Path(argv[2]))
        return 0
    spec = json.loads(Path(argv[1]).read_text())
    sink = Sink(record=Path(spec["record"]), delay=float(spec.get("delay", 0)))
    with smtp_server(sink, port=spec.get("port")) as server:
        Path(spec["port_file"]).write_text(str(server.port))
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(_drive(sys.argv[1:]))


import keyring.backend  # noqa: E402  (after the sys.path fix above)


class FileKeyring(keyring.backend.KeyringBackend):
    """A keyring backend for subprocess tests without a desktop keyring: a JSON file
    named by ``$LORMAIL_TEST_KEYRING``.  Chosen only through ``PYTHON_KEYRING_BACKEND``
    (``_smtp_helpers.FileKeyring``), as lormail requires of any such backend."""

    priority = 1  # type: ignore[assignment]

    def _load(self) -> dict[str, str]:
        path = Path(os.environ["LORMAIL_TEST_KEYRING"])
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}/{username}"] = password
        Path(os.environ["LORMAIL_TEST_KEYRING"]).write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        import keyring.errors

        data = self._load()
        if data.pop(f"{service}/{username}", None) is None:
            raise keyring.errors.PasswordDeleteError("no such password")
        Path(os.environ["LORMAIL_TEST_KEYRING"]).write_text(json.dumps(data))


def replace_smtp(config: Config, **changes: Any) -> Config:
    return replace(config, smtp=replace(config.smtp, **changes))


HELPERS = Path(__file__).resolve()


def write_spec(tmp: Path, name: str = "spec.json", **spec: Any) -> Path:
    spec.setdefault("tmp", str(tmp))
    path = tmp / name
    path.write_text(json.dumps(spec))
    return path


def driver(action: str, spec: Path, *extra: str) -> list[str]:
    """argv that runs this module as a subprocess (``sink``)."""
    return [sys.executable, str(HELPERS), action, str(spec), *extra]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HELPERS.parent.parent), str(HELPERS.parent), env.get("PYTHONPATH", "")]
    )
    env.update(extra)
    return env
