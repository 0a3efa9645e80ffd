"""Certificates for tests, made with `cryptography` on the spot.

A CA, leaves signed by it (server or client), self-signed certificates, and
certificates outside their validity period. Keys are EC P-256 by default
(fast to generate); pass ``key_type="rsa"`` where a test needs RSA. Every
function can also write the PEM files into a directory (a pytest ``tmp_path``)
for servers that load certificates from files.

    ca = make_ca(directory=tmp_path)
    server = make_leaf(ca, directory=tmp_path)           # SAN localhost, 127.0.0.1, ::1
    client = make_leaf(ca, common_name="phone", client=True)
    old = make_leaf(ca, expired=True)
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key, as objects and as PEM (and files, once written)."""

    cert: x509.Certificate
    key: PrivateKey
    cert_path: Path | None = None
    key_path: Path | None = None

    @property
    def cert_pem(self) -> bytes:
        """The certificate in PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The private key in unencrypted PKCS#8 PEM (tests only)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def name(self) -> str:
        """The subject's common name."""
        return str(self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

    def write(self, directory: Path, stem: str | None = None) -> Issued:
        """Write ``<stem>.crt`` and ``<stem>.key`` into `directory`; return a copy with paths."""
        stem = stem or _file_stem(self.name)
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
    now = now or _now()
    key = _new_key(key_type)
    name = _name(common_name)
    builder = (
        _builder(name, name, key, now - _DAY, now + 3650 * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    issued = Issued(builder.sign(key, hashes.SHA256()), key)
    return issued.write(directory) if directory else issued


def make_leaf(
    ca: Issued,
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
    """A server certificate (or a client one with ``client=True``) signed by `ca`.

    By default valid from yesterday for a year; ``expired`` makes it end yesterday,
    ``not_yet_valid`` makes it start tomorrow.
    """
    now = now or _now()
    key = _new_key(key_type)
    not_before, not_after = _validity(now, expired=expired, not_yet_valid=not_yet_valid)
    builder = _leaf_extensions(
        _builder(_name(common_name), ca.cert.subject, key, not_before, not_after),
        dns=dns,
        ips=ips,
        client=client,
    ).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
    )
    issued = Issued(builder.sign(ca.key, hashes.SHA256()), key)
    return issued.write(directory) if directory else issued


def make_self_signed(
    common_name: str = "dls.selfsigned",
    *,
    dns: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1", "::1"),
    expired: bool = False,
    not_yet_valid: bool = False,
    key_type: KeyType = "ec",
    directory: Path | None = None,
    now: datetime.datetime | None = None,
) -> Issued:
    """A self-signed server certificate (not a CA), as many phone servers ship."""
    now = now or _now()
    key = _new_key(key_type)
    name = _name(common_name)
    not_before, not_after = _validity(now, expired=expired, not_yet_valid=not_yet_valid)
    builder = _leaf_extensions(
        _builder(name, name, key, not_before, not_after), dns=dns, ips=ips, client=False
    )
    issued = Issued(builder.sign(key, hashes.SHA256()), key)
    return issued.write(directory) if directory else issued


def write_bundle(path: Path, *issued: Issued) -> Path:
    """Write the certificates of `issued` into one PEM file (a CA bundle or a chain)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(i.cert_pem for i in issued))
    return path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


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


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: PrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _leaf_extensions(
    builder: x509.CertificateBuilder, *, dns: Sequence[str], ips: Sequence[str], client: bool
) -> x509.CertificateBuilder:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = builder.add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    ).add_extension(_key_usage(ca=False), critical=True)
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder


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
