"""Secure Mode credentials: parsing and checking the bootstrap material (spec §7.1-§7.3)."""

from __future__ import annotations

import base64
import datetime
import re
import traceback
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from provd.transport.credentials import (
    ClientCredentials,
    CredentialsError,
    InvalidMaterial,
    WrongPin,
    check_pin_material,
    expiry_warning,
    load_stored,
    parse_nopin,
    parse_pin,
)
from provd.transport.tls import make_context
from tests.bootstrap_material import (
    OPENSSL,
    BootstrapPki,
    b64,
    ca_items,
    corrupt,
    make_bootstrap_pki,
    make_client,
    mismatched_archive,
    nopin_archive,
    openssl_pin_archive,
    pem_bundle,
    pin_archive,
    to_ber,
)
from tests.certs import Issued

PASSWORD = "4711"
NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)

needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="no openssl command")


@pytest.fixture(scope="module")
def boot() -> BootstrapPki:
    return make_bootstrap_pki()


@pytest.fixture(scope="module")
def smd(boot: BootstrapPki) -> str:
    """A good `secure-mode-data` for PASSWORD: client CA in the chain, one server CA."""
    return b64(
        pin_archive(boot.client, PASSWORD, server_cas=[boot.server_ca], chain=[boot.client_ca])
    )


def subjects(certs: tuple[x509.Certificate, ...]) -> list[str]:
    return [c.subject.rfc4514_string() for c in certs]


def wrapped(text: str, width: int = 76) -> str:
    return "\n".join(text[i : i + width] for i in range(0, len(text), width)) + "\n"


# -- nopin (spec §7.1) ------------------------------------------------------------------------


def test_nopin_pkcs12_with_empty_password_gives_key_certificate_and_cas(boot: BootstrapPki) -> None:
    cert = b64(nopin_archive(boot.client, chain=[boot.client_ca]))
    creds = parse_nopin(cert, ca_items(boot.server_ca), NOW)
    assert creds.certificate == boot.client.cert
    assert subjects(creds.chain) == ["CN=phone CA"]
    assert creds.server_cas == (boot.server_ca.cert,)
    assert creds.key_pem() == boot.client.key_pem


def test_nopin_pem_bundle_is_accepted_with_its_chain_issuer_first(boot: BootstrapPki) -> None:
    # The bundle lists an unrelated certificate before the issuer: the issuer still comes first.
    bundle = pem_bundle(boot.client, chain=[boot.other_ca, boot.client_ca])
    creds = parse_nopin(bundle, ca_items(boot.server_ca), NOW)
    assert creds.certificate == boot.client.cert
    assert subjects(creds.chain) == ["CN=phone CA", "CN=impostor CA"]


def test_nopin_accepts_line_wrapped_base64_and_base64_of_a_pem_bundle(boot: BootstrapPki) -> None:
    archive = wrapped(b64(nopin_archive(boot.client)))
    assert parse_nopin(archive, ca_items(boot.server_ca), NOW).certificate == boot.client.cert
    pem_in_b64 = b64(pem_bundle(boot.client).encode())
    assert parse_nopin(pem_in_b64, ca_items(boot.server_ca), NOW).certificate == boot.client.cert


def test_nopin_takes_every_server_ca_item_and_a_der_one_as_courtesy(boot: BootstrapPki) -> None:
    der = b64(boot.other_ca.cert.public_bytes(serialization.Encoding.DER))
    cas = {0: ca_items(boot.server_ca)[0], 1: der}
    creds = parse_nopin(b64(nopin_archive(boot.client)), cas, NOW)
    assert creds.server_cas == (boot.server_ca.cert, boot.other_ca.cert)


def test_nopin_archive_cas_named_dls_server_ca_count_as_server_cas(boot: BootstrapPki) -> None:
    archive = b64(pin_archive(boot.client, None, server_cas=[boot.other_ca]))
    creds = parse_nopin(archive, ca_items(boot.server_ca), NOW)
    assert creds.server_cas == (boot.server_ca.cert, boot.other_ca.cert)
    assert creds.chain == ()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("not base64!", "is not valid Base64"),
        (b64(b"\x30\x03\x02\x01\x03"), "not a PKCS#12 archive"),
    ],
)
def test_nopin_unreadable_client_certificate_is_invalid_data(
    boot: BootstrapPki, value: str, reason: str
) -> None:
    with pytest.raises(InvalidMaterial) as caught:
        parse_nopin(value, ca_items(boot.server_ca), NOW)
    assert caught.value.item_names == ("dls-client-certificate",)
    assert caught.value.item_keys == (("dls-client-certificate", None),)
    assert reason in caught.value.reason


def test_nopin_archive_with_a_password_is_invalid_data(boot: BootstrapPki) -> None:
    archive = b64(pin_archive(boot.client, PASSWORD, server_cas=[boot.server_ca]))
    with pytest.raises(InvalidMaterial) as caught:
        parse_nopin(archive, ca_items(boot.server_ca), NOW)
    assert caught.value.item_names == ("dls-client-certificate",)


@pytest.mark.parametrize("form", ["pkcs12", "pem"])
@pytest.mark.parametrize(
    ("client", "reason"),
    [
        ("expired", "expired on"),
        ("not_yet_valid", "not valid before"),
    ],
)
def test_nopin_client_certificate_outside_its_validity_is_invalid_data(
    boot: BootstrapPki, form: str, client: str, reason: str
) -> None:
    issued = make_client(
        boot.client_ca, expired=client == "expired", not_yet_valid=client == "not_yet_valid"
    )
    value = b64(nopin_archive(issued)) if form == "pkcs12" else pem_bundle(issued)
    with pytest.raises(InvalidMaterial) as caught:
        parse_nopin(value, ca_items(boot.server_ca), NOW)
    assert caught.value.item_names == ("dls-client-certificate",)
    assert reason in caught.value.reason


def test_nopin_validity_is_judged_at_the_given_now(boot: BootstrapPki) -> None:
    value = b64(nopin_archive(boot.client))
    later = boot.client.cert.not_valid_after.replace(tzinfo=datetime.UTC) + DAY
    with pytest.raises(InvalidMaterial, match="expired on"):
        parse_nopin(value, ca_items(boot.server_ca), later)


@pytest.mark.parametrize("form", ["pkcs12", "pem"])
def test_nopin_key_not_matching_the_certificate_is_invalid_data(
    boot: BootstrapPki, form: str
) -> None:
    if form == "pem":
        value = pem_bundle(boot.client, key=boot.server)
    else:
        value = b64(mismatched_archive(boot.client, boot.server, None))
    with pytest.raises(InvalidMaterial) as caught:
        parse_nopin(value, ca_items(boot.server_ca), NOW)
    assert caught.value.item_names == ("dls-client-certificate",)
    assert "match" in caught.value.reason


def test_nopin_encrypted_pem_key_is_invalid_data(boot: BootstrapPki) -> None:
    key = boot.client.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    value = (boot.client.cert_pem + key).decode()
    with pytest.raises(InvalidMaterial, match="encrypted"):
        parse_nopin(value, ca_items(boot.server_ca), NOW)


def test_nopin_without_server_ca_names_the_missing_item(boot: BootstrapPki) -> None:
    with pytest.raises(InvalidMaterial) as caught:
        parse_nopin(b64(nopin_archive(boot.client)), [], NOW)
    assert caught.value.item_keys == (("dls-server-ca", None),)


def test_nopin_names_every_offending_item_with_its_index(boot: BootstrapPki) -> None:
    good = ca_items(boot.server_ca)[0]
    cas = {0: good, 2: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}
    with pytest.raises(InvalidMaterial) as caught:
        parse_nopin("garbage", cas, NOW)
    assert caught.value.item_names == ("dls-client-certificate", "dls-server-ca")
    assert caught.value.item_keys == (("dls-client-certificate", None), ("dls-server-ca", 2))


# -- pin: before the PIN (spec §7.3 step 1) ---------------------------------------------------


def test_pin_material_passes_the_checks_possible_before_the_pin(smd: str) -> None:
    check_pin_material(smd)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("%%%", "not valid Base64"),
        (b64(b"hello, world"), "not a PKCS#12 archive"),
    ],
)
def test_pin_material_that_is_not_pkcs12_is_invalid_data(value: str, reason: str) -> None:
    with pytest.raises(InvalidMaterial) as caught:
        check_pin_material(value)
    assert caught.value.item_names == ("secure-mode-data",)
    assert reason in caught.value.reason


def test_a_certificate_is_not_pin_material(boot: BootstrapPki) -> None:
    der = boot.client.cert.public_bytes(serialization.Encoding.DER)
    with pytest.raises(InvalidMaterial, match="not a PKCS#12 archive"):
        check_pin_material(b64(der))


def test_truncated_pin_material_is_invalid_data(boot: BootstrapPki) -> None:
    archive = pin_archive(boot.client, PASSWORD, server_cas=[boot.server_ca])
    with pytest.raises(InvalidMaterial, match="truncated"):
        check_pin_material(b64(archive[:-40]))


def test_pin_material_opening_without_password_is_refused_before_the_pin(
    boot: BootstrapPki,
) -> None:
    # No PIN could open it: every attempt would count as wrong.
    archive = b64(pin_archive(boot.client, None, server_cas=[boot.server_ca]))
    with pytest.raises(InvalidMaterial, match="empty password"):
        check_pin_material(archive)


def test_ber_encoded_pin_material_is_read(boot: BootstrapPki) -> None:
    archive = pin_archive(boot.client, PASSWORD, server_cas=[boot.server_ca])
    ber = b64(to_ber(archive))
    check_pin_material(ber)
    assert parse_pin(ber, PASSWORD, NOW).certificate == boot.client.cert
    with pytest.raises(WrongPin):
        parse_pin(ber, "4712", NOW)


# -- pin: with the PIN (spec §7.2) ------------------------------------------------------------


@pytest.mark.parametrize("encryption", ["pbes2", "3des"])
def test_right_password_opens_pin_material_and_splits_cas_from_chain(
    boot: BootstrapPki, encryption: str
) -> None:
    archive = pin_archive(
        boot.client,
        PASSWORD,
        server_cas=[boot.server_ca, boot.other_ca],
        chain=[boot.client_ca],
        encryption=encryption,  # type: ignore[arg-type]
    )
    creds = parse_pin(b64(archive), PASSWORD, NOW)
    assert creds.certificate == boot.client.cert
    assert subjects(creds.chain) == ["CN=phone CA"]
    assert subjects(creds.server_cas) == ["CN=dls server CA", "CN=impostor CA"]


@pytest.mark.parametrize("wrong", ["4712", "471", "47111", "", "４７１１"])
def test_wrong_password_is_wrong_pin(smd: str, wrong: str) -> None:
    with pytest.raises(WrongPin):
        parse_pin(smd, wrong, NOW)


def test_non_ascii_password_opens_what_it_encrypted(boot: BootstrapPki) -> None:
    archive = b64(pin_archive(boot.client, "pässwörd", server_cas=[boot.server_ca]))
    assert parse_pin(archive, "pässwörd", NOW).certificate == boot.client.cert
    with pytest.raises(WrongPin):
        parse_pin(archive, "passwort", NOW)


def test_pin_material_damaged_in_transit_fails_like_a_wrong_pin(
    boot: BootstrapPki, smd: str
) -> None:
    # The MAC covers the contents: damage there cannot be told from a wrong password.
    damaged = b64(corrupt(base64.b64decode(smd), at=0.5))
    check_pin_material(damaged)
    with pytest.raises(WrongPin):
        parse_pin(damaged, PASSWORD, NOW)


@pytest.mark.parametrize(
    ("client", "reason"), [("expired", "expired on"), ("not_yet_valid", "not valid before")]
)
def test_pin_material_outside_its_validity_is_invalid_data(
    boot: BootstrapPki, client: str, reason: str
) -> None:
    issued = make_client(
        boot.client_ca, expired=client == "expired", not_yet_valid=client == "not_yet_valid"
    )
    archive = b64(pin_archive(issued, PASSWORD, server_cas=[boot.server_ca]))
    check_pin_material(archive)  # nothing of this shows before the PIN
    with pytest.raises(InvalidMaterial) as caught:
        parse_pin(archive, PASSWORD, NOW)
    assert caught.value.item_names == ("secure-mode-data",)
    assert reason in caught.value.reason


def test_pin_material_whose_key_matches_no_certificate_is_invalid_data(
    boot: BootstrapPki,
) -> None:
    archive = b64(
        mismatched_archive(boot.client, boot.server, PASSWORD, server_cas=[boot.server_ca])
    )
    with pytest.raises(InvalidMaterial) as caught:
        parse_pin(archive, PASSWORD, NOW)
    assert caught.value.item_names == ("secure-mode-data",)
    assert "matches its private key" in caught.value.reason


def test_pin_material_without_a_server_ca_is_invalid_data(boot: BootstrapPki) -> None:
    # The client CA is there, but without the friendly name it is chain, not a server CA.
    archive = b64(pin_archive(boot.client, PASSWORD, server_cas=[], chain=[boot.client_ca]))
    with pytest.raises(InvalidMaterial) as caught:
        parse_pin(archive, PASSWORD, NOW)
    assert caught.value.item_names == ("secure-mode-data",)
    assert "dls-server-ca" in caught.value.reason


@settings(max_examples=60)
@given(position=st.floats(min_value=0.0, max_value=1.0), flip=st.integers(1, 255))
def test_any_damaged_byte_ends_in_one_of_the_three_answers(
    boot: BootstrapPki, smd: str, position: float, flip: int
) -> None:
    raw = bytearray(base64.b64decode(smd))
    pos = min(int(len(raw) * position), len(raw) - 1)
    raw[pos] ^= flip
    try:
        creds = parse_pin(b64(bytes(raw)), PASSWORD, NOW)
    except (InvalidMaterial, WrongPin):
        return
    # A flip in a field neither the MAC nor the structure checks depend on (say, the
    # MAC algorithm's NULL parameters): whatever opens must still be the right material.
    assert creds.certificate == boot.client.cert


# -- the standard tool (spec §7.2: `openssl pkcs12 -export`) ---------------------------------


@needs_openssl
@pytest.mark.parametrize(
    "extra",
    [(), ("-legacy",), ("-macalg", "sha512"), ("-macalg", "sha1", "-iter", "10000")],
    ids=["default", "legacy", "sha512-mac", "sha1-mac"],
)
def test_openssl_made_pin_material_is_accepted(
    boot: BootstrapPki, tmp_path: Path, extra: tuple[str, ...]
) -> None:
    archive = openssl_pin_archive(
        boot.client,
        PASSWORD,
        server_cas=[boot.server_ca, boot.other_ca],
        chain=[boot.client_ca],
        directory=tmp_path,
        extra_args=extra,
    )
    value = b64(archive)
    check_pin_material(value)
    creds = parse_pin(value, PASSWORD, NOW)
    assert creds.certificate == boot.client.cert
    assert subjects(creds.server_cas) == ["CN=dls server CA", "CN=impostor CA"]
    assert subjects(creds.chain) == ["CN=phone CA"]
    with pytest.raises(WrongPin):
        parse_pin(value, "0815", NOW)


@needs_openssl
def test_openssl_archive_without_mac_is_refused_before_the_pin(
    boot: BootstrapPki, tmp_path: Path
) -> None:
    archive = openssl_pin_archive(
        boot.client,
        PASSWORD,
        server_cas=[boot.server_ca],
        directory=tmp_path,
        extra_args=["-nomac"],
    )
    with pytest.raises(InvalidMaterial, match="no integrity check"):
        check_pin_material(b64(archive))


@needs_openssl
def test_unsupported_mac_algorithm_is_refused_before_the_pin(
    boot: BootstrapPki, tmp_path: Path
) -> None:
    archive = openssl_pin_archive(
        boot.client,
        PASSWORD,
        server_cas=[boot.server_ca],
        directory=tmp_path,
        extra_args=["-macalg", "md5"],
    )
    with pytest.raises(InvalidMaterial, match=r"MAC algorithm 1\.2\.840\.113549\.2\.5"):
        check_pin_material(b64(archive))


# -- the credentials ---------------------------------------------------------------------------


def test_credentials_give_the_secure_trust_policy(boot: BootstrapPki, smd: str) -> None:
    creds = parse_pin(smd, PASSWORD, NOW)
    policy = creds.to_trust_policy(check_name=True)
    assert policy.mode == "secure"
    assert policy.check_name
    assert policy.ca_certs == (boot.server_ca.cert,)
    assert policy.client_chain == (boot.client.cert, boot.client_ca.cert)
    make_context(policy)  # OpenSSL takes key and certificate together


def test_rsa_credentials_work_as_well() -> None:
    boot = make_bootstrap_pki(key_type="rsa")
    archive = b64(pin_archive(boot.client, PASSWORD, server_cas=[boot.server_ca]))
    make_context(parse_pin(archive, PASSWORD, NOW).to_trust_policy())


def test_stored_form_round_trips(boot: BootstrapPki, smd: str) -> None:
    creds = parse_pin(smd, PASSWORD, NOW)
    again = load_stored(creds.key_pem(), creds.chain_pem(), creds.server_cas_pem())
    assert again == creds
    assert again.key_pem() == creds.key_pem()


def test_stored_expired_credentials_still_load(boot: BootstrapPki) -> None:
    old = make_client(boot.client_ca, expired=True)
    creds = load_stored(old.key_pem, old.cert_pem, [boot.server_ca.cert_pem])
    assert creds.days_left(NOW) < 0


@pytest.mark.parametrize("broken", ["key", "cas", "chain"])
def test_unusable_stored_credentials_raise(boot: BootstrapPki, broken: str) -> None:
    key = boot.server.key_pem if broken == "key" else boot.client.key_pem
    chain = b"" if broken == "chain" else boot.client.cert_pem
    cas = [] if broken == "cas" else [boot.server_ca.cert_pem]
    with pytest.raises(CredentialsError, match="stored client credentials unusable"):
        load_stored(key, chain, cas)


def test_days_left_and_expiry_warning(boot: BootstrapPki, smd: str) -> None:
    creds = parse_pin(smd, PASSWORD, NOW)
    end = creds.not_after
    assert creds.not_after == boot.client.cert.not_valid_after.replace(tzinfo=datetime.UTC)
    assert creds.days_left(end - 10 * DAY) == 10
    assert creds.days_left(end - 10 * DAY + datetime.timedelta(seconds=1)) == 9
    assert expiry_warning(creds, end - 31 * DAY, 30) is None
    warning = expiry_warning(creds, end - 12 * DAY, 30)
    assert warning == (
        f"client certificate CN=phone-0001 expires on {end.date().isoformat()} (in 12 days)"
    )
    assert (
        expiry_warning(creds, end - datetime.timedelta(hours=2), 0) is None
    )  # 0: off until expired
    assert "in less than a day" in (
        expiry_warning(creds, end - datetime.timedelta(hours=2), 1) or ""
    )
    expired = expiry_warning(creds, end + DAY, 30)
    assert expired == f"client certificate CN=phone-0001 expired on {end.date().isoformat()}"


def test_naive_now_is_taken_as_utc(smd: str) -> None:
    creds = parse_pin(smd, PASSWORD, NOW.replace(tzinfo=None))
    naive_end = creds.not_after.replace(tzinfo=None)
    assert creds.days_left(naive_end - 3 * DAY) == 3


# -- secrets never show ------------------------------------------------------------------------


def secrets_of(issued: Issued, *more: str) -> list[str]:
    """Strings that must never appear: the key PEM's lines, raw key numbers, passwords."""
    lines = [
        line
        for line in issued.key_pem.decode().splitlines()
        if line and not line.startswith("-----")
    ]
    return [*lines, "PRIVATE KEY", *more]


def assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"secret {secret[:6]}... leaked"
    # No Base64 run long enough to be material (a subject or a date is far shorter).
    assert not re.search(r"[A-Za-z0-9+/]{60,}", text)


def test_repr_and_str_of_credentials_show_no_key(boot: BootstrapPki, smd: str) -> None:
    creds = parse_pin(smd, PASSWORD, NOW)
    secrets = secrets_of(boot.client, PASSWORD, smd[:60])
    for text in (repr(creds), str(creds), repr(creds.to_trust_policy())):
        assert_clean(text, secrets)
    assert "CN=phone-0001" in repr(creds)


def test_key_numbers_do_not_show_in_repr(smd: str) -> None:
    creds = parse_pin(smd, PASSWORD, NOW)
    secret = creds.key.private_numbers().private_value  # type: ignore[union-attr]
    assert str(secret) not in repr(creds)
    assert f"{secret:x}" not in repr(creds)


def test_errors_carry_no_material_nor_password(boot: BootstrapPki, smd: str) -> None:
    errors: list[CredentialsError] = []
    mismatched = b64(mismatched_archive(boot.client, boot.server, PASSWORD, server_cas=[]))
    for value, password in [(smd, "9999"), (mismatched, PASSWORD)]:
        with pytest.raises(CredentialsError) as caught:
            parse_pin(value, password, NOW)
        errors.append(caught.value)
    for bad in [pem_bundle(boot.client, key=boot.server), b64(nopin_archive(boot.client))[:-8]]:
        with pytest.raises(CredentialsError) as caught:
            parse_nopin(bad, ["junk"], NOW)
        errors.append(caught.value)
    with pytest.raises(CredentialsError) as caught:
        load_stored(boot.server.key_pem, boot.client.cert_pem, [boot.server_ca.cert_pem])
    errors.append(caught.value)
    secrets = [
        *secrets_of(boot.client, PASSWORD, "9999", smd[:60], mismatched[:60]),
        *secrets_of(boot.server),
    ]
    for error in errors:
        text = "".join(traceback.format_exception(error))
        assert_clean(text, secrets)
        assert error.__context__ is None or error.__suppress_context__


def test_credentials_are_frozen(smd: str) -> None:
    creds = parse_pin(smd, PASSWORD, NOW)
    with pytest.raises(AttributeError):
        creds.chain = ()  # type: ignore[misc]
    assert isinstance(creds, ClientCredentials)
