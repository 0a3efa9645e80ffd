"""`respond.answer_item_action`: ReadAllItems, ReadItems, WriteItems from an ItemBook
(spec §3.3, §4.3), with the small in-memory book of `itembook.py`."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from provd.wpi.book import WriteOutcome
from provd.wpi.errors import LocalProtocolError
from provd.wpi.events import ActionRequested, Reply
from provd.wpi.model import Action, DLSMessage, Item, ItemStatus, ReplyStatus
from provd.wpi.respond import answer_item_action, answer_write

from .itembook import MemoryBook


def _request(action: Action, *items: Item) -> ActionRequested:
    message = DLSMessage(nonce="AB", action=action.value, items=items)
    return ActionRequested(action=action, message=message)


def _book() -> MemoryBook:
    return MemoryBook(
        values={
            ("device-type", None): "OpenStage 60",
            ("mac-addr", None): "00:01:E3:25:EA:13",
            ("ldap-server-address", 1): "ldap1.example.com",
            ("ldap-server-address", 2): "ldap2.example.com",
            ("user-pwd", None): "123456",
        }
    )


@pytest.mark.parametrize("busy", [False, True])
def test_read_all_items_answers_every_readable_item(busy: bool) -> None:
    reply = answer_item_action(_request(Action.READ_ALL_ITEMS), _book(), busy=busy)
    assert reply == Reply(
        status=ReplyStatus.ACCEPTED,
        items=(
            Item(name="device-type", value="OpenStage 60"),
            Item(name="mac-addr", value="00:01:E3:25:EA:13"),
            Item(name="ldap-server-address", value="ldap1.example.com", index=1),
            Item(name="ldap-server-address", value="ldap2.example.com", index=2),
        ),
    )


@pytest.mark.parametrize("busy", [False, True])
def test_read_items_answers_the_listed_items_with_statuses(busy: bool) -> None:
    request = _request(
        Action.READ_ITEMS,
        Item(name="mac-addr"),
        Item(name="ldap-server-address", index=2),
        Item(name="socketed-headset-mode"),
        Item(name="user-pwd"),
    )
    reply = answer_item_action(request, _book(), busy=busy)
    assert reply == Reply(
        status=ReplyStatus.ACCEPTED,
        items=(
            Item(name="mac-addr", value="00:01:E3:25:EA:13"),
            Item(name="ldap-server-address", value="ldap2.example.com", index=2),
            Item(name="socketed-headset-mode", status=ItemStatus.UNKNOWN_ITEM),
            Item(name="user-pwd", status=ItemStatus.FAILED),
        ),
    )


def test_write_items_commits_the_valid_items_and_lists_the_rejected_ones() -> None:
    book = _book()
    request = _request(
        Action.WRITE_ITEMS,
        Item(name="sntp-addr", value="time.example.com"),
        Item(name="device-type", value="OpenStage 75"),
        Item(name="socketed-headset-mode", value="0"),
        Item(name="ldap-server-address", value="ldap9.example.com", index=9),
        Item(name="ldap-server-address", value="ldap3.example.com", index=3),
    )
    reply = answer_item_action(request, book, busy=False)
    assert reply == Reply(
        status=ReplyStatus.ACCEPTED,
        items=(
            Item(name="device-type", status=ItemStatus.READ_ONLY),
            Item(name="socketed-headset-mode", status=ItemStatus.UNKNOWN_ITEM),
            Item(name="ldap-server-address", index=9, status=ItemStatus.INVALID_INDEX),
        ),
    )
    assert book.values[("sntp-addr", None)] == "time.example.com"
    assert book.values[("ldap-server-address", 3)] == "ldap3.example.com"
    assert book.values[("device-type", None)] == "OpenStage 60"


def test_write_items_all_valid_gives_an_empty_item_list() -> None:
    reply = answer_item_action(
        _request(Action.WRITE_ITEMS, Item(name="sntp-addr", value="t")), _book(), busy=False
    )
    assert reply == Reply(status=ReplyStatus.ACCEPTED, items=())


def test_write_items_while_busy_is_answered_busy_and_changes_nothing() -> None:
    book = _book()
    before = dict(book.values)
    reply = answer_item_action(
        _request(Action.WRITE_ITEMS, Item(name="sntp-addr", value="t")), book, busy=True
    )
    assert reply == Reply(status=ReplyStatus.BUSY, items=None)
    assert book.values == before
    assert book.written == []


def test_write_items_storage_failure_marks_every_item_failed() -> None:
    book = MemoryBook(storage_fails=True)
    request = _request(
        Action.WRITE_ITEMS,
        Item(name="sntp-addr", value="t"),
        Item(name="Canonical-lookup-local-code", value="561", index=6),
    )
    reply = answer_item_action(request, book, busy=False)
    assert reply == Reply(
        status=ReplyStatus.ACCEPTED,
        items=(
            Item(name="sntp-addr", status=ItemStatus.FAILED),
            Item(name="Canonical-lookup-local-code", index=6, status=ItemStatus.FAILED),
        ),
    )
    assert book.commits == []


@pytest.mark.parametrize(
    "action",
    [
        Action.RESTART,
        Action.CLEAN_UP,
        Action.FILE_DEPLOYMENT,
        Action.SOFTWARE_DEPLOYMENT,
        Action.GET_NEXT_FRAGMENT,
    ],
)
def test_other_actions_are_not_item_actions(action: Action) -> None:
    with pytest.raises(LocalProtocolError, match="not an item action"):
        answer_item_action(_request(action), _book(), busy=False)


def test_items_the_codec_marked_invalid_index_reach_the_book_and_come_back_so() -> None:
    # The ItemBook answers the codec's verdict (provd.store does the same); the core
    # passes the marked items through untouched.
    book = _book()
    marked = Item(name="sntp-addr", value="evil", status=ItemStatus.INVALID_INDEX)
    reply = answer_item_action(_request(Action.WRITE_ITEMS, marked), book, busy=False)
    assert reply == Reply(
        status=ReplyStatus.ACCEPTED,
        items=(Item(name="sntp-addr", status=ItemStatus.INVALID_INDEX),),
    )
    assert book.written == [marked]
    assert ("sntp-addr", None) not in book.values
    read = Item(name="ldap-server-address", status=ItemStatus.INVALID_INDEX)
    reply = answer_item_action(_request(Action.READ_ITEMS, read), book, busy=False)
    assert reply.items == (read,)


class _RefusingBook(MemoryBook):
    """A book that refuses the items named in `bad` as `invalid data`."""

    def __init__(self, *bad: str) -> None:
        super().__init__()
        self.bad = bad

    def write(self, items: Sequence[Item]) -> WriteOutcome:
        rejected = tuple(
            Item(name=i.name, index=i.index, status=ItemStatus.INVALID_DATA)
            for i in items
            if i.name in self.bad
        )
        return WriteOutcome(rejected=rejected)


def test_a_bootstrap_with_invalid_material_is_answered_failed() -> None:
    # spec §7.3 step 1: reply-to failed, the offending items `invalid data`.
    event = _request(
        Action.WRITE_ITEMS,
        Item(name="goto-secure-mode", value="nopin"),
        Item(name="dls-client-certificate", value="garbage"),
    )
    reply, outcome = answer_write(event, _RefusingBook("dls-client-certificate"), busy=False)
    assert reply.status is ReplyStatus.FAILED
    assert reply.items == (Item(name="dls-client-certificate", status=ItemStatus.INVALID_DATA),)
    assert outcome is not None


def test_an_invalid_plain_item_beside_no_bootstrap_stays_accepted() -> None:
    event = _request(Action.WRITE_ITEMS, Item(name="sntp-tz-offset", value="x"))
    reply, _ = answer_write(event, _RefusingBook("sntp-tz-offset"), busy=False)
    assert reply.status is ReplyStatus.ACCEPTED


def test_a_write_while_busy_tries_nothing() -> None:
    book = _book()
    reply, outcome = answer_write(
        _request(Action.WRITE_ITEMS, Item(name="e164", value="1")), book, busy=True
    )
    assert (reply, outcome) == (Reply(status=ReplyStatus.BUSY, items=None), None)
    assert book.written == []
