"""Certificates for tests, made with `cryptography` on the spot.

A CA, leaves signed by it (server or client), self-signed certificates, and
certificates outside their validity period. Keys are EC P-256 by default
(fast to generate); pass ``key_type="rsa"`` where a test needs RSA. Every
function can also write the PEM files into a directory (a pytest ``tmp_path``)
for servers that load certificates from files.

    ca = make_ca(directory=tmp_path)
    server = make_leaf(ca, directory=tmp_path)           # SAN localhost, 127.0.0.1, ::1
    client = make_leaf(ca, common_name="phone", client=True)
    self_signed = make_leaf(None, "dls.selfsigned")
    old = make_leaf(ca, expired=True)
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provd.lab.pki import Credential, KeyType, PrivateKey, utc_now

__all__ = [
    "Issued",
    "KeyType",
    "PrivateKey",
    "make_ca",
    "make_leaf",
    "write_bundle",
]

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Issued(Credential):
    """A lab `Credential` (certificate, key, PEM forms) and, once written, its PEM files.

    The certificates themselves are made here rather than by `provd.lab.pki`: the
    transport tests assert subjects that are only a common name (``CN=phone CA``), while
    every lab certificate also names its organisation (``O=provd lab``), and the lab makes
    no self-signed leaf. The key and key-usage helpers below repeat the lab's private ones
    for the same reason (a test module should not reach into another module's privates).
    """

    cert_path: Path | None = None
    key_path: Path | None = None

    def write(self, directory: Path, stem: str | None = None) -> Issued:
        """Write ``<stem>.crt`` and ``<stem>.key`` into `directory`; return a copy with paths."""
        stem = stem or _file_stem(self.common_name)
        directory.mkdir(parents=True, exist_ok=True)
        cert_path = directory / f"{stem}.crt"
        key_path = directory / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem)
        key_path.chmod(0o600)
        return replace(self, cert_path=cert_path, key_path=key_path)


def make_ca(
    common_name: str = "provd test CA",
    *,
    key_type: KeyType = "ec",
    directory: Path | None = None,
    now: datetime.datetime | None = None,
) -> Issued:
    """A self-signed CA certificate valid from yesterday for ten years."""
    now = now or utc_now()
    return _sign(common_name, None, (now - _DAY, now + 3650 * _DAY), key_type, directory, ca=True)


def make_leaf(
    ca: Issued | None,
    common_name: str = "dls.test",
    *,
    dns: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1", "::1"),
    client: bool = False,
    expired: bool = False,
    not_yet_valid: bool = False,
    key_type: KeyType = "ec",
    directory: Path | None = None,
    now: datetime.datetime | None = None,
) -> Issued:
    """A server certificate (or a client one with ``client=True``) signed by `ca`; with
    `ca` None a self-signed one (not a CA), as many phone servers ship.

    By default valid from yesterday for a year; ``expired`` makes it end yesterday,
    ``not_yet_valid`` makes it start tomorrow.
    """
    validity = _validity(now or utc_now(), expired=expired, not_yet_valid=not_yet_valid)
    return _sign(common_name, ca, validity, key_type, directory, dns=dns, ips=ips, client=client)


def write_bundle(path: Path, *issued: Issued) -> Path:
    """Write the certificates of `issued` into one PEM file (a CA bundle or a chain)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(i.cert_pem for i in issued))
    return path


def _sign(
    common_name: str,
    issuer: Issued | None,
    validity: tuple[datetime.datetime, datetime.datetime],
    key_type: KeyType,
    directory: Path | None,
    *,
    ca: bool = False,
    client: bool = False,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
) -> Issued:
    """A certificate for a new key: signed by `issuer`, or self-signed when it is None.

    A CA gets a subject key identifier; a leaf an extended key usage (server or client)
    and, for `dns` names and `ips` addresses, a subject alternative name; whatever
    an issuer signs, its authority key identifier.
    """
    key = _new_key(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer_name, signer_key = (issuer.cert.subject, issuer.key) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(ca=ca), critical=True)
    )
    if ca:
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = builder.add_extension(ski, critical=False)
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if issuer:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
        builder = builder.add_extension(aki, critical=False)
    issued = Issued(builder.sign(signer_key, hashes.SHA256()), key)
    return issued.write(directory) if directory else issued


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _file_stem(common_name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in common_name)


def _validity(
    now: datetime.datetime, *, expired: bool, not_yet_valid: bool
) -> tuple[datetime.datetime, datetime.datetime]:
    if expired:
        return now - 30 * _DAY, now - _DAY
    if not_yet_valid:
        return now + _DAY, now + 30 * _DAY
    return now - _DAY, now + 365 * _DAY


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
