"""Secure Mode against an independent TLS peer: `openssl s_server` (spec §7.4, issue 5).

The server side is OpenSSL's own test server, requiring a client certificate
(``-Verify``, ``-verify_return_error``) issued by the phone's CA. provd's side is
what the daemon uses: credentials from `parse_pin` on `secure-mode-data`, their
`TrustPolicy`, and the `HttpsChannel`. Shown:

- s_server accepts provd's client certificate and chain (its log shows the
  verified chain, and its ``-www`` status page shows the certificate it received);
- provd refuses an s_server whose certificate does not chain to `dls-server-ca`
  (TransportError ``tls``; s_server sees the ``unknown ca`` alert);
- and, so that the first point means something, s_server refuses provd's
  certificate when it trusts another CA.
"""

from __future__ import annotations

import datetime
import io
import queue
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import pytest

from provd.transport.credentials import ClientCredentials, parse_pin
from provd.transport.errors import TransportError
from provd.transport.https import HttpsChannel
from tests.bootstrap_material import (
    OPENSSL,
    BootstrapPki,
    b64,
    make_bootstrap_pki,
    openssl_pin_archive,
)
from tests.certs import Issued

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="no openssl command")

PASSWORD = "2468"
WAIT = 30.0  # seconds; a bound on waiting for the peer, not a measurement


class SServer:
    """`openssl s_server` on 127.0.0.1 (a port it picks), for one connection."""

    def __init__(self, directory: Path, server: Issued, client_ca: Issued) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        server = server.write(directory, "server")
        ca_file = directory / "client-ca.pem"
        ca_file.write_bytes(client_ca.cert_pem)
        assert OPENSSL is not None and server.cert_path and server.key_path
        self.args: Sequence[str] = [
            OPENSSL, "s_server",
            "-accept", "127.0.0.1:0",  # the kernel picks a free port; s_server prints it
            "-cert", str(server.cert_path),
            "-key", str(server.key_path),
            "-CAfile", str(ca_file),
            "-Verify", "2",  # a client certificate is required ...
            "-verify_return_error",  # ... and must verify
            "-www",  # answer GET / with a status page
            "-naccept", "1",
        ]  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._seen: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> SServer:
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        while not self.port:
            line = self._lines.get(timeout=WAIT)
            if line is None:
                raise RuntimeError(f"s_server ended before listening: {self._seen}")
            if line.startswith("ACCEPT "):
                self.port = int(line.rsplit(":", 1)[1])
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def output(self) -> str:
        """Everything s_server printed, once it has ended (it serves one connection)."""
        assert self.proc is not None
        self.proc.wait(timeout=WAIT)
        while (line := self._lines.get(timeout=WAIT)) is not None:
            self._seen.append(line)
        return "\n".join(self._seen)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # our own child, by its handle
            self.proc.wait(timeout=WAIT)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def boot() -> BootstrapPki:
    return make_bootstrap_pki()


@pytest.fixture(scope="module")
def creds(boot: BootstrapPki, tmp_path_factory: pytest.TempPathFactory) -> ClientCredentials:
    """The phone's credentials as the PIN bootstrap gives them, from an openssl-made archive."""
    archive = openssl_pin_archive(
        boot.client,
        PASSWORD,
        server_cas=[boot.server_ca],
        chain=[boot.client_ca],
        directory=tmp_path_factory.mktemp("p12"),
    )
    return parse_pin(b64(archive), PASSWORD, datetime.datetime.now(datetime.UTC))


@pytest.fixture
def peers() -> Iterator[list[SServer]]:
    started: list[SServer] = []
    yield started
    for peer in started:
        peer.__exit__(None, None, None)


def start(peers: list[SServer], directory: Path, server: Issued, client_ca: Issued) -> SServer:
    peer = SServer(directory, server, client_ca)
    peers.append(peer)
    return peer.__enter__()


def get_status_page(port: int, creds: ClientCredentials) -> bytes:
    sink = io.BytesIO()
    with HttpsChannel(
        f"https://127.0.0.1:{port}/", trust=creds.to_trust_policy(), connect_timeout=WAIT
    ) as channel:
        download = channel.get("/", max_bytes=1 << 20, sink=sink)
    assert download.status == 200
    return sink.getvalue()


def test_s_server_requiring_a_client_certificate_accepts_provds(
    boot: BootstrapPki, creds: ClientCredentials, peers: list[SServer], tmp_path: Path
) -> None:
    peer = start(peers, tmp_path, boot.server, boot.client_ca)
    page = get_status_page(peer.port, creds).decode("utf-8", "replace")
    log = peer.output()
    # s_server verified the chain provd presented: the phone CA, then the phone.
    assert "depth=1 CN = phone CA\nverify return:1" in log
    assert "depth=0 CN = phone-0001\nverify return:1" in log
    assert "1 server accepts that finished" in log
    # Its status page shows the client certificate it received: the phone's, exactly.
    assert "Client certificate" in page
    assert boot.client.cert_pem.decode() in page


def test_provd_refuses_s_server_whose_certificate_is_not_from_dls_server_ca(
    boot: BootstrapPki, creds: ClientCredentials, peers: list[SServer], tmp_path: Path
) -> None:
    peer = start(peers, tmp_path, boot.other_server, boot.client_ca)
    with pytest.raises(TransportError) as caught:
        get_status_page(peer.port, creds)
    assert caught.value.kind == "tls"
    assert "not accepted" in caught.value.message
    assert "not issued by a trusted CA" in caught.value.message
    # The peer saw provd abort the handshake with the `unknown ca` alert.
    log = peer.output()
    assert "alert unknown ca" in log
    assert "0 server accepts that finished" in log


def test_s_server_trusting_another_ca_refuses_provds_certificate(
    boot: BootstrapPki, creds: ClientCredentials, peers: list[SServer], tmp_path: Path
) -> None:
    peer = start(peers, tmp_path, boot.server, boot.other_ca)
    with pytest.raises(TransportError) as caught:
        get_status_page(peer.port, creds)
    assert caught.value.kind in ("tls", "closed")
    log = peer.output()
    assert "verify error" in log
    assert "0 server accepts that finished" in log
