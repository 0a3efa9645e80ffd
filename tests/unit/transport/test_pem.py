"""The one PEM reader (provd.transport.pem): blocks, certificates, hostile values."""

from __future__ import annotations

import pytest

from provd.transport import pem
from tests.certs import make_ca, make_leaf


def test_blocks_come_in_order_with_their_labels_and_crlf_line_ends() -> None:
    ca = make_ca()
    leaf = make_leaf(ca)
    bundle = leaf.cert_pem + ca.cert_pem.replace(b"\n", b"\r\n") + leaf.key_pem

    labels = [label for label, _ in pem.blocks(bundle)]

    assert labels == [b"CERTIFICATE", b"CERTIFICATE", b"PRIVATE KEY"]
    assert [c.subject for c in pem.certificates(bundle)] == [leaf.cert.subject, ca.cert.subject]


def test_a_certificate_after_many_stray_begin_lines_is_still_found() -> None:
    # A hostile value: every stray BEGIN line is skipped, not matched to the far END.
    ca = make_ca()
    junk = b"-----BEGIN CERTIFICATE-----\n" * 2000

    assert [c.subject for c in pem.certificates(junk + ca.cert_pem)] == [ca.cert.subject]
    assert pem.certificates(junk) == []


def test_an_unreadable_certificate_is_named_by_its_position() -> None:
    ca = make_ca()
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"

    with pytest.raises(ValueError, match="certificate 2 cannot be read"):
        pem.certificates(ca.cert_pem + broken)
