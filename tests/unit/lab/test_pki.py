"""The lab's certificates: a CA, a loopback server certificate, client certificates, PKCS#12."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from provd.lab.pki import (
    SERVER_CA_FRIENDLY_NAME,
    LabPKI,
    as_item_value,
    bootstrap_pkcs12,
    issue,
)
from provd.lab.server import server_context
from provd.transport.tls import spki_sha256


@pytest.fixture(scope="module")
def pki() -> LabPKI:
    return LabPKI.create()


def test_server_certificate_names_loopback_and_chains_to_the_ca(pki: LabPKI) -> None:
    names = pki.server.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("::1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert pki.server.cert.issuer == pki.ca.cert.subject
    assert pki.server.chain == (pki.ca.cert,)


def test_files_written_load_into_an_ssl_server_context(pki: LabPKI, tmp_path: Path) -> None:
    ca_path, cert_path, key_path = pki.write(tmp_path)
    assert key_path.stat().st_mode & 0o077 == 0
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(ca_path))
    assert client.get_ca_certs()[0]["subject"][-1] == (("commonName", "provd lab CA"),)


def test_the_pin_is_what_the_phones_transport_computes(pki: LabPKI) -> None:
    assert pki.server.spki_pin == spki_sha256(pki.server.cert)
    assert len(pki.ca.fingerprint.split(":")) == 32


def test_client_certificates_and_validity_can_be_chosen(pki: LabPKI) -> None:
    phone = pki.issue_client("00:01:E3:25:EA:13")
    usage = phone.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usage
    assert phone.common_name == "00:01:E3:25:EA:13"
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    old = issue(pki.ca, "old", not_before=past, not_after=past + datetime.timedelta(days=1))
    assert old.cert.not_valid_after == past.replace(tzinfo=None) + datetime.timedelta(days=1)


def test_bootstrap_archive_opens_with_the_password_and_marks_the_server_cas(
    pki: LabPKI,
) -> None:
    phone = pki.issue_client("phone")
    data = bootstrap_pkcs12(phone, cas=[pki.ca], password=b"1234")
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(data, b"9999")
    opened = pkcs12.load_pkcs12(data, b"1234")
    assert opened.cert is not None and opened.cert.certificate == phone.cert
    marked = [c for c in opened.additional_certs if c.friendly_name == SERVER_CA_FRIENDLY_NAME]
    assert [c.certificate for c in marked] == [pki.ca.cert]
    unprotected = bootstrap_pkcs12(phone, cas=[pki.ca.cert], password=None)
    assert pkcs12.load_pkcs12(unprotected, None).key is not None
    assert as_item_value(b"\x00\x01") == "AAE="


def test_a_context_with_client_cas_requires_a_client_certificate(
    pki: LabPKI, tmp_path: Path
) -> None:
    _, cert_path, key_path = pki.write(tmp_path)
    assert server_context(cert_path, key_path).verify_mode == ssl.CERT_NONE
    secure = server_context(cert_path, key_path, client_cas=pki.ca.cert_pem)
    assert secure.verify_mode == ssl.CERT_REQUIRED
    assert secure.minimum_version == ssl.TLSVersion.TLSv1_2
