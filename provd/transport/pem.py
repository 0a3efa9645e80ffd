"""PEM blocks (RFC 7468): the one reader of certificates and keys in provd's transport.

The body of a block is Base64 and line breaks, and the pattern says so: it cannot run past
another BEGIN line, so a hostile value of many BEGIN lines is read in linear time (the
lazy `.*?` it replaces took seconds on 100 kB of them). Headers of legacy encrypted
PEM (`Proc-Type:`) are not accepted; provd never takes an encrypted key in PEM.
"""

from __future__ import annotations

import re

from cryptography import x509

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----[A-Za-z0-9+/=\s]+-----END \1-----")


def blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(label, the whole block) of every PEM block in `data`, in order."""
    return [(match.group(1), match.group(0)) for match in _BLOCK.finditer(data)]


def certificates(data: bytes) -> list[x509.Certificate]:
    """Every CERTIFICATE block of `data`, in order (none: an empty list).

    Raises `ValueError` naming the first block that is not a certificate (1-based)."""
    certs: list[x509.Certificate] = []
    for label, block in blocks(data):
        if label != b"CERTIFICATE":
            continue
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            raise ValueError(f"certificate {len(certs) + 1} cannot be read") from None
    return certs
