"""Every rejected-item status of spec §3.3, through the protocol.

The server's WriteItems goes into a real `PhoneSession`, is answered from the
shipped catalog and a real item store on disk, and the phone's reply comes out:
its exact lines are checked, and so is the store — the valid item committed,
the rejected one unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from provd.store.book import CatalogBook
from provd.store.catalog import Catalog, load_catalog
from provd.store.items import Change, ItemStore
from provd.wpi.codec import emit_dls
from provd.wpi.events import ActionRequested
from provd.wpi.model import DLSMessage, Item, Reason
from provd.wpi.respond import answer_item_action
from provd.wpi.session import PhoneSession

CATALOG = Path(__file__).resolve().parents[3] / "config" / "items.toml"
NONCE = "9A6439F4E323CDB19283E40459828B56"
VALID = Item(name="sntp-addr", value="time.example.com")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CATALOG)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ItemStore]:
    with ItemStore.open(tmp_path / "state") as opened:
        # What the phone had before the server's message.
        opened.commit([Change("sntp-tz-offset", None, "60"), Change("e164", None, "4989700")])
        yield opened


def reply_lines(book: CatalogBook, items: tuple[Item, ...], raw: bytes | None = None) -> list[str]:
    """The lines of the phone's reply between <Message> and </Message>."""
    session = PhoneSession(reason=Reason.SOLICITED, nonce=NONCE, items=())
    session.start()
    body = raw or emit_dls(DLSMessage(nonce=NONCE, action="WriteItems", items=items))
    event = session.receive(body)
    assert isinstance(event, ActionRequested)
    reply = session.send(answer_item_action(event, book, busy=False)).decode()
    lines = reply.splitlines()
    return lines[lines.index(next(x for x in lines if x.startswith("<Message"))) + 1 : -2]


ACCEPTED = '<ReasonForContact action="WriteItems" status="accepted">reply-to</ReasonForContact>'

CASES = {
    # name not in the catalog [G p.78]
    "unknown item": (
        Item(name="socketed-headset-mode", value="1"),
        '<Item name="socketed-headset-mode" status="unknown item"/>',
    ),
    # read-only item [G p.83]
    "read only": (
        Item(name="device-type", value="OpenStage 75"),
        '<Item name="device-type" status="read only"/>',
    ),
    # index missing on an indexed item
    "invalid index, missing": (
        Item(name="Canonical-lookup-international-code", value="00"),
        '<Item name="Canonical-lookup-international-code" status="invalid index"/>',
    ),
    # index on a scalar item
    "invalid index, on a scalar": (
        Item(name="sntp-tz-offset", value="120", index=1),
        '<Item name="sntp-tz-offset" index="1" status="invalid index"/>',
    ),
    # index out of range (1-50)
    "invalid index, out of range": (
        Item(name="Canonical-lookup-international-code", value="00", index=51),
        '<Item name="Canonical-lookup-international-code" index="51" status="invalid index"/>',
    ),
    # value outside the item's limits (-720..840 minutes)
    "invalid data": (
        Item(name="sntp-tz-offset", value="9999"),
        '<Item name="sntp-tz-offset" status="invalid data"/>',
    ),
    # known, not implemented on this phone
    "not supported": (
        Item(name="server-based-features", value="true"),
        '<Item name="server-based-features" status="not supported"/>',
    ),
    # secure-mode-data without goto-secure-mode=pin (spec §3.3 [B])
    "unexpected item": (
        Item(name="secure-mode-data", value="QUJD"),
        '<Item name="secure-mode-data" status="unexpected item"/>',
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_rejected_status_comes_back_exactly_and_leaves_the_item_alone(
    case: str, catalog: Catalog, store: ItemStore
) -> None:
    rejected, line = CASES[case]
    before = store.get(rejected.name, rejected.index)
    lines = reply_lines(CatalogBook(catalog, store), (VALID, rejected))
    assert lines == [ACCEPTED, "<ItemList>", line, "</ItemList>"]
    assert store.get("sntp-addr") == "time.example.com"  # the valid one is committed
    assert store.get(rejected.name, rejected.index) == before


def test_a_dhcp_locked_item_is_read_only(catalog: Catalog, store: ItemStore) -> None:
    # [G p.16] what DHCP set, no interface may change.
    book = CatalogBook(catalog, store, dhcp_locked=["e164"])
    lines = reply_lines(book, (VALID, Item(name="e164", value="111")))
    assert lines == [
        ACCEPTED,
        "<ItemList>",
        '<Item name="e164" status="read only"/>',
        "</ItemList>",
    ]
    assert store.get("e164") == "4989700"


def test_a_malformed_index_is_invalid_index(catalog: Catalog, store: ItemStore) -> None:
    raw = (
        f'<DLSMessage><Message nonce="{NONCE}"><Action>WriteItems</Action><ItemList>'
        '<Item name="sntp-addr">time.example.com</Item>'
        '<Item name="Canonical-lookup-international-code" index="x">00</Item>'
        "</ItemList></Message></DLSMessage>"
    ).encode()
    lines = reply_lines(CatalogBook(catalog, store), (), raw)
    assert lines == [
        ACCEPTED,
        "<ItemList>",
        '<Item name="Canonical-lookup-international-code" status="invalid index"/>',
        "</ItemList>",
    ]


def test_all_accepted_is_an_empty_item_list(catalog: Catalog, store: ItemStore) -> None:
    # [G p.48] an accepted WriteItems with nothing rejected: <ItemList/>
    assert reply_lines(CatalogBook(catalog, store), (VALID,)) == [ACCEPTED, "<ItemList/>"]


def test_a_storage_failure_commits_nothing_and_fails_every_item(
    catalog: Catalog, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with ItemStore.open(state) as fresh:
        fresh.commit([Change("sntp-tz-offset", None, "60")])

    def failing(path: str) -> sqlite3.Connection:
        # An I/O error in the middle of the commit, as a dying flash would give.
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute(
            "CREATE TEMP TRIGGER fail AFTER INSERT ON items"
            " BEGIN SELECT RAISE(FAIL, 'disk I/O error'); END"
        )
        return conn

    with ItemStore.open(state, connect=failing) as broken:
        items = (VALID, Item(name="sntp-tz-offset", value="120"))
        lines = reply_lines(CatalogBook(catalog, broken), items)
        assert lines == [
            ACCEPTED,
            "<ItemList>",
            '<Item name="sntp-addr" status="failed"/>',
            '<Item name="sntp-tz-offset" status="failed"/>',
            "</ItemList>",
        ]
    with ItemStore.open(state) as after:
        assert after.get("sntp-addr") is None
        assert after.get("sntp-tz-offset") == "60"
