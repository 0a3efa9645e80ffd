"""Validation of incoming items: every rejected-item status of spec §3.3."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provd.store.catalog import Catalog, load_catalog, load_catalog_files
from provd.store.itemspec import ItemSpec, ItemType
from provd.store.validate import (
    MessageContext,
    check_value,
    is_host,
    validate_item,
    validate_items,
)
from provd.wpi.codec import is_xml_text, parse_dls
from provd.wpi.model import DLSMessage, Item, ItemStatus

CONFIG = Path(__file__).resolve().parents[3] / "config"
WRITE = MessageContext(action="WriteItems")

PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CONFIG / "items.toml", CONFIG / "items.d")


def status(
    catalog: Catalog,
    name: str,
    value: str = "",
    index: int | None = None,
    context: MessageContext = WRITE,
) -> ItemStatus | None:
    return validate_item(Item(name=name, value=value, index=index), catalog, context)


def valid(catalog: Catalog, name: str, value: str) -> bool:
    spec = catalog.get(name)
    assert spec is not None, name
    return check_value(spec, value)


# --------------------------------------------------------------------------- statuses


def test_valid_item_has_no_status(catalog: Catalog) -> None:
    assert status(catalog, "sntp-addr", "time.nist.gov") is None


def test_name_not_in_catalog_is_unknown_item(catalog: Catalog) -> None:
    assert status(catalog, "socketed-headset-mode", "1") is ItemStatus.UNKNOWN_ITEM


def test_names_are_case_sensitive(catalog: Catalog) -> None:
    assert status(catalog, "SNTP-addr", "time.nist.gov") is ItemStatus.UNKNOWN_ITEM


def test_write_of_read_only_item_is_read_only(catalog: Catalog) -> None:
    assert status(catalog, "device-type", "OpenStage 75") is ItemStatus.READ_ONLY  # [G p.83]


def test_write_of_dhcp_locked_item_is_read_only(catalog: Catalog) -> None:
    item = Item(name="dls-addr", value="dls.example.com")
    locked = validate_item(item, catalog, WRITE, dhcp_locked=frozenset({"dls-addr"}))
    assert locked is ItemStatus.READ_ONLY  # [G p.16]
    assert validate_item(item, catalog, WRITE, dhcp_locked=frozenset({"sntp-addr"})) is None


def test_indexed_item_without_index_is_invalid_index(catalog: Catalog) -> None:
    assert status(catalog, "key-label-unicode", "Line 1") is ItemStatus.INVALID_INDEX


def test_scalar_item_with_index_is_invalid_index(catalog: Catalog) -> None:
    assert status(catalog, "sntp-addr", "time.nist.gov", index=1) is ItemStatus.INVALID_INDEX


def test_index_outside_range_is_invalid_index(catalog: Catalog) -> None:
    assert status(catalog, "dls-server-ca", PEM, index=0) is None
    assert status(catalog, "dls-server-ca", PEM, index=10) is ItemStatus.INVALID_INDEX
    assert status(catalog, "Canonical-lookup-local-code", "89", index=6) is None
    assert status(catalog, "Canonical-lookup-local-code", "89", 0) is ItemStatus.INVALID_INDEX
    assert status(catalog, "Canonical-lookup-local-code", "89", 51) is ItemStatus.INVALID_INDEX


def test_index_optional_item_takes_both_forms(catalog: Catalog) -> None:
    assert status(catalog, "file-name", "ring.wav") is None  # single file [G p.53]
    assert status(catalog, "file-name", "ring.wav", index=1) is None  # several [G p.55]
    assert status(catalog, "file-name", "ring.wav", index=100) is ItemStatus.INVALID_INDEX


def test_index_the_codec_could_not_read_is_invalid_index(catalog: Catalog) -> None:
    body = (
        b'<DLSMessage><Message nonce="AB"><Action>WriteItems</Action><ItemList>'
        b'<Item name="forwarding-dest" index="one">100</Item>'
        b'<Item name="no-such-item" index="x">1</Item>'
        b"</ItemList></Message></DLSMessage>"
    )
    message = parse_dls(body)
    statuses = validate_items(message.items, catalog, MessageContext.of(message))
    assert statuses == [ItemStatus.INVALID_INDEX, ItemStatus.UNKNOWN_ITEM]


def test_value_outside_limits_is_invalid_data(catalog: Catalog) -> None:
    assert status(catalog, "transaction-timer", "3699") is ItemStatus.INVALID_DATA
    assert status(catalog, "transaction-timer", "3700") is None
    assert status(catalog, "forwarding-type", "9", index=1) is ItemStatus.INVALID_DATA


def test_control_character_is_invalid_data(catalog: Catalog) -> None:
    assert status(catalog, "realm", "bad\x01realm") is ItemStatus.INVALID_DATA  # spec §2.3


def test_known_but_unimplemented_item_is_not_supported(catalog: Catalog) -> None:
    assert status(catalog, "server-based-dnd", "true") is ItemStatus.NOT_SUPPORTED


def test_goto_secure_mode_outside_write_items_is_unexpected(catalog: Catalog) -> None:
    cleanup = MessageContext(action="CleanUp")
    assert status(catalog, "goto-secure-mode", "pin", context=cleanup) is (
        ItemStatus.UNEXPECTED_ITEM
    )
    assert status(catalog, "goto-secure-mode", "pin") is None


def test_secure_mode_data_needs_goto_secure_mode_pin_in_same_message(catalog: Catalog) -> None:
    data = Item(name="secure-mode-data", value=base64.b64encode(b"p12").decode())

    def with_goto(value: str | None) -> ItemStatus | None:
        items = [data] if value is None else [Item(name="goto-secure-mode", value=value), data]
        return validate_items(items, catalog, MessageContext.write_items(items))[-1]

    assert with_goto(None) is ItemStatus.UNEXPECTED_ITEM
    assert with_goto("nopin") is ItemStatus.UNEXPECTED_ITEM
    assert with_goto("pin") is None


def test_cleanup_and_restart_items_only_belong_to_their_messages(catalog: Catalog) -> None:
    assert status(catalog, "cleanup-reason", "x") is ItemStatus.UNEXPECTED_ITEM
    assert status(catalog, "send-solicited", "true", context=MessageContext(action="CleanUp")) is (
        None
    )
    restart = MessageContext(action="Restart")
    assert status(catalog, "restart-password", "124816", context=restart) is None
    assert status(catalog, "restart-password", "000000", context=restart) is (
        ItemStatus.INVALID_DATA  # spec §6.3 [B]
    )


def test_context_of_a_parsed_message(catalog: Catalog) -> None:
    message = DLSMessage(
        nonce="AB",
        action="WriteItems",
        items=(Item(name="goto-secure-mode", value="pin"),),
    )
    context = MessageContext.of(message)
    assert context.action == "WriteItems"
    assert context.carries("goto-secure-mode", "pin")
    assert not context.carries("goto-secure-mode", "nopin")


def test_first_problem_decides_the_status(catalog: Catalog) -> None:
    # read-only beats index and value; unknown beats everything.
    assert status(catalog, "device-type", "\x01", index=3) is ItemStatus.READ_ONLY
    assert status(catalog, "server-based-dnd", "maybe", index=3) is ItemStatus.NOT_SUPPORTED


# --------------------------------------------------------------------------- types


def test_int_is_ascii_decimal_in_range(catalog: Catalog) -> None:
    for good in ("32000", "+4000", "3700"):
        assert valid(catalog, "transaction-timer", good), good
    for bad in ("32001", " 4000", "4000 ", "4_000", "٤٠٠٠", "4e3", "0x1000", ""):
        assert not valid(catalog, "transaction-timer", bad), bad
    assert valid(catalog, "sntp-tz-offset", "-60")


def test_int_choices_and_exclusions(catalog: Catalog) -> None:
    assert [v for v in map(str, range(7)) if valid(catalog, "pwd-retries", v)] == [
        "0",
        "2",
        "3",
        "4",
        "5",
    ]
    assert valid(catalog, "pwd-sequence-length", "0")
    assert not valid(catalog, "pwd-sequence-length", "1")  # [G p.197] "but not 1"
    assert valid(catalog, "pwd-sequence-length", "24")
    assert not valid(catalog, "pwd-sequence-length", "25")


def test_bool_is_exactly_true_or_false(catalog: Catalog) -> None:
    assert valid(catalog, "dhcp", "true") and valid(catalog, "dhcp", "false")
    for bad in ("True", "1", "yes", "", "false "):
        assert not valid(catalog, "dhcp", bad), bad


def test_enum_is_case_sensitive(catalog: Catalog) -> None:
    assert valid(catalog, "goto-secure-mode", "nopin")
    assert not valid(catalog, "goto-secure-mode", "PIN")


def test_string_length_counts_characters(catalog: Catalog) -> None:
    assert valid(catalog, "key-label-unicode", "ä" * 24)  # [G p.122] max 24
    assert not valid(catalog, "key-label-unicode", "ä" * 25)
    assert valid(catalog, "key-label-unicode", "")


def test_ip_takes_v4_and_v6(catalog: Catalog) -> None:
    for good in ("192.168.1.4", "2001:db8::1", "::1"):
        assert valid(catalog, "ipaddress", good), good
    for bad in ("192.168.1.256", "192.168.01.4", "host.example", "1.2.3"):
        assert not valid(catalog, "ipaddress", bad), bad
    assert valid(catalog, "ipaddress", "")  # nullable


def test_host_takes_names_and_addresses() -> None:
    for good in ("time.nist.gov", "dls", "a-b.example.", "10.0.0.1", "fe80::1"):
        assert is_host(good), good
    for bad in ("-dls.example", "dls..example", "a b", "1.2.3.999", "x" * 64, "dls_x", ""):
        assert not is_host(bad), bad


def test_mac_is_six_hex_pairs(catalog: Catalog) -> None:
    assert valid(catalog, "mac-addr", "00:01:E3:25:EA:13")
    for bad in ("00-01-E3-25-EA-13", "0001E325EA13", "00:01:E3:25:EA", "00:01:E3:25:EA:1G"):
        assert not valid(catalog, "mac-addr", bad), bad


def test_uri_needs_an_allowed_scheme_and_a_host(catalog: Catalog) -> None:
    assert valid(catalog, "dcmp-url", "http://dcmp-server:8080/dcmp/")
    assert valid(catalog, "dcmp-url", "https://[2001:db8::1]/dcmp/")
    for bad in ("ftp://host/", "http:///path", "http://host:99999/", "http://a b/", "host/x"):
        assert not valid(catalog, "dcmp-url", bad), bad
    assert valid(catalog, "file-https-base-url", "https://192.168.1.150/media/ring.wav")
    assert not valid(catalog, "file-https-base-url", "http://192.168.1.150/media/ring.wav")


def test_pem_needs_matching_begin_and_end(catalog: Catalog) -> None:
    assert valid(catalog, "dls-server-ca", PEM)
    assert not valid(catalog, "dls-server-ca", "-----BEGIN CERTIFICATE-----\nMIIB\n")
    assert not valid(catalog, "dls-server-ca", PEM.replace("END CERTIFICATE", "END KEY"))


def test_base64_decodes_strictly_but_allows_line_breaks(catalog: Catalog) -> None:
    encoded = base64.b64encode(bytes(range(200))).decode()
    wrapped = "\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))
    assert valid(catalog, "wbm-server-certificate", encoded)
    assert valid(catalog, "wbm-server-certificate", wrapped)
    for bad in (encoded[:-1], encoded + "!", "not base64", "===="):
        assert not valid(catalog, "wbm-server-certificate", bad), bad


def test_client_certificate_takes_pkcs12_base64_or_pem_bundle(catalog: Catalog) -> None:
    assert valid(catalog, "dls-client-certificate", base64.b64encode(b"\x30\x82").decode())
    key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
    assert valid(catalog, "dls-client-certificate", PEM + key)
    assert not valid(catalog, "dls-client-certificate", "certificate")


def test_date_and_time_are_the_guides_forms(catalog: Catalog) -> None:
    spec_date = catalog.get("file-deployment-date")
    spec_time = catalog.get("file-deployment-time")
    assert spec_date is not None and spec_time is not None
    assert check_value(spec_date, "10:06:2008")  # [G p.54]
    assert not check_value(spec_date, "31:02:2008")
    assert not check_value(spec_date, "2008-06-10")
    assert check_value(spec_time, "15:35:52")
    assert not check_value(spec_time, "24:00:00")
    assert not check_value(spec_time, "15:35")


def test_e164_and_digits(catalog: Catalog) -> None:
    assert valid(catalog, "e164", "49897223290")
    assert valid(catalog, "e164", "+49897223290")
    assert not valid(catalog, "e164", "0049 89")
    assert valid(catalog, "Canonical-dialing-international-prefix", "00")
    assert not valid(catalog, "Canonical-dialing-international-prefix", "+")


def test_empty_value_only_where_the_entry_allows_it(tmp_path: Path) -> None:
    path = tmp_path / "items.toml"
    path.write_text(
        '[item."n"]\ntype = "int"\nnullable = true\n[item."i"]\ntype = "int"\n'
        '[item."s"]\ntype = "string"\nmin_length = 1\n',
        encoding="utf-8",
    )
    catalog = load_catalog_files([path])
    assert valid(catalog, "n", "")
    assert not valid(catalog, "i", "")
    assert not valid(catalog, "s", "")


RANGE = Catalog([ItemSpec(name="r", type=ItemType.INT, min=3700, max=32000)])


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_int_range_check_agrees_with_arithmetic(number: int) -> None:
    assert valid(RANGE, "r", str(number)) == (3700 <= number <= 32000)


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=8))
def test_control_character_rule_is_the_codecs(text: str) -> None:
    # Validation refuses exactly what the codec cannot emit.
    spec = ItemSpec(name="s", type=ItemType.STRING)
    assert check_value(spec, text) == is_xml_text(text)


def test_a_pem_value_of_repeated_begin_lines_is_invalid_data(catalog: Catalog) -> None:
    # A hostile dls-server-ca: every BEGIN and no END. The PEM rule only takes
    # Base64 between BEGIN and END, so it cannot run past another BEGIN line.
    hostile = "-----BEGIN A-----\n" * 4000
    assert status(catalog, "dls-server-ca", hostile, 0) is ItemStatus.INVALID_DATA
    nested = "-----BEGIN CERTIFICATE-----\n-----BEGIN X-----\nQUJD\n-----END CERTIFICATE-----"
    assert status(catalog, "dls-server-ca", nested, 0) is ItemStatus.INVALID_DATA


def test_requires_is_checked_against_the_whole_message_however_long(catalog: Catalog) -> None:
    items = [Item(name="secure-mode-data", value="QUJD")] * 5000
    context = MessageContext.write_items(items)
    assert {validate_item(i, catalog, context) for i in items} == {ItemStatus.UNEXPECTED_ITEM}
    with_pin = [Item(name="goto-secure-mode", value="pin"), *items]
    context = MessageContext.write_items(with_pin)
    assert validate_item(items[0], catalog, context) is None
