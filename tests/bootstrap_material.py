"""Secure Mode bootstrap material for tests (spec §7.1, §7.2), made on the spot.

    boot = make_bootstrap_pki()
    data = b64(pin_archive(boot.client, "1234", server_cas=[boot.server_ca],
                           chain=[boot.client_ca]))             # secure-mode-data, PIN 1234xxx
    data = b64(openssl_pin_archive(boot.client, "1234", server_cas=[boot.server_ca],
                                   chain=[boot.client_ca], directory=tmp_path))
    cert = b64(nopin_archive(boot.client))                       # dls-client-certificate
    cert = pem_bundle(boot.client, chain=[boot.client_ca])       # the PEM form
    cas = [boot.server_ca.cert_pem.decode()]                     # dls-server-ca items

`pin_archive` uses `cryptography`; `openssl_pin_archive` runs the standard
``openssl pkcs12 -export`` (spec §7.2), marking the server CAs with ``-caname``.
Bad variants: `corrupt`, `to_ber` (the same archive in BER with indefinite lengths, as
some Java tools write it), expired or not-yet-valid clients (`make_client`), an archive
whose key matches none of its certificates (`mismatched_archive`).
"""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.certs import Issued, KeyType, make_ca, make_leaf

SERVER_CA_NAME = b"dls-server-ca"
OPENSSL = shutil.which("openssl")

Encryption = Literal["pbes2", "3des", "none"]
CertLike = Issued | x509.Certificate


@dataclass(frozen=True)
class BootstrapPki:
    """The certificates of a Secure Mode bootstrap."""

    server_ca: Issued  # the dls-server-ca
    server: Issued  # signed by server_ca; SAN localhost, 127.0.0.1, ::1
    client_ca: Issued  # issues the phone's certificate (the client chain)
    client: Issued  # the phone's key and certificate, signed by client_ca
    other_ca: Issued  # not a dls-server-ca
    other_server: Issued  # signed by other_ca: a server provd must refuse


def make_bootstrap_pki(
    *, key_type: KeyType = "ec", now: datetime.datetime | None = None
) -> BootstrapPki:
    """Fresh CAs, a server certificate, a client certificate and an impostor server."""
    server_ca = make_ca("dls server CA", key_type=key_type, now=now)
    client_ca = make_ca("phone CA", key_type=key_type, now=now)
    other_ca = make_ca("impostor CA", key_type=key_type, now=now)
    return BootstrapPki(
        server_ca=server_ca,
        server=make_leaf(server_ca, "dls.test", key_type=key_type, now=now),
        client_ca=client_ca,
        client=make_client(client_ca, key_type=key_type, now=now),
        other_ca=other_ca,
        other_server=make_leaf(other_ca, "impostor.test", key_type=key_type, now=now),
    )


def make_client(
    client_ca: Issued,
    common_name: str = "phone-0001",
    *,
    expired: bool = False,
    not_yet_valid: bool = False,
    key_type: KeyType = "ec",
    now: datetime.datetime | None = None,
) -> Issued:
    """A phone certificate (client auth, no SAN) signed by `client_ca`."""
    return make_leaf(
        client_ca,
        common_name,
        dns=[],
        ips=[],
        client=True,
        expired=expired,
        not_yet_valid=not_yet_valid,
        key_type=key_type,
        now=now,
    )


def _cert(c: CertLike) -> x509.Certificate:
    return c.cert if isinstance(c, Issued) else c


def _encryption(password: str | None, kind: Encryption) -> serialization.KeySerializationEncryption:
    if password is None or kind == "none":
        return serialization.NoEncryption()
    secret = password.encode("utf-8")
    if kind == "3des":
        # OpenSSL 1.1's default: pbeWithSHA1And3-KeyTripleDES-CBC, MAC SHA-1.
        algorithm = pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC
        mac: hashes.HashAlgorithm = hashes.SHA1()
    else:
        algorithm, mac = pkcs12.PBES.PBESv2SHA256AndAES256CBC, hashes.SHA256()
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(algorithm)
        .hmac_hash(mac)
        .build(secret)
    )


def pin_archive(
    client: Issued,
    password: str | None,
    *,
    server_cas: Sequence[CertLike],
    chain: Sequence[CertLike] = (),
    encryption: Encryption = "pbes2",
    name: bytes | None = b"phone-0001",
) -> bytes:
    """A PKCS#12 archive made with `cryptography`: key, certificate, chain (no friendly
    name) and the server CAs (friendly name ``dls-server-ca``), spec §7.2 [B].

    `password` None makes the empty-password archive of `nopin` (spec §7.1 [B]).
    """
    cas = [pkcs12.PKCS12Certificate(_cert(c), None) for c in chain]
    cas += [pkcs12.PKCS12Certificate(_cert(c), SERVER_CA_NAME) for c in server_cas]
    return pkcs12.serialize_key_and_certificates(
        name, client.key, client.cert, cas or None, _encryption(password, encryption)
    )


def nopin_archive(client: Issued, *, chain: Sequence[CertLike] = ()) -> bytes:
    """`dls-client-certificate` as PKCS#12 with an empty password (spec §7.1 [B])."""
    return pin_archive(client, None, server_cas=(), chain=chain)


def mismatched_archive(
    client: Issued,
    other: Issued,
    password: str | None,
    *,
    server_cas: Sequence[CertLike] = (),
) -> bytes:
    """An archive with `other`'s key and `client`'s certificate: the key matches none of
    its certificates. (PKCS12_create refuses a key and certificate that do not match,
    so the certificate goes in as an ordinary bag, which is how such archives look.)"""
    cas = [pkcs12.PKCS12Certificate(client.cert, None)]
    cas += [pkcs12.PKCS12Certificate(_cert(c), SERVER_CA_NAME) for c in server_cas]
    return pkcs12.serialize_key_and_certificates(
        b"phone-0001", other.key, None, cas, _encryption(password, "pbes2")
    )


def pem_bundle(client: Issued, *, chain: Sequence[CertLike] = (), key: Issued | None = None) -> str:
    """`dls-client-certificate` as a PEM bundle: certificate, chain, then the key.

    `key` puts another credential's key in (a mismatch)."""
    certs = [client.cert, *(_cert(c) for c in chain)]
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    return (pem + (key or client).key_pem).decode("ascii")


def ca_items(*cas: CertLike) -> list[str]:
    """`dls-server-ca` item values (PEM text), index order."""
    return [_cert(c).public_bytes(serialization.Encoding.PEM).decode("ascii") for c in cas]


def b64(data: bytes) -> str:
    """Base64 text as a `base64` item carries it."""
    return base64.b64encode(data).decode("ascii")


def corrupt(data: bytes, *, at: float = 0.5) -> bytes:
    """`data` with one byte flipped at the relative position `at`."""
    pos = min(int(len(data) * at), len(data) - 1)
    return data[:pos] + bytes([data[pos] ^ 0x55]) + data[pos + 1 :]


def openssl_pin_archive(
    client: Issued,
    password: str,
    *,
    server_cas: Sequence[CertLike],
    chain: Sequence[CertLike] = (),
    directory: Path,
    extra_args: Sequence[str] = (),
) -> bytes:
    """`secure-mode-data` made by the standard ``openssl pkcs12 -export`` (spec §7.2).

    The server CAs come first in ``-certfile``, one ``-caname dls-server-ca`` for each
    (``-caname`` names the certificates of ``-certfile`` in order; the chain after them
    gets none). `extra_args` such as ``-legacy``, ``-macalg sha512``, ``-nomac``.
    The password goes through the environment, not the command line.
    """
    if OPENSSL is None:
        raise RuntimeError("no openssl command")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "client.key").write_bytes(client.key_pem)
    (directory / "client.key").chmod(0o600)
    (directory / "client.crt").write_bytes(client.cert_pem)
    others = [*server_cas, *chain]
    (directory / "certfile.pem").write_bytes(
        b"".join(_cert(c).public_bytes(serialization.Encoding.PEM) for c in others)
    )
    out = directory / "bootstrap.p12"
    args = [OPENSSL, "pkcs12", "-export", "-name", "phone-0001"]
    args += ["-inkey", str(directory / "client.key"), "-in", str(directory / "client.crt")]
    if others:
        args += ["-certfile", str(directory / "certfile.pem")]
    for _ in server_cas:
        args += ["-caname", SERVER_CA_NAME.decode()]
    args += [*extra_args, "-passout", "env:PROVD_TEST_P12_PASSWORD", "-out", str(out)]
    env = {**os.environ, "PROVD_TEST_P12_PASSWORD": password}
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=60)
    return out.read_bytes()


# -- BER: the same archive with indefinite lengths and a chunked authSafe --------------------


def _der_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, contents, next position) of the DER element at `pos`."""
    tag, first, pos = data[pos], data[pos + 1], pos + 2
    length = first
    if first & 0x80:
        size = first & 0x7F
        length, pos = int.from_bytes(data[pos : pos + size], "big"), pos + size
    return tag, data[pos : pos + length], pos + length


def _der_items(contents: bytes) -> list[bytes]:
    """The encoded elements inside a constructed element's contents."""
    items, pos = [], 0
    while pos < len(contents):
        _, _, end = _der_read(contents, pos)
        items.append(contents[pos:end])
        pos = end
    return items


def _der(tag: int, contents: bytes) -> bytes:
    n = len(contents)
    if n < 0x80:
        return bytes([tag, n]) + contents
    size = (n.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + n.to_bytes(size, "big") + contents


def to_ber(der: bytes, *, chunk: int = 100) -> bytes:
    """Re-encode a PKCS#12 PFX with indefinite lengths and the authSafe as a constructed
    OCTET STRING of `chunk`-byte pieces. The MAC covers the contents only, so it stays valid."""
    _, pfx, _ = _der_read(der, 0)
    version, content_info, *mac_data = _der_items(pfx)
    _, ci, _ = _der_read(content_info, 0)
    oid, wrapped = _der_items(ci)
    _, inner, _ = _der_read(wrapped, 0)
    _, auth_safe, _ = _der_read(inner, 0)
    pieces = b"".join(_der(0x04, auth_safe[i : i + chunk]) for i in range(0, len(auth_safe), chunk))
    eoc = b"\0\0"
    octets = b"\x24\x80" + pieces + eoc
    content = b"\x30\x80" + oid + b"\xa0\x80" + octets + eoc + eoc
    return b"\x30\x80" + version + content + b"".join(mac_data) + eoc
