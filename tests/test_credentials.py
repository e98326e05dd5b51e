"""Credentials: the real Secret Service keyring (gnome-keyring under dbus-run-session),
the refusal of insecure backends, token_command, and the Secret wrapper."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from _smtp_helpers import (
    HELPERS,
    NOW_TEXT,
    PASSWORD,
    USER,
    lormail,
    smtp_server,
    subprocess_env,
    write_setup,
)

from lormail.edge import credentials
from lormail.edge.credentials import CredentialError, Secret
from lormail.model import SmtpConfig
from tests.conftest import require_real

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
KEYRING_UNLOCK = "keyring-login-pw"  # unlocks the test keyring; not the SMTP secret


def _session_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A private HOME and runtime dir, and no bus or keyring choice from outside."""
    home, run = tmp_path / "home", tmp_path / "run"
    home.mkdir(exist_ok=True)
    run.mkdir(mode=0o700, exist_ok=True)
    env = subprocess_env(HOME=str(home), XDG_RUNTIME_DIR=str(run), **extra)
    for name in (
        "DBUS_SESSION_BUS_ADDRESS",
        "PYTHON_KEYRING_BACKEND",
        "XDG_DATA_HOME",
        "GNOME_KEYRING_CONTROL",
    ):
        env.pop(name, None)
    env.update(extra)
    return env


def _in_keyring_session(
    tmp_path: Path, steps: list[dict[str, Any]], *, unlock: bool = True, **env: str
) -> dict[str, dict[str, Any]]:
    """Run ``steps`` one by one inside one dbus session with gnome-keyring's secrets."""
    if not (shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon")):
        require_real("dbus-run-session and gnome-keyring-daemon are needed for the keyring")
    steps_file, results = tmp_path / "steps.json", tmp_path / "results.json"
    steps_file.write_text(json.dumps(steps))
    start = (
        f"printf %s {KEYRING_UNLOCK} | gnome-keyring-daemon --unlock --components=secrets"
        if unlock
        else "gnome-keyring-daemon --start --components=secrets"
    )
    script = f'{start} >/dev/null 2>&1 && exec "$0" "$1" steps "$2" "$3"'
    done = subprocess.run(
        [
            "dbus-run-session",
            "--",
            "sh",
            "-c",
            script,
            sys.executable,
            str(HELPERS),
            str(steps_file),
            str(results),
        ],
        env=_session_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0 and results.exists(), done.stderr
    out: dict[str, dict[str, Any]] = json.loads(results.read_text())
    return out


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.slow
@pytest.mark.real
def test_set_test_send_delete_through_the_secret_service(tmp_path: Path) -> None:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    cert = ca.issue_cert("127.0.0.1")
    good_dir, bad_dir = tmp_path / "good", tmp_path / "bad"
    good_dir.mkdir()
    bad_dir.mkdir()
    with (
        smtp_server(security="starttls", cert=cert, users={USER: PASSWORD}) as good,
        smtp_server(security="starttls", cert=cert, users={USER: "not-the-one"}) as bad,
    ):
        smtp = {"host": "127.0.0.1", "security": "starttls", "auth": "password"}
        config = write_setup(good_dir, 1, smtp={**smtp, "port": good.port})
        wrong = write_setup(bad_dir, 1, smtp={**smtp, "port": bad.port})
        lookup = ["secret-tool", "lookup", "service", "lormail", "username", USER]
        steps = [
            {
                "name": "set",
                "argv": lormail(config, "credentials", "set"),
                "input": PASSWORD + "\n",
            },
            {"name": "lookup", "argv": lookup},
            {"name": "test", "argv": lormail(config, "credentials", "test")},
            {"name": "send", "argv": lormail(config, "send-due", "--now", NOW_TEXT)},
            {"name": "test-wrong", "argv": lormail(wrong, "credentials", "test")},
            {"name": "send-wrong", "argv": lormail(wrong, "send-due", "--now", NOW_TEXT)},
            {"name": "delete", "argv": lormail(config, "credentials", "delete")},
            {"name": "lookup-after", "argv": lookup},
            {"name": "test-after", "argv": lormail(config, "credentials", "test")},
            {"name": "delete-again", "argv": lormail(config, "credentials", "delete")},
        ]
        got = _in_keyring_session(tmp_path, steps, SSL_CERT_FILE=str(bundle))

    port = good.port
    assert got["set"] == {
        "rc": 0,
        "stdout": f"stored the password for lormail/{USER} in the keyring\n",
        "stderr": "",
    }
    assert got["lookup"]["stdout"].strip() == PASSWORD  # really in the Secret Service
    assert got["test"] == {
        "rc": 0,
        "stdout": f"ok: 127.0.0.1:{port} over STARTTLS, authenticated as {USER}\n",
        "stderr": "",
    }
    assert got["send"]["rc"] == 0 and got["send"]["stdout"] == "sent 1\n"
    assert len(good.sink.received) == 1
    assert got["test-wrong"]["rc"] == 1
    assert got["test-wrong"]["stderr"] == (
        f"lormail: SMTP test failed: authentication rejected: 127.0.0.1:{bad.port} rejected "
        f"the login for '{USER}': 535 5.7.8 Authentication credentials invalid\n"
    )
    assert got["send-wrong"]["rc"] == 1 and not bad.sink.received
    assert got["delete"]["stdout"] == f"deleted the password for lormail/{USER} from the keyring\n"
    assert got["lookup-after"]["stdout"] == ""
    assert got["test-after"]["rc"] == 1
    assert got["test-after"]["stderr"] == (
        f"lormail: SMTP test failed: no usable secret: no password in the keyring for "
        f"lormail/{USER}; run 'lormail credentials set'\n"
    )
    assert got["delete-again"]["stdout"] == f"no password was stored for lormail/{USER}\n"

    # The secret went through argv of no process, and is in no output or state file.
    needle = PASSWORD.encode()
    for name, result in got.items():
        if name != "lookup":
            assert PASSWORD not in result["stdout"] + result["stderr"], name
    for folder in (good_dir, bad_dir):
        assert _files_containing(folder, needle) == []
    assert all(PASSWORD not in " ".join(step["argv"]) for step in steps)


@pytest.mark.slow
@pytest.mark.real
def test_a_locked_keyring_is_one_clear_line(tmp_path: Path) -> None:
    with smtp_server(users={USER: PASSWORD}) as server:
        config = write_setup(
            tmp_path, 1, smtp={"host": "127.0.0.1", "port": server.port, "auth": "password"}
        )
        # First make the login keyring (unlocked, with the entry), then start a
        # session that leaves it locked, as after a reboot with no desktop login.
        setup = lormail(config, "credentials", "set")
        _in_keyring_session(tmp_path, [{"name": "set", "argv": setup, "input": "x\n"}])
        got = _in_keyring_session(
            tmp_path,
            [
                {"name": "send", "argv": lormail(config, "send-due", "--now", NOW_TEXT)},
                {"name": "test", "argv": lormail(config, "credentials", "test")},
            ],
            unlock=False,
        )
    assert not server.sink.received
    assert got["send"]["rc"] == 1
    assert "the OS keyring is locked" in got["send"]["stderr"]
    assert "Traceback" not in got["send"]["stderr"]
    assert got["send"]["stdout"].startswith("sent 0, waiting to retry 1")
    assert got["test"]["rc"] == 1
    assert got["test"]["stderr"] == (
        "lormail: SMTP test failed: no usable secret: the OS keyring is locked; unlock it "
        "(log in to your desktop session) and retry (reading the password)\n"
    )


# --- no keyring, explicit backends ------------------------------------------------------


def _credentials_set(
    config: Path, env: dict[str, str], stdin: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        lormail(config, "credentials", "set"),
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_no_secure_keyring_is_refused(tmp_path: Path) -> None:
    config = write_setup(tmp_path, 1, smtp={"host": "127.0.0.1", "port": 1, "auth": "password"})
    env = _session_env(tmp_path, DBUS_SESSION_BUS_ADDRESS=f"unix:path={tmp_path}/no-bus")
    done = _credentials_set(config, env, PASSWORD + "\n")
    assert done.returncode == 1
    assert done.stderr.startswith("no secure OS keyring is available (found keyring.backends.")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_an_explicitly_chosen_backend_is_honoured(tmp_path: Path) -> None:
    config = write_setup(tmp_path, 1, smtp={"host": "127.0.0.1", "port": 1, "auth": "password"})
    env = _session_env(tmp_path, PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    done = _credentials_set(config, env, PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


def test_refusal_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring.backends.fail
    import keyring.backends.null

    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    for backend in (keyring.backends.null.Keyring(), keyring.backends.fail.Keyring()):
        monkeypatch.setattr("keyring.get_keyring", lambda b=backend: b)
        with pytest.raises(CredentialError, match="no secure OS keyring is available"):
            credentials.keyring_backend()
    # Named on purpose: honoured.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    chosen = keyring.backends.null.Keyring()
    monkeypatch.setattr("keyring.get_keyring", lambda: chosen)
    assert credentials.keyring_backend() is chosen


def test_set_reads_one_line_from_stdin_and_needs_one(tmp_path: Path) -> None:
    config = write_setup(tmp_path, 1, smtp={"host": "127.0.0.1", "port": 1, "auth": "password"})
    env = _session_env(tmp_path, PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
    done = _credentials_set(config, env, "")
    assert (done.returncode, done.stderr) == (2, "no password given; nothing stored\n")


# --- token_command and Secret ---------------------------------------------------------------


def _smtp(command: str) -> SmtpConfig:
    return SmtpConfig(
        auth="xoauth2", username=USER, token_command=command, timeout=timedelta(seconds=5)
    )


def test_token_command_runs_without_a_shell() -> None:
    token = credentials.run_token_command(_smtp("echo tok; echo $HOME"))
    assert token.reveal() == "tok; echo $HOME"  # no shell: `;` and `$HOME` are just words
    assert repr(token) == "Secret(***)"


def test_token_command_failures_say_nothing_of_the_output() -> None:
    script = "import sys; print('ya29.leaky'); print('ya29.leaky', file=sys.stderr); sys.exit(3)"
    with pytest.raises(CredentialError) as caught:
        credentials.run_token_command(_smtp(f'{sys.executable} -c "{script}"'))
    assert str(caught.value) == (
        "smtp.token_command exited with status 3; run it by hand to see why"
    )
    with pytest.raises(CredentialError, match="not found"):
        credentials.run_token_command(_smtp("/nonexistent/token-helper"))
    with pytest.raises(CredentialError, match="printed no token"):
        credentials.run_token_command(_smtp(f"{sys.executable} -c pass"))


def test_token_command_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(credentials, "TOKEN_TIMEOUT", 0.5)
    with pytest.raises(CredentialError, match=r"did not finish within 0\.5s"):
        credentials.run_token_command(_smtp(f'{sys.executable} -c "import time; time.sleep(5)"'))


def test_the_inbox_s_token_command_is_named_as_the_imap_setting() -> None:
    from lormail.edge.imap import imap_secret
    from lormail.model import ImapConfig

    imap = ImapConfig(host="imap.example.edu", username=USER, auth="xoauth2", token_command="")
    with pytest.raises(CredentialError) as caught:
        imap_secret(imap)
    assert str(caught.value) == "imap.auth is xoauth2 but imap.token_command is empty"
    failing = ImapConfig(
        host="imap.example.edu", username=USER, auth="xoauth2", token_command="false"
    )
    with pytest.raises(CredentialError) as caught:
        imap_secret(failing)
    assert str(caught.value) == (
        "imap.token_command exited with status 1; run it by hand to see why"
    )


def test_secret_hides_its_value() -> None:
    secret = Secret(PASSWORD)
    assert PASSWORD not in repr(secret) and PASSWORD not in str(secret)
    assert PASSWORD not in f"{secret} {secret!r} {[secret]} { ({'s': secret}) }"
    assert secret.scrub(f"535 bad {PASSWORD}") == "535 bad ***"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)
    assert os.environ.get("LORMAIL_TEST_NO_SUCH") is None


def test_scrub_blanks_every_form_the_secret_takes_on_the_wire() -> None:
    import base64

    from lormail.edge.credentials import Secret

    secret = Secret("pässwörd")
    plain = base64.b64encode("\0me@example.edu\0pässwörd".encode()).decode()
    login = base64.b64encode("pässwörd".encode()).decode()
    text = f"535 {plain} {plain.rstrip('=')} {login} pässwörd"
    assert secret.scrub(text, "me@example.edu") == "535 *** *** *** ***"
