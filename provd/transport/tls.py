"""TLS for the phone's HTTPS client: trust policies, pyOpenSSL contexts, the handshake.

spec §7.4 [B]: TLS 1.2 or later, no compression, no renegotiation, pyOpenSSL
makes the connections. Which server to trust is a `TrustPolicy`:

- ``pin``: trust on first use (Default Mode's default). Without a known pin any
  certificate is accepted and its key hash reported (`TlsSocket.peer_spki_sha256`)
  for the caller to pin once an interaction completes; with a pin the server's key
  must match it.
- ``ca``: the chain must verify against the given CAs (a CA file), optionally the
  system trust store (downloads from other hosts, spec §6.1), optionally with a name check.
- ``any``: no checks, the guide's behaviour [G p.12] (the caller logs a warning).
- ``secure``: Secure Mode: the chain must verify against the ``dls-server-ca`` set
  only, optional name check, and the phone presents its client key and chain,
  which stay in memory (never written to disk unencrypted).

Path validation is OpenSSL's (an `X509Store` of the given CAs); only the name
check after the handshake is ours, from the certificate's subjectAltName.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PRIVATE_KEY_TYPES
from OpenSSL import SSL, crypto

from provd.transport.errors import TransportError, describe_ssl_error
from provd.transport.pem import certificates as pem_certificates
from provd.transport.tlssocket import TlsSocket, deadline_after

log = logging.getLogger(__name__)

TrustMode = Literal["pin", "ca", "any", "secure"]

_PIN = re.compile(r"[0-9a-f]{64}")
# SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER (not exported by pyOpenSSL): a write retried
# after WANT_WRITE may come from a different Python buffer object (`TlsSocket.sendall`).
_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2
_OP_NO_RENEGOTIATION: int = getattr(SSL, "OP_NO_RENEGOTIATION", 0)

# OpenSSL X509_V_ERR_* codes worth a plain sentence in the log.
_VERIFY_ERRORS = {
    2: "issuer certificate not found",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate not trusted",
    19: "self-signed certificate in the chain not trusted",
    20: "not issued by a trusted CA (unable to get local issuer certificate)",
    21: "not issued by a trusted CA (unable to verify the first certificate)",
    23: "certificate has been revoked",
    24: "invalid CA certificate",
    26: "certificate not meant for this purpose",
}


def load_pem_certificates(pem: bytes) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM bundle, in order; `ValueError` when there is none."""
    certs = pem_certificates(pem)
    if not certs:
        raise ValueError("no PEM certificate found")
    return tuple(certs)


def spki_sha256(cert: x509.Certificate | crypto.X509) -> str:
    """SHA-256 (lower-case hex) of the certificate's SubjectPublicKeyInfo DER: the pin."""
    if isinstance(cert, crypto.X509):
        cert = cert.to_cryptography()
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True, kw_only=True)
class TrustPolicy:
    """Which servers to trust and what to present; build it with the class methods."""

    mode: TrustMode
    pin: str | None = None
    ca_certs: tuple[x509.Certificate, ...] = ()
    system_store: bool = False
    check_name: bool = False
    client_key: PRIVATE_KEY_TYPES | None = field(default=None, repr=False, compare=False)
    client_chain: tuple[x509.Certificate, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.pin is not None and not _PIN.fullmatch(self.pin):
            raise ValueError("pin must be 64 lower-case hex digits (SHA-256 of the SPKI)")
        if self.pin is not None and self.mode != "pin":
            raise ValueError("a pin only applies to mode 'pin'")
        if self.check_name and self.mode not in ("ca", "secure"):
            raise ValueError("a name check needs a verified chain (mode 'ca' or 'secure')")
        if self.mode == "ca" and not (self.ca_certs or self.system_store):
            raise ValueError("mode 'ca' needs CA certificates or the system store")
        if self.mode == "secure":
            if not self.ca_certs:
                raise ValueError("Secure Mode needs the dls-server-ca certificates")
            if self.client_key is None or not self.client_chain:
                raise ValueError("Secure Mode needs the client key and certificate chain")
        elif self.client_key is not None or self.client_chain:
            raise ValueError("a client certificate only applies to Secure Mode")

    @classmethod
    def pinned(cls, pin: str | None = None) -> TrustPolicy:
        """Trust on first use: any key while `pin` is None, else only the key hashing to it."""
        return cls(mode="pin", pin=pin.lower() if pin else None)

    @classmethod
    def from_ca_pem(cls, pem: bytes, *, check_name: bool = False) -> TrustPolicy:
        """Verify against the CA certificates of a PEM bundle."""
        return cls(mode="ca", ca_certs=load_pem_certificates(pem), check_name=check_name)

    @classmethod
    def from_ca_file(cls, path: str | os.PathLike[str], *, check_name: bool = False) -> TrustPolicy:
        """Verify against the CA certificates of a PEM file (read now)."""
        return cls.from_ca_pem(Path(path).read_bytes(), check_name=check_name)

    @classmethod
    def system(
        cls, extra_cas: Sequence[x509.Certificate] = (), *, check_name: bool = True
    ) -> TrustPolicy:
        """Verify against the system trust store (plus `extra_cas`), for other hosts (§6.1)."""
        return cls(mode="ca", ca_certs=tuple(extra_cas), system_store=True, check_name=check_name)

    @classmethod
    def accept_any(cls) -> TrustPolicy:
        """No checks at all, as the guide has it [G p.12]; the caller logs a warning."""
        return cls(mode="any")

    @classmethod
    def secure(
        cls,
        server_cas: Sequence[x509.Certificate],
        client_key: PRIVATE_KEY_TYPES,
        client_chain: Sequence[x509.Certificate],
        *,
        check_name: bool = False,
    ) -> TrustPolicy:
        """Secure Mode (§7.4): server verified against `server_cas` only, mutual TLS.

        `client_chain` starts with the client certificate; the key stays in memory.
        """
        return cls(
            mode="secure",
            ca_certs=tuple(server_cas),
            client_key=client_key,
            client_chain=tuple(client_chain),
            check_name=check_name,
        )


def make_context(policy: TrustPolicy) -> SSL.Context:
    """A client context for `policy`: TLS 1.2+, no compression, no renegotiation (§7.4).

    Raises `TransportError` ``tls`` when Secure Mode's client key and certificate
    cannot be used together.
    """
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_COMPRESSION | _OP_NO_RENEGOTIATION)
    ctx.set_mode(_MODE_ACCEPT_MOVING_WRITE_BUFFER)
    if policy.mode in ("ca", "secure"):
        store = ctx.get_cert_store()
        assert store is not None
        for ca in policy.ca_certs:
            store.add_cert(crypto.X509.from_cryptography(ca))
        # Any certificate given is a trust anchor, intermediates included.
        store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
        if policy.system_store:
            ctx.set_default_verify_paths()
        ctx.set_verify(SSL.VERIFY_PEER, _note_verify_result)
    else:
        ctx.set_verify(SSL.VERIFY_NONE, None)
    if policy.mode == "secure":
        _use_client_certificate(ctx, policy)
        # spec §7: Secure Mode is mutual TLS. A secure port that never asks for the
        # phone's certificate is not the provisioning server the phone was bound to.
        ctx.set_info_callback(_note_state)
    return ctx


def _use_client_certificate(ctx: SSL.Context, policy: TrustPolicy) -> None:
    assert policy.client_key is not None
    try:
        # In memory only: the key goes from the secure store's object to OpenSSL's.
        ctx.use_certificate(crypto.X509.from_cryptography(policy.client_chain[0]))
        for cert in policy.client_chain[1:]:
            ctx.add_extra_chain_cert(crypto.X509.from_cryptography(cert))
        # The stub lists RSA and DSA only; pyOpenSSL takes EC and EdDSA keys as well.
        key = crypto.PKey.from_cryptography_key(policy.client_key)  # type: ignore[arg-type]
        ctx.use_privatekey(key)
        ctx.check_privatekey()
    except (SSL.Error, crypto.Error, TypeError) as exc:
        # Say what, never which key: the message may reach the journal.
        reason = describe_ssl_error(exc) if isinstance(exc, SSL.Error) else type(exc).__name__
        raise TransportError("tls", f"client key and certificate unusable: {reason}") from None


def certificate_names_host(cert: x509.Certificate, host: str) -> bool:
    """Whether the certificate's subjectAltName names `host` (an IP address or a DNS name)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.rstrip(".").lower()
        return any(_dns_matches(p, name) for p in san.get_values_for_type(x509.DNSName))
    return ip in san.get_values_for_type(x509.IPAddress)


def _dns_matches(pattern: str, name: str) -> bool:
    pattern = pattern.rstrip(".").lower()
    if pattern.startswith("*."):
        # RFC 6125 §6.4.3: a wildcard is the whole left-most label and matches one label.
        first, _, rest = name.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == name


class _VerifyNote:
    """Per-connection record of the first certificate error OpenSSL found, and whether
    the server asked for the phone's certificate."""

    def __init__(self) -> None:
        self.error: int | None = None
        self.depth = 0
        self.certificate_requested = False


#: OpenSSL's state after a CertificateRequest, in TLS 1.2 and 1.3 alike.
_CERTIFICATE_REQUEST_READ = b"SSLv3/TLS read server certificate request"


def _note_state(conn: SSL.Connection, where: int, ret: int) -> None:
    note = conn.get_app_data()
    if isinstance(note, _VerifyNote) and conn.get_state_string() == _CERTIFICATE_REQUEST_READ:
        note.certificate_requested = True


def _note_verify_result(
    conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int
) -> bool:
    # OpenSSL decides; we only remember why, for a log line better than
    # "certificate verify failed".
    note = conn.get_app_data()
    if not ok and isinstance(note, _VerifyNote) and note.error is None:
        note.error, note.depth = errnum, depth
    return bool(ok)


def is_ip_address(host: str) -> bool:
    """Whether `host` is an IP literal (no SNI is sent for those, RFC 6066 §3)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def handshake(
    raw: socket.socket,
    ctx: SSL.Context,
    policy: TrustPolicy,
    host: str,
    port: int,
    *,
    timeout: float | None,
    expected_spki: str | None = None,
) -> TlsSocket:
    """Run the TLS handshake on the connected `raw` socket and apply `policy`.

    `expected_spki` is the pin in force (mode ``pin``); `timeout` bounds the whole
    handshake. Raises `TransportError` (``connect`` on timeout, ``tls`` otherwise);
    `raw` is closed on failure.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    raw.setblocking(False)
    conn = SSL.Connection(ctx, raw)
    conn.set_app_data(_VerifyNote())
    if not is_ip_address(host):
        conn.set_tlsext_host_name(host.encode("idna"))
    conn.set_connect_state()
    tls = TlsSocket(conn, raw, timeout=timeout)
    try:
        tls.run(conn.do_handshake, deadline=deadline_after(timeout))
        leaf = conn.get_peer_certificate()
        if leaf is None:
            raise TransportError("tls", f"{where} presented no certificate")
        cert = leaf.to_cryptography()
        tls.peer_spki_sha256 = spki = spki_sha256(cert)
        if expected_spki is not None and spki != expected_spki:
            raise TransportError(
                "tls", "server key does not match the pinned key", peer_spki_sha256=spki
            )
        if policy.check_name and not certificate_names_host(cert, host):
            raise TransportError("tls", f"server certificate of {where} does not name {host}")
        note = conn.get_app_data()
        if policy.mode == "secure" and not (
            isinstance(note, _VerifyNote) and note.certificate_requested
        ):
            raise TransportError(
                "tls",
                f"{where} did not ask for the phone's client certificate: refused in Secure Mode",
            )
    except TransportError:
        tls.close()
        raise
    except TimeoutError:
        tls.close()
        raise TransportError("connect", f"TLS handshake with {where} timed out") from None
    except SSL.Error as exc:
        tls.close()
        note = conn.get_app_data()
        if isinstance(note, _VerifyNote) and note.error is not None:
            what = _VERIFY_ERRORS.get(note.error, f"X509 verify error {note.error}")
            raise TransportError(
                "tls", f"server certificate of {where} not accepted: {what} (depth {note.depth})"
            ) from None
        raise TransportError(
            "tls", f"TLS handshake with {where} failed: {describe_ssl_error(exc)}"
        ) from None
    except OSError as exc:
        tls.close()
        raise TransportError("connect", f"TLS handshake with {where} failed: {exc}") from None
    conn.set_app_data(None)
    log.debug(
        "TLS %s with %s, server key %s",
        conn.get_protocol_version_name(),
        where,
        tls.peer_spki_sha256,
        extra={"PROVD_SERVER": where},
    )
    return tls
