"""The SMTP secret: the OS keyring only, and never in the clear anywhere else (SPEC §4).

Owned here: the keyring entry (service ``lormail``, user ``smtp.username``),
the refusal of the keyring package's plaintext and null/fail backends unless
``PYTHON_KEYRING_BACKEND`` names one on purpose, the ``token_command`` run for
XOAUTH2, and :class:`Secret`, a wrapper whose ``repr``/``str`` hide the value
so that a log line, an exception message or a traceback cannot show it.

Every failure is a :class:`CredentialError`: transient (a locked or absent
keyring is the world's fault, exit 1), with one clear line of text.
"""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
from typing import TYPE_CHECKING, Any, NoReturn

from lormail.errors import RuntimeFailure

if TYPE_CHECKING:
    from lormail.model import SmtpConfig

SERVICE = "lormail"
TOKEN_TIMEOUT = 60.0  # seconds for token_command; an OAuth helper may refresh over the net

# Backends that store the secret in the clear, or not at all.  A module prefix
# matches the whole family (keyrings.alt's file backends).
_REFUSED = ("keyrings.alt", "keyring.backends.fail", "keyring.backends.null")


class Secret:
    """A password or token; shows as ``Secret(***)`` everywhere but :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str, user: str = "") -> str:
        """``text`` with every copy of the secret blanked, in each form it takes on the
        wire for ``user`` (a server may echo what it was sent)."""
        for form in secret_forms(user, self._value):
            text = text.replace(form, "***")
        return text

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is not pickled")

    def __bool__(self) -> bool:
        return bool(self._value)


def secret_forms(user: str, value: str) -> tuple[str, ...]:
    """Every form in which the secret goes on the wire, longest first: the value,
    its base64, and the base64 of the AUTH PLAIN and XOAUTH2 blobs (with and
    without padding), so that a server's echo of any of them can be blanked."""
    if not value:
        return ()
    blobs = (
        value,
        f"\0{user}\0{value}",
        f"{user}\0{value}",
        f"user={user}\x01auth=Bearer {value}\x01\x01",
    )
    forms = {value}
    for blob in blobs:
        encoded = base64.b64encode(blob.encode("utf-8")).decode("ascii")
        forms.update((encoded, encoded.rstrip("=")))
    return tuple(sorted(forms, key=len, reverse=True))


class CredentialError(RuntimeFailure):
    """The secret cannot be had right now: locked/absent keyring, no entry, token failure."""


def _backend_name(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _insecure(backend: object) -> bool:
    name = _backend_name(backend)
    if name.startswith(_REFUSED):
        return True
    inner = getattr(backend, "backends", None)  # the chainer: refuse if any link is insecure
    return bool(inner) and any(_insecure(b) for b in inner)  # type: ignore[union-attr]


def keyring_backend() -> Any:
    """The keyring backend to use; refuses plaintext and null ones unless chosen explicitly."""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise CredentialError(
            "the 'keyring' package is not installed; lormail keeps passwords only in the OS keyring"
        ) from None
    try:
        backend = keyring.get_keyring()
    except Exception as err:  # a broken keyring config must not become a traceback
        raise CredentialError(f"the OS keyring is unavailable: {type(err).__name__}") from None
    if not os.environ.get("PYTHON_KEYRING_BACKEND") and _insecure(backend):
        raise CredentialError(
            f"no secure OS keyring is available (found {_backend_name(backend)}, which "
            "keeps passwords in the clear or not at all); start your desktop keyring "
            "(e.g. gnome-keyring or KWallet), or set PYTHON_KEYRING_BACKEND to choose one "
            "deliberately"
        )
    return backend


def _keyring_call(what: str, func: Any, *args: str) -> Any:
    """Call a backend method; any failure becomes one line without the secret."""
    import keyring.errors

    try:
        return func(*args)
    except keyring.errors.KeyringLocked:
        raise CredentialError(
            f"the OS keyring is locked; unlock it (log in to your desktop session) and "
            f"retry ({what})"
        ) from None
    except keyring.errors.PasswordDeleteError:
        raise
    except Exception as err:
        # secretstorage/dbus errors name the bus or the collection, never the secret;
        # only the exception type is kept all the same.
        raise CredentialError(
            f"the OS keyring is locked or unavailable ({what}: {type(err).__name__}); "
            "unlock it and retry"
        ) from None


def _require_username(smtp: SmtpConfig, section: str = "smtp") -> str:
    if not smtp.username:
        raise CredentialError(
            f"{section}.username is empty in the config; the keyring entry needs it"
        )
    return smtp.username


def get_password(smtp: SmtpConfig, section: str = "smtp") -> Secret:
    user = _require_username(smtp, section)
    backend = keyring_backend()
    value = _keyring_call("reading the password", backend.get_password, SERVICE, user)
    if not value:
        raise CredentialError(
            f"no password in the keyring for {SERVICE}/{user}; run 'lormail credentials set'"
        )
    return Secret(str(value))


def set_password(smtp: SmtpConfig, secret: Secret, section: str = "smtp") -> None:
    user = _require_username(smtp, section)
    backend = keyring_backend()
    _keyring_call("storing the password", backend.set_password, SERVICE, user, secret.reveal())


def delete_password(smtp: SmtpConfig, section: str = "smtp") -> bool:
    """Remove the entry; False when there was none."""
    import keyring.errors

    user = _require_username(smtp, section)
    backend = keyring_backend()
    try:
        _keyring_call("deleting the password", backend.delete_password, SERVICE, user)
    except keyring.errors.PasswordDeleteError:
        return False
    return True


def run_token_command(smtp: SmtpConfig, section: str = "smtp") -> Secret:
    """Run ``token_command`` (no shell) and return its first output line as the token.

    ``section``: the config section the settings came from, as messages name them.
    """
    command = smtp.token_command or ""
    try:
        argv = shlex.split(command)
    except ValueError as err:
        raise CredentialError(f"{section}.token_command cannot be parsed: {err}") from None
    if not argv:
        raise CredentialError(f"{section}.auth is xoauth2 but {section}.token_command is empty")
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TOKEN_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise CredentialError(f"{section}.token_command: {argv[0]!r} not found") from None
    except subprocess.TimeoutExpired:
        raise CredentialError(
            f"{section}.token_command did not finish within {TOKEN_TIMEOUT:g}s"
        ) from None
    except OSError as err:
        raise CredentialError(f"{section}.token_command failed to start: {err.strerror}") from None
    # Its output is a secret: neither stdout nor stderr goes into a message.
    if done.returncode != 0:
        raise CredentialError(
            f"{section}.token_command exited with status {done.returncode}; "
            "run it by hand to see why"
        )
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    if not lines or not lines[0].strip():
        raise CredentialError(f"{section}.token_command printed no token")
    return Secret(lines[0].strip())


def secret_source(smtp: SmtpConfig, section: str = "smtp") -> Secret:
    """The secret for ``smtp.auth``: the keyring password, or a fresh XOAUTH2 token."""
    if smtp.auth == "xoauth2":
        return run_token_command(smtp, section)
    return get_password(smtp, section)
