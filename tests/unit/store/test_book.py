"""CatalogBook: ReadAllItems, ReadItems and WriteItems served from catalog + store."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from provd.store.book import CatalogBook
from provd.store.catalog import Catalog, load_catalog
from provd.store.errors import StoreError
from provd.store.items import Change, ItemStore, Row
from provd.wpi.book import ItemBook
from provd.wpi.codec import emit_workpoint, parse_dls
from provd.wpi.model import Fragment, Item, ItemStatus, Reason, ReplyStatus, WorkpointMessage

CONFIG = Path(__file__).resolve().parents[3] / "config"
PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
SECRET = "Zebra-7731-hunter"  # a value that must never reach a log
Key = tuple[str, int | None]


class MemoryStore:
    """The ItemStore interface in memory, recording commits; can be told to fail."""

    def __init__(self, values: Mapping[Key, str] | None = None) -> None:
        self.values: dict[Key, str] = dict(values or {})
        self.commits: list[list[Change]] = []
        self.fail = False
        self.unreadable = False
        self.changed_flag = False

    def configuration_changed(self) -> bool:
        return self.changed_flag

    def get(self, name: str, index: int | None = None) -> str | None:
        if self.unreadable:
            raise StoreError("item store: reading failed: disk I/O error")
        return self.values.get((name, index))

    def rows(self) -> list[Row]:
        if self.unreadable:
            raise StoreError("item store: reading failed: disk I/O error")
        keys = sorted(self.values, key=lambda k: (k[0], -1 if k[1] is None else k[1]))
        return [Row(name, index, self.values[(name, index)]) for name, index in keys]

    def stored_values(self) -> dict[tuple[str, int | None], str]:
        if self.unreadable:
            raise StoreError("item store: reading failed: disk I/O error")
        return dict(self.values)

    def commit(self, changes: Sequence[Change], *, local: bool = False) -> None:
        if self.fail:
            raise StoreError("item store: commit failed: disk I/O error")
        self.commits.append(list(changes))
        for change in changes:
            if change.value is None:
                self.values.pop((change.name, change.index), None)
            else:
                self.values[(change.name, change.index)] = change.value


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CONFIG / "items.toml", CONFIG / "items.d")


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def book(catalog: Catalog, store: MemoryStore) -> CatalogBook:
    return CatalogBook(catalog, store, dynamic={"mac-addr": "00:01:E3:25:EA:13"})


def test_catalog_book_is_an_item_book(book: CatalogBook) -> None:
    port: ItemBook = book
    assert port is book


# --------------------------------------------------------------------------- ReadAllItems


def test_read_all_gives_stored_value_else_default(book: CatalogBook, store: MemoryStore) -> None:
    store.values[("sntp-addr", None)] = "time.nist.gov"
    items = {item.name: item.value for item in book.read_all()}
    assert items["sntp-addr"] == "time.nist.gov"
    assert items["transaction-timer"] == "32000"  # catalog default [G p.108]
    assert items["mac-addr"] == "00:01:E3:25:EA:13"  # live value


def test_read_all_leaves_out_certificates_write_only_and_valueless_items(
    book: CatalogBook, store: MemoryStore
) -> None:
    store.values[("dls-server-ca", 0)] = PEM
    store.values[("user-pwd", None)] = SECRET
    store.values[("server-based-dnd", None)] = "true"
    names = {item.name for item in book.read_all()}
    assert "dls-server-ca" not in names  # [G p.30]
    assert "user-pwd" not in names  # spec §3.3: write-only
    assert "server-based-dnd" not in names  # not supported
    assert "gigabit-ethernet" not in names  # no value: nothing to report
    assert SECRET not in {item.value for item in book.read_all()}


def test_read_all_orders_by_catalog_then_index(
    catalog: Catalog, book: CatalogBook, store: MemoryStore
) -> None:
    store.values[("forwarding-dest", 12)] = "200"
    store.values[("forwarding-dest", 3)] = "100"
    store.values[("key-label-unicode", 2)] = "Two"
    store.values[("file-deployment-name", None)] = "single.wav"
    store.values[("file-deployment-name", 1)] = "first.wav"
    items = book.read_all()
    positions = [catalog.position(item.name) for item in items]
    assert positions == sorted(positions)
    indexed = [
        (i.name, i.index) for i in items if i.name in ("forwarding-dest", "file-deployment-name")
    ]
    assert indexed == [
        ("file-deployment-name", None),
        ("file-deployment-name", 1),
        ("forwarding-dest", 3),
        ("forwarding-dest", 12),
    ]


def test_read_all_skips_rows_the_catalog_no_longer_allows(
    book: CatalogBook, store: MemoryStore
) -> None:
    store.values[("retired-item", None)] = "x"
    store.values[("forwarding-dest", 5000)] = "out of range"
    store.values[("sntp-addr", 1)] = "indexed scalar"
    items = book.read_all()
    assert all(item.name != "retired-item" for item in items)
    assert ("forwarding-dest", 5000) not in {item.key for item in items}
    assert ("sntp-addr", 1) not in {item.key for item in items}


def test_live_values_may_come_from_a_callable(catalog: Catalog, store: MemoryStore) -> None:
    live = {"software-version": "V3 R1.41.1"}
    book = CatalogBook(catalog, store, dynamic=lambda: live)
    assert ("software-version", "V3 R1.41.1") in {(i.name, i.value) for i in book.read_all()}
    live["software-version"] = "V3 R5.12.0"
    assert book.read([Item(name="software-version")])[0].value == "V3 R5.12.0"


def test_configuration_changed_flag_comes_from_the_store(
    book: CatalogBook, store: MemoryStore
) -> None:
    flag = Item(name="configuration-changed-flag")
    assert book.read([flag]) == (Item(name="configuration-changed-flag", value="false"),)
    store.changed_flag = True
    assert book.read([flag]) == (Item(name="configuration-changed-flag", value="true"),)
    assert ("configuration-changed-flag", "true") in {(i.name, i.value) for i in book.read_all()}


def test_value_of_is_live_else_stored_else_default(book: CatalogBook, store: MemoryStore) -> None:
    store.values[("forwarding-dest", 2)] = "100"
    assert book.value_of("mac-addr") == "00:01:E3:25:EA:13"
    assert book.value_of("forwarding-dest", 2) == "100"
    assert book.value_of("forwarding-dest", 3) == ""  # default
    assert book.value_of("transaction-timer") == "32000"
    assert book.value_of("gigabit-ethernet") is None
    assert book.value_of("socketed-headset-mode") is None


# --------------------------------------------------------------------------- ReadItems


def test_read_answers_values_and_statuses(book: CatalogBook, store: MemoryStore) -> None:
    store.values[("sntp-addr", None)] = "time.nist.gov"
    store.values[("user-pwd", None)] = SECRET
    answer = book.read(
        [
            Item(name="sntp-addr"),
            Item(name="socketed-headset-mode"),
            Item(name="user-pwd"),
            Item(name="mac-addr"),
            Item(name="transaction-timer"),
            Item(name="server-based-dnd"),
            Item(name="gigabit-ethernet"),
        ]
    )
    assert answer == (
        Item(name="sntp-addr", value="time.nist.gov"),
        Item(name="socketed-headset-mode", status=ItemStatus.UNKNOWN_ITEM),
        Item(name="user-pwd", status=ItemStatus.FAILED),  # spec §3.3 [B]
        Item(name="mac-addr", value="00:01:E3:25:EA:13"),
        Item(name="transaction-timer", value="32000"),
        Item(name="server-based-dnd", status=ItemStatus.NOT_SUPPORTED),
        Item(name="gigabit-ethernet", status=ItemStatus.FAILED),  # cannot deliver [G p.33]
    )


def test_read_of_indexed_items(book: CatalogBook, store: MemoryStore) -> None:
    store.values[("ldap-server-address", 1)] = "ldap.example.com"
    store.values[("ldap-server-address", 2)] = "ldap2.example.com"
    answer = book.read(
        [
            Item(name="ldap-server-address"),
            Item(name="ldap-server-address", index=2),
            Item(name="ldap-server-address", index=10),
            Item(name="forwarding-type", index=4),
            Item(name="key-label-unicode"),
            Item(name="forwarding-dest", status=ItemStatus.INVALID_INDEX),
        ]
    )
    assert answer == (
        Item(name="ldap-server-address", value="ldap.example.com", index=1),
        Item(name="ldap-server-address", value="ldap2.example.com", index=2),
        Item(name="ldap-server-address", value="ldap2.example.com", index=2),
        Item(name="ldap-server-address", index=10, status=ItemStatus.INVALID_INDEX),
        Item(name="forwarding-type", value="0", index=4),  # the default of every index
        Item(name="key-label-unicode", status=ItemStatus.FAILED),
        Item(name="forwarding-dest", status=ItemStatus.INVALID_INDEX),
    )


def test_read_of_certificate_is_allowed(book: CatalogBook, store: MemoryStore) -> None:
    store.values[("dls-server-ca", 0)] = PEM
    assert book.read([Item(name="dls-server-ca", index=0)]) == (
        Item(name="dls-server-ca", value=PEM, index=0),
    )


# --------------------------------------------------------------------------- WriteItems


def test_write_commits_all_valid_items_in_one_transaction(
    book: CatalogBook, store: MemoryStore
) -> None:
    outcome = book.write(
        [
            Item(name="sntp-tz-offset", value="60"),
            Item(name="auto-daylight-save", value="true"),
            Item(name="sntp-addr", value="time.nist.gov"),
            Item(name="daylight-save", value="true"),
            Item(name="daylight-save-zone-id", value="9"),
        ]
    )  # [G p.48]
    assert outcome.rejected == () and not outcome.failed
    assert len(store.commits) == 1
    assert store.get("sntp-addr") == "time.nist.gov"
    assert set(outcome.changed) == {
        ("sntp-tz-offset", None),
        ("auto-daylight-save", None),
        ("sntp-addr", None),
        ("daylight-save", None),
        ("daylight-save-zone-id", None),
    }


def test_write_rejects_items_with_empty_status_items_in_received_order(
    book: CatalogBook, store: MemoryStore
) -> None:
    outcome = book.write(
        [
            Item(name="socketed-headset-mode", value="1"),
            Item(name="sntp-addr", value="time.nist.gov"),
            Item(name="device-type", value="OpenStage 75"),
            Item(name="forwarding-type", value="9", index=3),
            Item(name="key-label-unicode", value="No index"),
            Item(name="server-based-dnd", value="true"),
            Item(name="secure-mode-data", value="QUJD"),
        ]
    )
    assert outcome.rejected == (
        Item(name="socketed-headset-mode", status=ItemStatus.UNKNOWN_ITEM),
        Item(name="device-type", status=ItemStatus.READ_ONLY),
        Item(name="forwarding-type", index=3, status=ItemStatus.INVALID_DATA),
        Item(name="key-label-unicode", status=ItemStatus.INVALID_INDEX),
        Item(name="server-based-dnd", status=ItemStatus.NOT_SUPPORTED),
        Item(name="secure-mode-data", status=ItemStatus.UNEXPECTED_ITEM),
    )
    assert store.values == {("sntp-addr", None): "time.nist.gov"}  # rejected ones untouched
    assert outcome.changed == (("sntp-addr", None),)


def test_write_of_the_current_value_is_no_change(book: CatalogBook, store: MemoryStore) -> None:
    store.values[("sntp-addr", None)] = "time.nist.gov"
    outcome = book.write([Item(name="sntp-addr", value="time.nist.gov")])
    assert outcome.changed == () and outcome.rejected == ()
    assert store.commits == []  # nothing to commit: no transaction


def test_write_of_the_default_is_stored_but_no_change(
    book: CatalogBook, store: MemoryStore
) -> None:
    outcome = book.write([Item(name="transaction-timer", value="32000")])
    assert store.get("transaction-timer") == "32000"  # pinned against a new default
    assert outcome.changed == ()


def test_storage_failure_fails_every_item_and_changes_nothing(
    book: CatalogBook, store: MemoryStore
) -> None:
    store.values[("sntp-addr", None)] = "old.example"
    store.fail = True
    outcome = book.write(
        [
            Item(name="sntp-addr", value="time.nist.gov"),
            Item(name="forwarding-dest", value="100", index=2),
            Item(name="device-type", value="OpenStage 75"),
        ]
    )
    assert outcome.failed
    assert outcome.changed == ()
    assert outcome.rejected == (
        Item(name="sntp-addr", status=ItemStatus.FAILED),
        Item(name="forwarding-dest", index=2, status=ItemStatus.FAILED),
        Item(name="device-type", status=ItemStatus.FAILED),
    )
    assert store.values == {("sntp-addr", None): "old.example"}


def test_unreadable_store_fails_writes_and_reads(book: CatalogBook, store: MemoryStore) -> None:
    store.unreadable = True
    written = [Item(name="sntp-addr", value="time.nist.gov")]
    outcome = book.write(written)
    assert outcome.failed
    assert outcome.rejected == (Item(name="sntp-addr", status=ItemStatus.FAILED),)
    assert store.commits == [] and store.values == {}
    many = [Item(name="forwarding-dest", value=str(i), index=i) for i in range(1, 40)]
    assert book.write(many).failed  # the bulk read fails the same way
    assert book.read([Item(name="sntp-addr"), Item(name="forwarding-dest", index=2)]) == (
        Item(name="sntp-addr", status=ItemStatus.FAILED),
        Item(name="forwarding-dest", index=2, status=ItemStatus.FAILED),
    )
    with pytest.raises(StoreError):
        book.read_all()


def test_write_only_secret_is_stored_but_never_read_back(
    book: CatalogBook, store: MemoryStore
) -> None:
    outcome = book.write([Item(name="admin-pwd", value=SECRET)])
    assert outcome.rejected == ()
    assert store.get("admin-pwd") == SECRET  # the phone can use it
    assert book.read([Item(name="admin-pwd")]) == (
        Item(name="admin-pwd", status=ItemStatus.FAILED),
    )
    assert all(item.value != SECRET for item in book.read_all())


def test_dhcp_locked_items_are_read_only_and_settable(
    book: CatalogBook, store: MemoryStore
) -> None:
    book.dhcp_locked = {"dls-addr", "ipaddress"}
    outcome = book.write([Item(name="dls-addr", value="evil.example")])
    assert outcome.rejected == (Item(name="dls-addr", status=ItemStatus.READ_ONLY),)
    book.dhcp_locked = set()
    assert book.write([Item(name="dls-addr", value="dls.example")]).rejected == ()
    assert store.get("dls-addr") == "dls.example"


def test_key_written_twice_keeps_the_later_value(book: CatalogBook, store: MemoryStore) -> None:
    book.write(
        [Item(name="sntp-addr", value="a.example"), Item(name="sntp-addr", value="b.example")]
    )
    assert store.get("sntp-addr") == "b.example"
    assert len(store.commits) == 1 and len(store.commits[0]) == 1


def test_special_items_are_stored_when_no_handler_is_plugged_in(
    book: CatalogBook, store: MemoryStore
) -> None:
    outcome = book.write(
        [
            Item(name="goto-secure-mode", value="nopin"),
            Item(name="dls-server-ca", value=PEM, index=0),
            Item(name="dls-secure-port", value="18444"),
        ]
    )
    assert outcome.rejected == ()
    assert store.get("dls-server-ca", 0) == PEM


def test_special_items_go_to_the_handler_and_its_statuses_are_answered(
    catalog: Catalog, store: MemoryStore
) -> None:
    received: list[Item] = []

    def handler(items: Sequence[Item]) -> Mapping[Key, ItemStatus]:
        received.extend(items)
        return {("dls-client-certificate", None): ItemStatus.INVALID_DATA}

    book = CatalogBook(catalog, store, special=handler)
    client = base64.b64encode(b"not a pkcs12 archive").decode()
    outcome = book.write(
        [
            Item(name="goto-secure-mode", value="nopin"),
            Item(name="dls-client-certificate", value=client),
            Item(name="sntp-addr", value="time.nist.gov"),
        ]
    )
    assert [item.name for item in received] == ["goto-secure-mode", "dls-client-certificate"]
    assert outcome.rejected == (
        Item(name="dls-client-certificate", status=ItemStatus.INVALID_DATA),
    )
    assert store.values == {("sntp-addr", None): "time.nist.gov"}  # specials not stored


def test_special_handler_storage_failure_fails_its_items(
    catalog: Catalog, store: MemoryStore
) -> None:
    def handler(items: Sequence[Item]) -> Mapping[Key, ItemStatus]:
        raise StoreError("secure store: write failed")

    book = CatalogBook(catalog, store, special=handler)
    outcome = book.write([Item(name="goto-secure-mode", value="nopin")])
    assert outcome.rejected == (Item(name="goto-secure-mode", status=ItemStatus.FAILED),)


def test_no_secret_value_reaches_a_log(
    catalog: Catalog, store: MemoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    book = CatalogBook(catalog, store)
    caplog.set_level(logging.DEBUG)
    items = [
        Item(name="admin-pwd", value=SECRET),
        Item(name="sip-pwd", value=SECRET),
        Item(name="user-pwd", value=SECRET + "\x01"),  # rejected as invalid data
        Item(name="file-pwd", value=SECRET, index=1),
    ]
    book.write(items)
    store.fail = True
    book.write(items)
    book.read([Item(name="admin-pwd")])
    assert caplog.records  # the writes were logged
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(vars(record))


# --------------------------------------------------------------------------- through the protocol


def test_write_items_reply_through_the_codec(book: CatalogBook, store: MemoryStore) -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<DLSMessage xmlns="http://www.siemens.com/DLS">
  <Message nonce="9A6439F4E323CDB19283E40459828B56">
    <Action>WriteItems</Action>
    <ItemList>
      <Item name="sntp-addr">time.nist.gov</Item>
      <Item name="socketed-headset-mode">1</Item>
      <Item name="Canonical-lookup-international-code" index="51">00</Item>
      <Item name="device-type">OpenStage 75</Item>
    </ItemList>
  </Message>
</DLSMessage>"""
    message = parse_dls(body)
    outcome = book.write(message.items)
    reply = emit_workpoint(
        WorkpointMessage(
            nonce=message.nonce,
            reason=Reason.REPLY_TO,
            items=outcome.rejected,
            action=message.action,
            status=ReplyStatus.ACCEPTED,
            fragment=Fragment.FINAL,
        )
    )
    assert reply.decode().splitlines()[3:10] == [
        '<ReasonForContact action="WriteItems" status="accepted">reply-to</ReasonForContact>',
        "<ItemList>",
        '<Item name="socketed-headset-mode" status="unknown item"/>',
        '<Item name="Canonical-lookup-international-code" index="51" status="invalid index"/>',
        '<Item name="device-type" status="read only"/>',
        "</ItemList>",
        "</Message>",
    ]
    assert store.values == {("sntp-addr", None): "time.nist.gov"}


def test_round_trip_through_the_real_store(catalog: Catalog, tmp_path: Path) -> None:
    with ItemStore.open(tmp_path / "state") as real:
        book = CatalogBook(catalog, real)
        outcome = book.write(
            [
                Item(name="sntp-addr", value="time.nist.gov"),
                Item(name="forwarding-dest", value="100", index=2),
                Item(name="admin-pwd", value=SECRET),
            ]
        )
        assert outcome.rejected == ()
    with ItemStore.open(tmp_path / "state") as reopened:
        book = CatalogBook(catalog, reopened)
        assert book.read([Item(name="sntp-addr"), Item(name="forwarding-dest", index=2)]) == (
            Item(name="sntp-addr", value="time.nist.gov"),
            Item(name="forwarding-dest", value="100", index=2),
        )
        assert reopened.get("admin-pwd") == SECRET
        assert all(item.name != "admin-pwd" for item in book.read_all())
        assert book.value_of("configuration-changed-flag") == "false"
        reopened.commit([Change("sntp-addr", None, "local.example")], local=True)  # spec §3.5
        assert book.value_of("configuration-changed-flag") == "true"


def test_values_of_reads_the_live_values_once_and_agrees_with_value_of(
    catalog: Catalog, store: MemoryStore
) -> None:
    reads = []

    def live() -> dict[str, str]:
        reads.append(1)
        return {"mac-addr": "00:01:E3:25:EA:13"}

    store.values[("e164", None)] = "4989700"
    book = CatalogBook(catalog, store, dynamic=live)
    names = ["mac-addr", "e164", "sntp-addr", "no-such-item"]
    values = book.values_of(names)
    assert len(reads) == 1
    assert values == {name: book.value_of(name) for name in names}
    assert values["mac-addr"] == "00:01:E3:25:EA:13"
    assert values["e164"] == "4989700"
    assert values["no-such-item"] is None
