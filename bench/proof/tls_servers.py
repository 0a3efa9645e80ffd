"""The bad TLS servers of suite 3: certificates and `ssl` contexts a phone must refuse.

Each `BadServer` is one variant of the lab's own listener (`provd.lab.server.Listener`),
put in place by swapping the listener's `context`: the same address, the same port, the
same scenario behind it, only the TLS side differs. So whatever the phone refuses, it
refuses for the one thing that changed.

- certificates: from a CA the phone does not trust, expired, not yet valid, or a
  different key from the trusted CA (`foreign`, `expired`, `not_yet_valid`, `other_key`);
- protocol: only TLS 1.0/1.1 (OpenSSL 3 offers them only at security level 0);
- client certificates (Secure Mode, spec §7.4): none requested, or required from a CA
  that did not issue the phone's.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path

from provd.lab.pki import DEFAULT_HOSTS, Credential, LabPKI, issue, utc_now

_DAY = datetime.timedelta(days=1)
SERVER_NAME = "provd lab server"


@dataclass(frozen=True)
class BadServer:
    """How one bad server does TLS: its certificate, versions and client-certificate policy.

    `client_cas` None: no client certificate is requested; otherwise one issued by these
    CAs (PEM) is required, as on a Secure Mode port. `legacy` serves TLS 1.0 and 1.1
    only; `max_tls12` caps the protocol at TLS 1.2.
    """

    name: str
    credential: Credential
    client_cas: bytes | None = None
    legacy: bool = False
    max_tls12: bool = False

    def context(self, directory: Path) -> ssl.SSLContext:
        """A server context for `ssl` (its certificate and key written under `directory`)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert = directory / f"{self.name}.pem"
        key = directory / f"{self.name}.key"
        cert.write_bytes(self.credential.chain_pem)
        key.touch(mode=0o600)
        key.write_bytes(self.credential.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self.legacy:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = ssl.TLSVersion.TLSv1
                context.maximum_version = ssl.TLSVersion.TLSv1_1
            # OpenSSL 3 keeps TLS 1.0/1.1 (SHA-1 in the handshake) for security level 0.
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        else:
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.max_tls12:
                context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        if self.client_cas is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cadata=self.client_cas.decode("ascii"))
        return context


def foreign() -> Credential:
    """A server certificate for the lab's addresses from a CA nobody trusts."""
    return LabPKI.create().server


def expired(ca: Credential) -> Credential:
    """Issued by the trusted `ca`, valid last year, expired yesterday."""
    now = utc_now()
    return issue(
        ca, SERVER_NAME, hosts=DEFAULT_HOSTS, not_before=now - 400 * _DAY, not_after=now - _DAY
    )


def not_yet_valid(ca: Credential) -> Credential:
    """Issued by the trusted `ca`, valid from tomorrow."""
    now = utc_now()
    return issue(
        ca, SERVER_NAME, hosts=DEFAULT_HOSTS, not_before=now + _DAY, not_after=now + 365 * _DAY
    )


def other_key(ca: Credential) -> Credential:
    """Issued by the same `ca` for the same addresses, with another key: only the key differs."""
    return issue(ca, SERVER_NAME, hosts=DEFAULT_HOSTS)


def legacy_handshake(port: int, host: str = "127.0.0.1") -> str:
    """The protocol a TLS 1.0/1.1-only client negotiates with the server at `port`: the
    control that the legacy server really speaks TLS 1.1 (so the phone's refusal is its own).
    An empty string when the handshake fails."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    try:
        with (
            socket.create_connection((host, port), timeout=5.0) as raw,
            context.wrap_socket(raw) as tls,
        ):
            return tls.version() or ""
    except (ssl.SSLError, OSError):
        return ""
