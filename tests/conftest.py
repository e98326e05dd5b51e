"""Shared test configuration.

Tests marked ``real`` use an outside component (a keyring daemon, a calendar
client, libfaketime, systemd-analyze).  Where it is missing they skip; with
``LORMAIL_REQUIRE_REAL=1`` (as in CI) such a skip is a failure instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
import trustme

if TYPE_CHECKING:
    from tests._imap_helpers import Dovecot

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_REAL = os.environ.get("LORMAIL_REQUIRE_REAL") == "1"


def require_real(reason: str) -> NoReturn:
    """Skip a real-component test, or fail it when real components are required."""
    if REQUIRE_REAL:
        pytest.fail(f"required real component missing: {reason}")
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_REAL and report.skipped and item.get_closest_marker("real") is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"real-component test skipped under LORMAIL_REQUIRE_REAL=1: {report.longrepr}"
        )


@pytest.fixture(autouse=True)
def _page_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands print for a pipe as they do anywhere: pytest-xdist's workers set
    COLUMNS=80, which the CLI would rightly obey."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusted(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.LeafCert:
    """A server certificate whose CA the client trusts, via SSL_CERT_FILE only."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture
def dovecot(monkeypatch: pytest.MonkeyPatch) -> Iterator[Dovecot]:
    """A real IMAP server (Dovecot) on loopback, TLS from its own CA, for one test."""
    from tests._imap_helpers import Dovecot, dovecot_binary

    binary = dovecot_binary()
    if binary is None:
        require_real("dovecot (Debian package dovecot-imapd) is not installed")
    server = Dovecot(binary, trustme.CA())
    try:
        server.start()
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        yield server
    finally:
        server.cleanup()
