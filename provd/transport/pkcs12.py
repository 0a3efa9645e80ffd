"""A PKCS#12 archive before its password: the outer structure and the MAC (RFC 7292).

spec §7.2 [B]: a wrong PIN is the one that fails the archive's integrity check, its
MAC. `cryptography`'s `load_pkcs12` answers a wrong password and broken material with
the same `ValueError`, so `provd.transport.credentials` reads the outer PFX here and
checks the MAC itself: on arrival (spec §7.3 step 1: is there a MAC this module can
verify, does the archive open with an empty password?) and when the PIN is typed (does
the password pass?). Nothing here decrypts: the bags stay sealed until
`load_pkcs12` opens them.

Errors are `Pkcs12Error`, whose `reason` is safe to show (no material, no password).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

_OID_DATA = "1.2.840.113549.1.7.1"
_OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
#: MAC digests (RFC 7292 §5 / RFC 9579 PBMAC1 is not among them: OpenSSL 3.0 lacks it too).
_MAC_DIGESTS = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.5": "sha512_224",
    "2.16.840.1.101.3.4.2.6": "sha512_256",
}
# A MAC costs `iterations` hash calls here; OpenSSL makes 2048, Java 10000. More than this
# is a denial of service, not protection.
_MAX_MAC_ITERATIONS = 1 << 20
_MAX_DEPTH = 16


class Pkcs12Error(Exception):
    """The archive's outer structure or MAC cannot be used; `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Tlv:
    tag: int
    value: bytes  # primitive contents
    children: tuple[_Tlv, ...] | None  # constructed contents

    def items(self, tag: int, count: range) -> tuple[_Tlv, ...]:
        if self.tag != tag or self.children is None or len(self.children) not in count:
            raise Pkcs12Error("is not a PKCS#12 archive")
        return self.children

    def octets(self) -> bytes:
        if self.tag == 0x04:
            return self.value
        if self.tag == 0x24 and self.children is not None:  # BER constructed OCTET STRING
            return b"".join(child.octets() for child in self.children)
        raise Pkcs12Error("is not a PKCS#12 archive")

    def integer(self) -> int:
        if self.tag != 0x02 or not self.value:
            raise Pkcs12Error("is not a PKCS#12 archive")
        return int.from_bytes(self.value, "big", signed=True)

    def oid(self) -> str:
        if self.tag != 0x06 or not self.value:
            raise Pkcs12Error("is not a PKCS#12 archive")
        arcs, arc = [], 0
        for byte in self.value:
            arc = (arc << 7) | (byte & 0x7F)
            if not byte & 0x80:
                arcs.append(arc)
                arc = 0
        if not arcs or self.value[-1] & 0x80:
            raise Pkcs12Error("is not a PKCS#12 archive")
        first = min(arcs[0] // 40, 2)
        return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


def _read_tlv(data: bytes, pos: int, depth: int) -> tuple[_Tlv, int]:
    """One BER element at `pos` (DER, and BER's indefinite lengths as some Java tools write)."""
    if depth > _MAX_DEPTH or pos + 2 > len(data) or data[pos] & 0x1F == 0x1F:
        raise Pkcs12Error("is not a PKCS#12 archive")
    tag, first, pos = data[pos], data[pos + 1], pos + 2
    constructed = bool(tag & 0x20)
    if first == 0x80:
        if not constructed:
            raise Pkcs12Error("is not a PKCS#12 archive")
        children = []
        while data[pos : pos + 2] != b"\0\0":
            child, pos = _read_tlv(data, pos, depth + 1)
            children.append(child)
        return _Tlv(tag, b"", tuple(children)), pos + 2
    length = first
    if first & 0x80:
        size = first & 0x7F
        if not 0 < size <= 4 or pos + size > len(data):
            raise Pkcs12Error("is not a PKCS#12 archive")
        length, pos = int.from_bytes(data[pos : pos + size], "big"), pos + size
    end = pos + length
    if end > len(data):
        raise Pkcs12Error("is not a PKCS#12 archive (truncated)")
    if not constructed:
        return _Tlv(tag, data[pos:end], None), end
    children = []
    while pos < end:
        child, pos = _read_tlv(data[:end], pos, depth + 1)
        children.append(child)
    return _Tlv(tag, b"", tuple(children)), end


@dataclass(frozen=True, slots=True)
class Pfx:
    """What a PKCS#12 PFX shows without its password: the MACed data and the MAC."""

    auth_safe: bytes
    digest: str  # hashlib name
    mac: bytes
    salt: bytes
    iterations: int

    def mac_matches(self, password: bytes) -> bool:
        """Whether `password` (BMPString form, RFC 7292 B.1) passes the integrity check."""
        key = _mac_key(self.digest, password, self.salt, self.iterations)
        expected = hmac.new(key, self.auth_safe, self.digest).digest()
        return hmac.compare_digest(expected, self.mac)


def read_pfx(raw: bytes) -> Pfx:
    """The outer PFX of the archive `raw` (DER, or BER as some Java tools write it).

    Accepted: version 3 in password integrity mode, with a MAC this module can verify.
    Raises `Pkcs12Error` otherwise.
    """
    top, end = _read_tlv(raw, 0, 0)
    if end != len(raw):
        raise Pkcs12Error("is not a PKCS#12 archive (data after its end)")
    version, content, *mac_data = top.items(0x30, range(2, 4))
    if version.integer() != 3:
        raise Pkcs12Error("is not a PKCS#12 archive of version 3")
    content_type, *wrapped = content.items(0x30, range(1, 3))
    if content_type.oid() == _OID_SIGNED_DATA:
        raise Pkcs12Error("uses public-key integrity, not a password")
    if content_type.oid() != _OID_DATA or not wrapped:
        raise Pkcs12Error("is not a PKCS#12 archive")
    (auth_safe,) = wrapped[0].items(0xA0, range(1, 2))
    if not mac_data:
        # Without a MAC a wrong PIN could not be told from a right one (§7.2).
        raise Pkcs12Error("has no integrity check (MAC)")
    digest_info, salt, *rounds = mac_data[0].items(0x30, range(2, 4))
    algorithm, mac = digest_info.items(0x30, range(2, 3))
    oid = algorithm.items(0x30, range(1, 3))[0].oid()
    if oid not in _MAC_DIGESTS:
        raise Pkcs12Error(f"MAC algorithm {oid} is not supported")
    digest = _MAC_DIGESTS[oid]
    iterations = rounds[0].integer() if rounds else 1
    if not 1 <= iterations <= _MAX_MAC_ITERATIONS:
        raise Pkcs12Error(f"MAC iteration count {iterations} out of range")
    if len(mac.octets()) != hashlib.new(digest).digest_size:
        raise Pkcs12Error("MAC has the wrong length")
    return Pfx(auth_safe.octets(), digest, mac.octets(), salt.octets(), iterations)


def _mac_key(digest: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    """RFC 7292 B.2 key derivation, ID 3 (MAC key), one hash-length block."""
    block = hashlib.new(digest).block_size

    def fill(data: bytes) -> bytes:
        # Copies of `data` filling a whole number of blocks, as long as `data` needs.
        if not data:
            return b""
        size = block * -(-len(data) // block)
        return (data * -(-size // len(data)))[:size]

    value = hashlib.new(digest, b"\x03" * block + fill(salt) + fill(password)).digest()
    for _ in range(iterations - 1):
        value = hashlib.new(digest, value).digest()
    return value


def bmp_password(password: str) -> bytes:
    """RFC 7292 B.1: the password as a NUL-terminated BMPString (OpenSSL takes UTF-8 in).

    Raises `UnicodeEncodeError` for a lone surrogate, which no BMPString holds.
    """
    return password.encode("utf-16-be") + b"\0\0"
