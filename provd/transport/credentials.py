"""Secure Mode credentials: the bootstrap material parsed, checked and ready for TLS.

spec §7.1 [B] (`nopin`): `dls-client-certificate` is Base64 of a PKCS#12 archive with an
empty password holding the phone's key and certificate (chain allowed), or a PEM bundle
(certificate + key); the server CAs come as the indexed PEM items `dls-server-ca`.
spec §7.2 [B] (`pin`): `secure-mode-data` is Base64 of a PKCS#12 archive encrypted with
the password part of the PIN; certificates with the friendly name `dls-server-ca` are the
server CAs, the others the client's chain. A wrong password fails the archive's
integrity check (its MAC): that, and only that, is a wrong PIN (`WrongPin`).

What can be checked when (spec §7.3 step 1): the `nopin` material is checked whole on
arrival. `secure-mode-data` can only be opened with the PIN, so on arrival
`check_pin_material` checks what is readable without it — valid Base64; the outer PKCS#12
structure (version 3, password integrity mode); a MAC provd can verify
(`provd.transport.pkcs12`), so that a wrong PIN is told from broken material; and that the
archive does not open with an empty password (no PIN could open it then). Whether the
key matches the certificate, the certificate's validity and the CAs are inside the
encrypted bags: `parse_pin` checks them once the PIN is typed.

Where the key lives (spec §7.4, §8.2): the pending material is kept in the secure store as
received; once usable, the credentials go there as PEM (`key_pem`, `chain_pem`,
`server_cas_pem`) and come back with `load_stored`. The key is not encrypted inside the
secure store: the only secret that could encrypt it is the PIN, which is never kept, and
a key encrypted with a secret stored beside it would protect nothing. The secure store
(owner-only directory and files) is the protected place; the key never leaves it
unencrypted — no other file, no log line, no exception text. Errors here name items and
problems, never material or passwords, and `repr` of credentials shows no key.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CERTIFICATE_PRIVATE_KEY_TYPES
from cryptography.hazmat.primitives.serialization import pkcs12

from provd.transport import pem
from provd.transport.pkcs12 import Pfx, Pkcs12Error, bmp_password, read_pfx
from provd.transport.tls import TrustPolicy

#: Item names of the bootstrap material [G p.64, p.67].
CLIENT_CERTIFICATE = "dls-client-certificate"
SERVER_CA = "dls-server-ca"
SECURE_MODE_DATA = "secure-mode-data"
#: spec §7.2 [B]: the friendly name that marks a server CA inside a PKCS#12 archive.
SERVER_CA_FRIENDLY_NAME = b"dls-server-ca"

ItemKey = tuple[str, int | None]

_USABLE_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    dsa.DSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_DAY = datetime.timedelta(days=1)


class CredentialsError(Exception):
    """Credentials that cannot be used; the message names the problem, never the material."""


class InvalidMaterial(CredentialsError):
    """Bootstrap material that fails the checks of spec §7.3 step 1.

    `item_names` are the offending items, answered `invalid data`; `item_keys` pin
    indexed items down to `(name, index)` (index None: the item as a whole, or missing).
    """

    def __init__(
        self,
        item_names: tuple[str, ...],
        reason: str,
        *,
        item_keys: tuple[ItemKey, ...] | None = None,
    ) -> None:
        super().__init__(f"{', '.join(item_names)}: {reason}")
        self.item_names = item_names
        self.reason = reason
        self.item_keys = (
            item_keys if item_keys is not None else tuple((n, None) for n in item_names)
        )


class WrongPin(CredentialsError):
    """The PIN's password part fails the integrity check of `secure-mode-data` (§7.2)."""

    def __init__(self) -> None:
        super().__init__(f"the PIN does not open {SECURE_MODE_DATA}")


def _utc(moment: datetime.datetime) -> datetime.datetime:
    """Aware UTC; a naive datetime is taken as UTC (cryptography 38 gives naive UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ClientCredentials:
    """The phone's key, its certificate and chain, and the server CAs (Secure Mode)."""

    key: CERTIFICATE_PRIVATE_KEY_TYPES = field(compare=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()  # above `certificate`, issuer first
    server_cas: tuple[x509.Certificate, ...]

    def __repr__(self) -> str:
        # Shown in tracebacks and logs: names and dates only, never the key.
        return (
            f"ClientCredentials(subject={self.subject!r}, "
            f"not_after={self.not_after.isoformat()}, chain={len(self.chain)}, "
            f"server_cas={len(self.server_cas)})"
        )

    @property
    def subject(self) -> str:
        """The client certificate's subject (RFC 4514), for status lines."""
        return self.certificate.subject.rfc4514_string()

    @property
    def not_before(self) -> datetime.datetime:
        """Start of the client certificate's validity (aware, UTC)."""
        return _utc(self.certificate.not_valid_before)

    @property
    def not_after(self) -> datetime.datetime:
        """End of the client certificate's validity (aware, UTC)."""
        return _utc(self.certificate.not_valid_after)

    @property
    def fingerprint_sha256(self) -> str:
        """SHA-256 of the client certificate (lower-case hex), for status lines."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    def days_left(self, now: datetime.datetime) -> int:
        """Whole days until the certificate expires (negative once it has)."""
        return (self.not_after - _utc(now)) // _DAY

    def to_trust_policy(self, *, check_name: bool = False) -> TrustPolicy:
        """Secure Mode's TLS policy (§7.4): server verified against the CAs only, mutual TLS."""
        return TrustPolicy.secure(
            self.server_cas, self.key, (self.certificate, *self.chain), check_name=check_name
        )

    def key_pem(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM: for the secure store only (see module doc)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def chain_pem(self) -> bytes:
        """The client certificate and its chain in PEM, leaf first."""
        return b"".join(_pem(c) for c in (self.certificate, *self.chain))

    def server_cas_pem(self) -> tuple[bytes, ...]:
        """The server CA certificates, one PEM each."""
        return tuple(_pem(c) for c in self.server_cas)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def expiry_warning(creds: ClientCredentials, now: datetime.datetime, warn_days: int) -> str | None:
    """A warning for the journal and `provctl status` when the client certificate
    expires within `warn_days` days (or has expired); None otherwise."""
    now = _utc(now)
    date = creds.not_after.date().isoformat()
    if now >= creds.not_after:
        return f"client certificate {creds.subject} expired on {date}"
    if creds.not_after - now > max(warn_days, 0) * _DAY:
        return None
    left = creds.days_left(now)
    when = "in less than a day" if left == 0 else f"in {left} day{'s' if left != 1 else ''}"
    return f"client certificate {creds.subject} expires on {date} ({when})"


# -- the two bootstrap variants ------------------------------------------------------------


def parse_nopin(
    dls_client_certificate: str,
    dls_server_cas: Sequence[str] | Mapping[int, str],
    now: datetime.datetime,
) -> ClientCredentials:
    """Parse and check `nopin` material (spec §7.1, §7.3 step 1).

    `dls_server_cas` are the `dls-server-ca` values, by index (a sequence counts from 0).
    Raises `InvalidMaterial` naming every offending item.
    """
    problems: list[tuple[ItemKey, str]] = []
    creds: ClientCredentials | None = None
    try:
        creds = _client_material(dls_client_certificate, now)
    except _Refused as exc:
        problems.append(((CLIENT_CERTIFICATE, None), exc.reason))
    cas = dls_server_cas if isinstance(dls_server_cas, Mapping) else dict(enumerate(dls_server_cas))
    server_cas: list[x509.Certificate] = []
    for index, text in sorted(cas.items()):
        try:
            server_cas.extend(_server_ca_item(text))
        except _Refused as exc:
            problems.append(((SERVER_CA, index), exc.reason))
    if not cas:
        problems.append(((SERVER_CA, None), "no server CA given"))
    if problems:
        raise _invalid(problems)
    assert creds is not None
    return _with_cas(creds, (*server_cas, *creds.server_cas))


def check_pin_material(secure_mode_data: str) -> None:
    """What spec §7.3 step 1 can check of `secure-mode-data` before the PIN is typed.

    Valid Base64; a PKCS#12 archive (version 3) in password integrity mode, with a MAC
    provd can verify; and not openable with an empty password. Key, certificate
    and CAs are encrypted: `parse_pin` checks them. Raises `InvalidMaterial`.
    """
    _pin_archive(secure_mode_data)


def parse_pin(secure_mode_data: str, password: str, now: datetime.datetime) -> ClientCredentials:
    """Open `secure-mode-data` with the PIN's password part and check it (spec §7.2, §7.3).

    Raises `WrongPin` when the password fails the archive's integrity check, and
    `InvalidMaterial` (naming `secure-mode-data`) when the material itself is bad.
    """
    raw, pfx = _pin_archive(secure_mode_data, check_empty=False)
    try:
        secret = bmp_password(password)
    except UnicodeEncodeError:  # lone surrogates: no keypad types them, no archive has them
        raise WrongPin() from None
    if not pfx.mac_matches(secret):
        raise WrongPin()
    try:
        archive = pkcs12.load_pkcs12(raw, password.encode("utf-8"))
        creds = _from_pkcs12(archive, now)
        if not creds.server_cas:
            raise _Refused("holds no certificate with the friendly name dls-server-ca")
        return creds
    except ValueError:
        reason = "cannot be decrypted although the PIN passed its integrity check"
    except _Refused as exc:
        reason = exc.reason
    raise InvalidMaterial((SECURE_MODE_DATA,), reason)


def load_stored(
    key_pem: bytes, chain_pem: bytes, server_cas_pem: Sequence[bytes]
) -> ClientCredentials:
    """The credentials kept in the secure store (`key_pem`, `chain_pem`, `server_cas_pem`).

    No validity check: an expired certificate still loads (`expiry_warning` says so; the
    server decides). Raises `CredentialsError` for unusable contents.
    """
    try:
        key = _load_pem_key(key_pem)
        certs = _pem_certificates(chain_pem)
        if not certs:
            raise _Refused("no client certificate stored")
        leaf, chain = _pick_leaf(key, certs)
        cas = [ca for pem in server_cas_pem for ca in _pem_certificates(pem)]
        if not cas:
            raise _Refused("no server CA stored")
    except _Refused as exc:
        raise CredentialsError(f"stored client credentials unusable: {exc.reason}") from None
    return ClientCredentials(key=key, certificate=leaf, chain=chain, server_cas=tuple(cas))


# -- parsing and checking --------------------------------------------------------------------


class _Refused(Exception):
    """A check failed; `reason` is safe to show (no material)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _invalid(problems: list[tuple[ItemKey, str]]) -> InvalidMaterial:
    names = tuple(dict.fromkeys(name for (name, _), _ in problems))
    reason = "; ".join(
        f"{name}[{index}]: {why}" if index is not None else f"{name}: {why}"
        for (name, index), why in problems
    )
    if len(problems) == 1:
        reason = problems[0][1]
    return InvalidMaterial(names, reason, item_keys=tuple(key for key, _ in problems))


def _decode_base64(text: str) -> bytes:
    compact = "".join(text.split())
    if not compact:
        raise _Refused("is empty")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise _Refused("is not valid Base64") from None


def _client_material(text: str, now: datetime.datetime) -> ClientCredentials:
    """`dls-client-certificate`: Base64 PKCS#12 (empty password) or a PEM bundle."""
    if "-----BEGIN" in text:
        return _from_pem_bundle(text.encode("utf-8"), now)
    raw = _decode_base64(text)
    if raw.lstrip().startswith(b"-----BEGIN"):
        return _from_pem_bundle(raw, now)  # a PEM bundle in Base64: same content
    try:
        archive = pkcs12.load_pkcs12(raw, None)
    except ValueError:
        raise _Refused("is not a PKCS#12 archive with an empty password, nor PEM") from None
    return _from_pkcs12(archive, now)


def _from_pem_bundle(data: bytes, now: datetime.datetime) -> ClientCredentials:
    blocks = pem.blocks(data)
    keys = [block for label, block in blocks if label.endswith(b"PRIVATE KEY")]
    if len(keys) != 1:
        raise _Refused(f"PEM bundle holds {len(keys)} private keys, not 1")
    key = _load_pem_key(keys[0])
    certs = _pem_certificates(
        b"\n".join(block for label, block in blocks if label == b"CERTIFICATE")
    )
    if not certs:
        raise _Refused("PEM bundle holds no certificate")
    leaf, chain = _pick_leaf(key, certs)
    _check_validity(leaf, now)
    return ClientCredentials(key=key, certificate=leaf, chain=chain, server_cas=())


def _from_pkcs12(
    archive: pkcs12.PKCS12KeyAndCertificates, now: datetime.datetime
) -> ClientCredentials:
    others = list(archive.additional_certs)
    key = archive.key
    if key is None:
        raise _Refused("archive holds no private key")
    if not isinstance(key, _USABLE_KEYS):
        raise _Refused(f"{type(key).__name__} cannot sign: not a client key")
    # OpenSSL hands back as `cert` the certificate matching the key, if any.
    if archive.cert is None:
        raise _Refused(
            "no certificate in the archive matches its private key"
            if others
            else "archive holds no certificate"
        )
    leaf = archive.cert.certificate
    _require_match(key, leaf)  # OpenSSL paired them already; cheap to be sure
    _check_validity(leaf, now)
    cas = tuple(c.certificate for c in others if c.friendly_name == SERVER_CA_FRIENDLY_NAME)
    chain = _order_chain(
        leaf, [c.certificate for c in others if c.friendly_name != SERVER_CA_FRIENDLY_NAME]
    )
    return ClientCredentials(key=key, certificate=leaf, chain=chain, server_cas=cas)


def _with_cas(creds: ClientCredentials, cas: tuple[x509.Certificate, ...]) -> ClientCredentials:
    return ClientCredentials(
        key=creds.key, certificate=creds.certificate, chain=creds.chain, server_cas=cas
    )


def _load_pem_key(block: bytes) -> CERTIFICATE_PRIVATE_KEY_TYPES:
    try:
        key = serialization.load_pem_private_key(block, password=None)
    except TypeError:
        raise _Refused(
            "the private key is encrypted and this variant carries no password"
        ) from None
    except ValueError:
        raise _Refused("the private key cannot be read") from None
    if not isinstance(key, _USABLE_KEYS):
        raise _Refused(f"{type(key).__name__} cannot sign: not a client key")
    return key


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        return pem.certificates(data)
    except ValueError as exc:
        raise _Refused(str(exc)) from None


def _server_ca_item(text: str) -> list[x509.Certificate]:
    """One `dls-server-ca` value: PEM (spec §7.1), or Base64 DER as a courtesy."""
    if "-----BEGIN" in text:
        certs = _pem_certificates(text.encode("utf-8"))
        if not certs:
            raise _Refused("holds no PEM certificate")
        return certs
    raw = _decode_base64(text)
    try:
        return [x509.load_der_x509_certificate(raw)]
    except ValueError:
        raise _Refused("is not a PEM certificate") from None


def _public_der(key: CERTIFICATE_PRIVATE_KEY_TYPES | x509.Certificate) -> bytes:
    public = key.public_key()
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _require_match(key: CERTIFICATE_PRIVATE_KEY_TYPES, cert: x509.Certificate) -> None:
    if not hmac.compare_digest(_public_der(key), _public_der(cert)):
        raise _Refused("the private key does not match the client certificate")


def _pick_leaf(
    key: CERTIFICATE_PRIVATE_KEY_TYPES, certs: Sequence[x509.Certificate]
) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    mine = _public_der(key)
    for cert in certs:
        if hmac.compare_digest(_public_der(cert), mine):
            return cert, _order_chain(cert, [c for c in certs if c is not cert])
    raise _Refused("the private key does not match the client certificate")


def _order_chain(
    leaf: x509.Certificate, certs: list[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    """Issuer first, following issuer names from `leaf`; the rest after, as given."""
    rest, ordered, current = list(certs), [], leaf
    while current.issuer != current.subject:
        parent = next((c for c in rest if c.subject == current.issuer), None)
        if parent is None:
            break
        rest.remove(parent)
        ordered.append(parent)
        current = parent
    return (*ordered, *rest)


def _check_validity(cert: x509.Certificate, now: datetime.datetime) -> None:
    moment = _utc(now)
    if moment < _utc(cert.not_valid_before):
        raise _Refused(
            f"client certificate not valid before {_utc(cert.not_valid_before):%Y-%m-%d %H:%M} UTC"
        )
    if moment > _utc(cert.not_valid_after):
        raise _Refused(
            f"client certificate expired on {_utc(cert.not_valid_after):%Y-%m-%d %H:%M} UTC"
        )


# -- the archive before the PIN (its structure and MAC: provd.transport.pkcs12) ----------------


def _pin_archive(secure_mode_data: str, *, check_empty: bool = True) -> tuple[bytes, Pfx]:
    """The archive and its outer structure. `check_empty` also refuses one that opens
    with an empty password: done once, when the material arrives (`check_pin_material`),
    not at every PIN attempt, where two more key derivations of up to 2**20 iterations
    each would block the daemon's loop."""
    try:
        raw = _decode_base64(secure_mode_data)
        pfx = read_pfx(raw)
        # OpenSSL tries both empty passwords: absent (no bytes) and "" (the terminator).
        if check_empty and (pfx.mac_matches(b"") or pfx.mac_matches(b"\0\0")):
            raise _Refused("opens with an empty password, so no PIN can open it")
    except (_Refused, Pkcs12Error) as exc:
        raise InvalidMaterial((SECURE_MODE_DATA,), exc.reason) from None
    return raw, pfx
