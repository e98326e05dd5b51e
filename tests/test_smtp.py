"""SMTP against aiosmtpd as a real server: TLS, STARTTLS, AUTH, retries, refusals, timeouts."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from _smtp_helpers import (
    NOW,
    PASSWORD,
    USER,
    Sink,
    make_app,
    make_config,
    make_roster,
    silent_server,
    smtp_server,
)

from lormail.app.context import App
from lormail.app.send import send_due
from lormail.commands.send import cmd_log
from lormail.edge.credentials import CredentialError, Secret
from lormail.edge.store import Store
from lormail.edge.transport import SmtpTransport, TransportError
from lormail.errors import LormailError
from lormail.model import SmtpConfig

# aiosmtpd warns about AUTH over implicit TLS, which it cannot see as TLS.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


class PasswordSource:
    """The keyring's part, for tests of the SMTP session itself."""

    def __init__(self, value: str = PASSWORD) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> Secret:
        self.calls += 1
        return Secret(self.value)


def app_for(tmp_path: Path, port: int, n: int = 1, **smtp: Any) -> App:
    smtp.setdefault("port", port)
    smtp.setdefault("host", "127.0.0.1")
    return make_app(make_config(tmp_path, transport="smtp", **smtp), make_roster(n))


@pytest.fixture
def patch_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[PasswordSource]:
    source = PasswordSource()
    monkeypatch.setattr("lormail.edge.credentials.secret_source", lambda smtp: source())
    yield source


def rows(app: App) -> dict[str, Any]:
    with Store.open(app.state_dir()) as store:
        return {r.key: r for r in store.log_rows()}


# --- TLS and AUTH ---------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_implicit_tls_with_auth(
    tmp_path: Path, trusted: trustme.LeafCert, patch_secret: PasswordSource, mechanism: str
) -> None:
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    with smtp_server(
        security="ssl", cert=trusted, users={USER: PASSWORD}, exclude_auth=(other,)
    ) as server:
        app = app_for(tmp_path, server.port, n=2, security="ssl", auth="password")
        report = send_due(app, NOW)
    assert report.sent == ("request:r0000", "request:r0001")
    assert report.exit_code == 0
    assert len(server.sink.received) == 2
    assert server.sink.ehlo == ["[127.0.0.1]"]  # one connection, an address literal
    assert patch_secret.calls == 1
    got = server.sink.received[0]
    assert got.rcpt_tos == ["r0000@hospital.example.org"]
    assert got.mail_from == USER
    assert got.message_id == rows(app)["request:r0000"].message_id


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_with_auth(
    tmp_path: Path, trusted: trustme.LeafCert, patch_secret: PasswordSource, mechanism: str
) -> None:
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    with smtp_server(
        security="starttls", cert=trusted, users={USER: PASSWORD}, exclude_auth=(other,)
    ) as server:
        app = app_for(tmp_path, server.port, n=3, security="starttls", auth="password")
        report = send_due(app, NOW)
    assert len(report.sent) == 3
    assert len(server.sink.received) == 3
    assert server.sink.ehlo == ["[127.0.0.1]", "[127.0.0.1]"]  # before and after STARTTLS


def test_xoauth2_with_token_command(tmp_path: Path, trusted: trustme.LeafCert) -> None:
    script = tmp_path / "token.py"
    script.write_text("print('ya29.token-value')\n")
    import sys

    with smtp_server(
        Sink(xoauth2_token="ya29.token-value"), security="ssl", cert=trusted, users={}
    ) as server:
        app = app_for(
            tmp_path,
            server.port,
            security="ssl",
            auth="xoauth2",
            token_command=f"{sys.executable} {script}",
        )
        report = send_due(app, NOW)
    assert report.sent == ("request:r0000",)


def test_untrusted_certificate_is_refused(
    tmp_path: Path, trusted: trustme.LeafCert, patch_secret: PasswordSource
) -> None:
    stranger = trustme.CA().issue_cert("127.0.0.1")
    with smtp_server(security="ssl", cert=stranger, users={USER: PASSWORD}) as server:
        app = app_for(tmp_path, server.port, security="ssl", auth="password")
        report = send_due(app, NOW)
    assert not server.sink.received
    assert report.exit_code == 1
    assert report.retrying == ("request:r0000",)
    assert report.errors[0].startswith("TLS certificate verification failed for 127.0.0.1:")
    assert patch_secret.calls == 0  # never offered to an unverified server


def test_starttls_missing_is_refused(tmp_path: Path, patch_secret: PasswordSource) -> None:
    with smtp_server() as server:  # plain, no STARTTLS on offer
        app = app_for(tmp_path, server.port, security="starttls", auth="password")
        report = send_due(app, NOW)
        transport = SmtpTransport(app.config().smtp, patch_secret)
        with pytest.raises(TransportError) as caught:
            transport.connect()
    assert not server.sink.received
    assert caught.value.kind == "no-starttls"
    assert str(caught.value) == (
        f"127.0.0.1:{server.port} does not offer STARTTLS; refusing to send in the clear"
    )
    assert report.retrying == ("request:r0000",)
    assert patch_secret.calls == 0


def test_security_none_only_to_loopback() -> None:
    with pytest.raises(LormailError, match="allowed only to a loopback host"):
        SmtpTransport(SmtpConfig(host="smtp.example.com", port=25, security="none"))
    for host in ("::1", "[::1]", "localhost", "localhost.", "localhost.localdomain", "127.3.4.5"):
        SmtpTransport(SmtpConfig(host=host, port=25, security="none"))


def test_wrong_password_is_transient_and_clear(tmp_path: Path, trusted: trustme.LeafCert) -> None:
    with smtp_server(security="ssl", cert=trusted, users={USER: "another"}) as server:
        config = make_config(
            tmp_path,
            transport="smtp",
            host="127.0.0.1",
            port=server.port,
            security="ssl",
            auth="password",
        )
        transport = SmtpTransport(config.smtp, PasswordSource())
        with pytest.raises(TransportError) as caught:
            transport.connect()
    assert caught.value.kind == "auth"
    assert caught.value.transient
    assert PASSWORD not in str(caught.value)
    assert "rejected the login for 'sarah@example.edu': 535" in str(caught.value)


def test_locked_keyring_keeps_messages_queued(
    tmp_path: Path, trusted: trustme.LeafCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    def locked(smtp: SmtpConfig) -> Secret:
        raise CredentialError("the OS keyring is locked; unlock it and retry")

    monkeypatch.setattr("lormail.edge.credentials.secret_source", locked)
    with smtp_server(security="ssl", cert=trusted, users={USER: PASSWORD}) as server:
        app = app_for(tmp_path, server.port, n=2, security="ssl", auth="password")
        report = send_due(app, NOW)
    assert report.errors == ("the OS keyring is locked; unlock it and retry",)
    assert report.retrying == ("request:r0000", "request:r0001")
    assert {r.state for r in rows(app).values()} == {"queued"}


# --- retries, refusals, timeouts -----------------------------------------------------


def test_4xx_is_retried_with_backoff(tmp_path: Path) -> None:
    sink = Sink(data_replies=["451 4.3.0 Try again later", "452 4.3.1 Still busy"])
    with smtp_server(sink) as server:
        app = app_for(tmp_path, server.port)
        first = send_due(app, NOW)
        assert first.retrying == ("request:r0000",) and first.exit_code == 1
        row = rows(app)["request:r0000"]
        assert (row.state, row.attempts, row.retry_at) == ("queued", 1, NOW + timedelta(minutes=1))
        assert row.error == "DATA: 451 4.3.0 Try again later"
        # Before retry_at the planner holds it back.
        assert send_due(app, NOW + timedelta(seconds=30)).sent == ()
        second = send_due(app, NOW + timedelta(minutes=1))
        assert second.retrying == ("request:r0000",)
        row = rows(app)["request:r0000"]
        assert row.retry_at == NOW + timedelta(minutes=3)  # 1 min, then 2
        assert send_due(app, NOW + timedelta(minutes=2)).sent == ()
        third = send_due(app, NOW + timedelta(minutes=3))
    assert third.sent == ("request:r0000",) and third.exit_code == 0
    assert len(sink.received) == 1
    row = rows(app)["request:r0000"]
    assert (row.state, row.attempts, row.retry_at) == ("sent", 3, None)


def test_backoff_caps_at_an_hour() -> None:
    from lormail.app.send import backoff

    assert [backoff(n).total_seconds() / 60 for n in range(1, 10)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
        60,
    ]


def test_5xx_fails_with_the_reply_in_log_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = Sink(data_replies=["554 5.7.1 Message rejected as spam"])
    with smtp_server(sink) as server:
        app = app_for(tmp_path, server.port, n=2)
        report = send_due(app, NOW)
        assert report.failed == ("request:r0000",)
        assert report.sent == ("request:r0001",)
        assert report.exit_code == 1
        # Final: a later run does not try again.
        assert send_due(app, NOW + timedelta(hours=2)).sent == ()
    assert cmd_log(app, argparse.Namespace(json=True)) == 0
    entries = {e["key"]: e for e in json.loads(capsys.readouterr().out)["entries"]}
    failed = entries["request:r0000"]
    assert failed["state"] == "failed"
    assert failed["reply"] == "554 5.7.1 Message rejected as spam"
    assert failed["error"] == "DATA: 554 5.7.1 Message rejected as spam"
    assert failed["attempts"] == 1
    assert set(failed) == {
        "key",
        "kind",
        "recommender",
        "state",
        "to",
        "subject",
        "message_id",
        "attempts",
        "sent_at",
        "updated_at",
        "retry_at",
        "error",
        "reply",
    }
    assert entries["request:r0001"]["state"] == "sent"
    assert entries["request:r0001"]["sent_at"] == "2026-09-01T15:00:00Z"
    assert entries["request:r0001"]["reply"] == "250 2.0.0 Ok: queued"
    plan = {m.key: m for m in app.plan(NOW + timedelta(hours=2)).messages}
    assert plan["request:r0000"].status == "failed"


def test_refused_recommender_fails_refused_copy_to_self_is_noted(tmp_path: Path) -> None:
    sink = Sink(
        rcpt_replies={
            "r0000@hospital.example.org": "550 5.1.1 No such user",
            USER: "552 5.2.2 Mailbox full",
        }
    )
    with smtp_server(sink) as server:
        app = app_for(tmp_path, server.port, n=2, bcc_self=True)
        report = send_due(app, NOW)
    assert report.failed == ("request:r0000",)
    assert report.sent == ("request:r0001",)
    assert [r.rcpt_tos for r in sink.received] == [["r0001@hospital.example.org"]]
    logged = rows(app)
    assert logged["request:r0000"].reply == "550 5.1.1 No such user"
    assert logged["request:r0001"].error == f"copy to {USER} refused: 552 5.2.2 Mailbox full"


def test_bcc_self_goes_to_the_envelope_only(tmp_path: Path) -> None:
    with smtp_server() as server:
        app = app_for(tmp_path, server.port, bcc_self=True)
        send_due(app, NOW)
    (got,) = server.sink.received
    assert got.rcpt_tos == ["r0000@hospital.example.org", USER]
    assert b"\nBcc:" not in got.content and USER.encode() in got.content  # From only
    assert got.message["Bcc"] is None


@pytest.mark.slow
def test_silent_server_times_out(tmp_path: Path) -> None:
    with silent_server() as port:
        app = app_for(tmp_path, port, n=2, timeout=timedelta(seconds=1))
        report = send_due(app, NOW)
    assert report.exit_code == 1
    assert report.errors == (f"127.0.0.1:{port} did not answer within 1s",)
    assert report.retrying == ("request:r0000", "request:r0001")
    assert all(r.retry_at == NOW + timedelta(minutes=1) for r in rows(app).values())


def test_connection_dropped_mid_batch_reconnects_once(tmp_path: Path) -> None:
    sink = Sink(script={2: "421 4.4.2 Closing connection"})
    with smtp_server(sink) as server:
        app = app_for(tmp_path, server.port, n=3)
        report = send_due(app, NOW)
    assert report.sent == ("request:r0000", "request:r0001", "request:r0002")
    assert len(sink.received) == 3
    assert len(sink.ehlo) == 2  # the first connection and the one reconnect


def test_max_per_hour_holds_the_rest(tmp_path: Path) -> None:
    with smtp_server() as server:
        app = app_for(tmp_path, server.port, n=5, max_per_hour=2)
        first = send_due(app, NOW)
        assert first.sent == ("request:r0000", "request:r0001")
        assert len(first.deferred) == 3 and first.exit_code == 0
        assert first.next_retry == NOW + timedelta(hours=1)
        assert all(
            r.state == "queued" and r.attempts == 0
            for k, r in rows(app).items()
            if k in first.deferred
        )
        assert send_due(app, NOW + timedelta(minutes=59)).sent == ()
        second = send_due(app, NOW + timedelta(hours=1))
        assert second.sent == ("request:r0002", "request:r0003")
    assert len(server.sink.received) == 4


def test_dry_run_logs_and_sends_nothing_then_sends_for_real(tmp_path: Path) -> None:
    with smtp_server() as server:
        app = app_for(tmp_path, server.port, n=2)
        dry = send_due(app, NOW, dry_run=True)
        assert dry.dry_runs == ("request:r0000", "request:r0001") and dry.sent == ()
        assert not server.sink.received
        assert {r.state for r in rows(app).values()} == {"dry-run"}
        assert {m.status for m in app.plan(NOW).messages} == {"dry-run"}
        real = send_due(app, NOW)
    assert real.sent == ("request:r0000", "request:r0001")
    assert len(server.sink.received) == 2


def test_nothing_due_opens_no_connection(tmp_path: Path) -> None:
    with silent_server() as port:
        app = app_for(tmp_path, port, timeout=timedelta(seconds=5))
        app._roster = make_roster(0)
        report = send_due(app, NOW)
    assert report.exit_code == 0 and report.sent == ()


# --- the SMTP transaction ----------------------------------------------------------


@pytest.mark.parametrize("smtputf8", [True, False])
def test_non_ascii_addresses_need_smtputf8(tmp_path: Path, smtputf8: bool) -> None:
    with smtp_server(smtputf8=smtputf8) as server:
        smtp = make_config(tmp_path, transport="smtp", port=server.port, host="127.0.0.1").smtp
        transport = SmtpTransport(smtp)
        try:
            if not smtputf8:
                with pytest.raises(TransportError, match="no SMTPUTF8") as caught:
                    transport.send(b"Subject: hi\r\n\r\nhello\r\n", USER, ["zoë@exämple.org"])
                assert not caught.value.transient
                return
            transport.send(b"Subject: hi\r\n\r\nhello\r\n", USER, ["zoë@exämple.org"])
        finally:
            transport.close()
    (got,) = server.sink.received
    assert got.rcpt_tos == ["zoë@exämple.org"]


# --- secrets on the wire ----------------------------------------------------------------

UNICODE_PASSWORD = "pässwörd-ünïcødé-€"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_a_non_ascii_password_logs_in(
    tmp_path: Path,
    trusted: trustme.LeafCert,
    monkeypatch: pytest.MonkeyPatch,
    mechanism: str,
) -> None:
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    source = PasswordSource(UNICODE_PASSWORD)
    monkeypatch.setattr("lormail.edge.credentials.secret_source", lambda smtp: source())
    with smtp_server(
        security="starttls", cert=trusted, users={USER: UNICODE_PASSWORD}, exclude_auth=(other,)
    ) as server:
        app = app_for(tmp_path, server.port, security="starttls", auth="password")
        report = send_due(app, NOW)
    assert (report.sent, report.errors) == (("request:r0000",), ())


class EchoSink(Sink):
    """A server that answers AUTH PLAIN by echoing what it was sent, blob and password."""

    async def auth_PLAIN(self, server: Any, args: list[str]) -> Any:
        import base64

        from aiosmtpd.smtp import AuthResult

        blob = args[1] if len(args) > 1 else ""
        password = base64.b64decode(blob).split(b"\0")[-1].decode("utf-8")
        return AuthResult(
            success=False, handled=False, message=f"535 5.7.8 {blob} rejected ({password})"
        )


@pytest.mark.parametrize("password", [PASSWORD, UNICODE_PASSWORD])
def test_an_echoed_auth_plain_blob_never_reaches_the_state_or_the_log(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    password: str,
) -> None:
    import base64

    source = PasswordSource(password)
    monkeypatch.setattr("lormail.edge.credentials.secret_source", lambda smtp: source())
    with smtp_server(EchoSink(), users={USER: password}, exclude_auth=("LOGIN",)) as server:
        app = app_for(tmp_path, server.port, auth="password")
        report = send_due(app, NOW)
    assert report.retrying == ("request:r0000",)
    (error,) = report.errors
    assert error == (
        f"127.0.0.1:{server.port} rejected the login for '{USER}': 535 5.7.8 *** rejected (***)"
    )
    blob = base64.b64encode(f"\0{USER}\0{password}".encode()).decode()
    forms = [password, blob, blob.rstrip("="), base64.b64encode(password.encode()).decode()]
    stored = b"".join(p.read_bytes() for p in app.state_dir().iterdir() if p.is_file())
    for form in forms:
        assert form.encode() not in stored
        assert form not in caplog.text
        assert all(form not in e for e in report.errors)


# --- what a loopback host is ----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("localhost.", True),
        ("localhost.localdomain", True),
        ("localhost.localdomain.", True),
        ("127.0.0.1", True),
        ("127.45.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost.example.com", False),
        ("mylocalhost", False),
        ("128.0.0.1", False),
        ("::2", False),
        ("0.0.0.0", False),
        ("smtp.example.com", False),
        ("", False),
    ],
)
def test_one_rule_decides_what_a_loopback_host_is(host: str, loopback: bool) -> None:
    from lormail.core.hosts import is_loopback
    from lormail.load import config

    assert config.is_loopback is is_loopback  # the config check asks the same function
    assert is_loopback(host) is loopback
    smtp = SmtpConfig(host=host or "x", port=25, security="none")
    if loopback:
        SmtpTransport(smtp)
    else:
        with pytest.raises(LormailError, match="allowed only to a loopback host"):
            SmtpTransport(smtp)


def test_an_echoed_blob_never_reaches_stderr_or_the_state_of_the_command(tmp_path: Path) -> None:
    import base64
    import json
    import subprocess

    from _smtp_helpers import lormail, subprocess_env, write_setup

    keyring_file = tmp_path / "keyring" / "store.json"
    keyring_file.parent.mkdir()
    keyring_file.write_text(json.dumps({f"lormail/{USER}": UNICODE_PASSWORD}))
    env = subprocess_env(
        PYTHON_KEYRING_BACKEND="_smtp_helpers.FileKeyring", LORMAIL_TEST_KEYRING=str(keyring_file)
    )
    with smtp_server(EchoSink(), users={USER: "x"}, exclude_auth=("LOGIN",)) as server:
        config = write_setup(
            tmp_path, 1, smtp={"host": "127.0.0.1", "port": server.port, "auth": "password"}
        )
        done = subprocess.run(
            lormail(config, "send-due", "--now", "2026-09-01T15:00:00Z"),
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert "535 5.7.8 *** rejected (***)" in done.stderr.decode()
    blob = base64.b64encode(f"\0{USER}\0{UNICODE_PASSWORD}".encode()).decode()
    state = tmp_path / "state"
    stored = b"".join(p.read_bytes() for p in state.iterdir() if p.is_file())
    for form in (UNICODE_PASSWORD, blob, blob.rstrip("=")):
        assert form.encode() not in done.stderr + done.stdout + stored
