"""The certificates the transport tests share, made once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.certs import Issued, make_ca, make_leaf


@dataclass(frozen=True)
class Pki:
    """Certificates for the transport tests, with PEM files in one directory."""

    ca: Issued
    server: Issued  # signed by ca; SAN localhost, 127.0.0.1, ::1
    server_again: Issued  # signed by ca, another key
    expired: Issued
    not_yet_valid: Issued
    named_elsewhere: Issued  # signed by ca; SAN dls.example only
    other_ca: Issued
    other_server: Issued  # signed by other_ca
    self_signed: Issued
    client_ca: Issued
    client: Issued  # signed by client_ca, RSA


def make_pki(d: Path) -> Pki:
    """Make the certificates and write them (and their keys) into `d`."""
    ca = make_ca("provd test CA", directory=d)
    other_ca = make_ca("another CA", directory=d)
    client_ca = make_ca("phone CA", directory=d)
    return Pki(
        ca=ca,
        server=make_leaf(ca, "dls.test").write(d, "server"),
        server_again=make_leaf(ca, "dls.test").write(d, "server-again"),
        expired=make_leaf(ca, "expired.test", expired=True).write(d, "expired"),
        not_yet_valid=make_leaf(ca, "future.test", not_yet_valid=True).write(d, "future"),
        named_elsewhere=make_leaf(ca, "dls.example", dns=["dls.example"], ips=[]).write(
            d, "elsewhere"
        ),
        other_ca=other_ca,
        other_server=make_leaf(other_ca, "impostor.test").write(d, "impostor"),
        self_signed=make_leaf(None, "dls.selfsigned", directory=d),
        client_ca=client_ca,
        client=make_leaf(client_ca, "phone-0001", client=True, dns=[], ips=[], key_type="rsa"),
    )
