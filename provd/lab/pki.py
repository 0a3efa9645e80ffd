"""The lab server's certificates, made at start with `cryptography`.

A lab CA signs the server certificate (for 127.0.0.1, ::1 and localhost). The
same CA can issue client certificates and pack bootstrap material as PKCS#12,
so the Secure Mode lab (spec §7) builds on this module:

    pki = LabPKI.create()
    pki.ca.cert_pem, pki.server.fingerprint, pki.server.spki_pin
    phone = pki.issue_client("00:01:E3:25:EA:13")
    data = bootstrap_pkcs12(phone, cas=[pki.ca], password=b"1234")   # spec §7.2 [B]

Keys are EC P-256 by default (fast to generate); RSA on request. Nothing here
writes a file except `LabPKI.write`, which the server uses to hand `ssl` its
certificate chain.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
Clock = Callable[[], datetime.datetime]

#: spec §7.2 [B]: the friendly name that marks the server CAs inside `secure-mode-data`.
SERVER_CA_FRIENDLY_NAME = b"dls-server-ca"

_DAY = datetime.timedelta(days=1)
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")


def utc_now() -> datetime.datetime:
    """The production clock: now, in UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def colon_hex(digest: bytes) -> str:
    """`AB:CD:...`, the way `openssl x509 -fingerprint` prints a digest."""
    return ":".join(f"{byte:02X}" for byte in digest)


@dataclass(frozen=True, slots=True)
class Credential:
    """A certificate with its private key and the chain above it (issuer first)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = field(default=())

    @property
    def cert_pem(self) -> bytes:
        """The certificate in PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def chain_pem(self) -> bytes:
        """The certificate followed by its chain, in PEM (what a TLS server presents)."""
        return self.cert_pem + b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in self.chain
        )

    @property
    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM: lab material, never a phone's secret."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def common_name(self) -> str:
        """The subject's common name."""
        return str(self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate (DER), colon hex."""
        return colon_hex(self.cert.fingerprint(hashes.SHA256()))

    @property
    def spki_pin(self) -> str:
        """SHA-256 of the public key (SubjectPublicKeyInfo DER), lower-case hex.

        This is what a trust-on-first-use pin records (spec §7.4 `pin`).
        """
        spki = self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(spki).hexdigest()


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "provd lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


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


def _alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def make_ca(
    common_name: str = "provd lab CA",
    *,
    key_type: KeyType = "ec",
    valid_days: int = 3650,
    clock: Clock = utc_now,
) -> Credential:
    """A self-signed CA, valid from yesterday for `valid_days`."""
    now = clock()
    key = _new_key(key_type)
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + valid_days * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Credential(cert, key)


def issue(
    ca: Credential,
    common_name: str,
    *,
    client: bool = False,
    hosts: Sequence[str] = (),
    key_type: KeyType = "ec",
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    clock: Clock = utc_now,
) -> Credential:
    """A leaf certificate signed by `ca`: a server one, or a client one with `client=True`.

    Valid from yesterday for a year unless `not_before`/`not_after` say otherwise
    (tests of expired material pass them).
    """
    now = clock()
    key = _new_key(key_type)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - _DAY)
        .not_valid_after(not_after or now + 365 * _DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_alt_names(hosts)), critical=False
        )
    cert = builder.sign(ca.key, hashes.SHA256())
    return Credential(cert, key, (ca.cert, *ca.chain))


def bootstrap_pkcs12(
    client: Credential,
    *,
    cas: Sequence[Credential | x509.Certificate],
    password: bytes | None,
) -> bytes:
    """A PKCS#12 archive for bootstrapping (spec §7.1, §7.2 [B]).

    It holds the client's key and certificate, the client's chain, and the
    server CAs, each CA marked with the friendly name `dls-server-ca`. With
    `password=None` it is the empty-password archive of `nopin`; otherwise it
    is encrypted with the password part of the PIN.
    """
    server_cas = [
        pkcs12.PKCS12Certificate(
            c.cert if isinstance(c, Credential) else c, SERVER_CA_FRIENDLY_NAME
        )
        for c in cas
    ]
    chain = [pkcs12.PKCS12Certificate(c, None) for c in client.chain]
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(
        client.common_name.encode("utf-8"), client.key, client.cert, chain + server_cas, encryption
    )


def as_item_value(data: bytes) -> str:
    """Base64 text, as a `base64` item carries binary material (spec §7.1 [B])."""
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class LabPKI:
    """The lab's CA and server certificate; client certificates on request."""

    ca: Credential
    server: Credential
    key_type: KeyType = "ec"

    @classmethod
    def create(
        cls,
        *,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        key_type: KeyType = "ec",
        clock: Clock = utc_now,
    ) -> LabPKI:
        """A fresh CA and a server certificate for `hosts`."""
        ca = make_ca(key_type=key_type, clock=clock)
        server = issue(ca, "provd lab server", hosts=hosts, key_type=key_type, clock=clock)
        return cls(ca, server, key_type)

    def issue_client(
        self, common_name: str, *, ca: Credential | None = None, clock: Clock = utc_now
    ) -> Credential:
        """A client certificate (Secure Mode, spec §7) from `ca`, by default the lab CA."""
        issuer = ca or self.ca
        return issue(issuer, common_name, client=True, key_type=self.key_type, clock=clock)

    def write(self, directory: Path) -> tuple[Path, Path, Path]:
        """Write `ca.pem`, `server.pem` (certificate and chain) and `server.key` into
        `directory`; return the three paths. The key file is owner-only."""
        directory.mkdir(parents=True, exist_ok=True)
        ca_path = directory / "ca.pem"
        cert_path = directory / "server.pem"
        key_path = directory / "server.key"
        ca_path.write_bytes(self.ca.cert_pem)
        cert_path.write_bytes(self.server.chain_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(self.server.key_pem)
        return ca_path, cert_path, key_path
