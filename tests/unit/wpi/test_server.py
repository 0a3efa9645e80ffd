"""The server's side of an interaction, and the phone and server cores talking to each
other without a network (spec §2.4, §5; issue 2 Done when)."""

from __future__ import annotations

import pytest

from provd.wpi.codec import parse_dls, parse_workpoint
from provd.wpi.errors import LocalProtocolError
from provd.wpi.events import (
    ActionRequested,
    DocumentRefused,
    FragmentReceived,
    InteractionEnded,
    NextFragment,
    PhoneMessageReceived,
    Reply,
)
from provd.wpi.fragment import DEFAULT_MAX_MESSAGE, group_by_name
from provd.wpi.model import Action, Fragment, Item, Reason, ReplyStatus
from provd.wpi.nonce import new_nonce
from provd.wpi.server import ServerSession
from provd.wpi.session import PhoneSession

NONCE = "2253A404241C11D774122654989181BC"
BASIC = (Item(name="mac-addr", value="00:01:E3:25:E1:CB"),)


def _phone(nonce: str = NONCE) -> PhoneSession:
    return PhoneSession(reason=Reason.START_UP, nonce=nonce, items=BASIC)


def test_server_reads_the_phones_first_message_and_echoes_its_nonce() -> None:
    phone = _phone(nonce=NONCE.lower())
    server = ServerSession()
    event = server.receive(phone.start())
    assert isinstance(event, PhoneMessageReceived)
    assert event.message.reason is Reason.START_UP
    assert event.items == BASIC
    assert event.fragments == 1
    assert parse_dls(server.send(Action.READ_ALL_ITEMS)).nonce == NONCE


def test_server_sends_any_action_name_and_a_chosen_nonce() -> None:
    server = ServerSession()
    server.receive(_phone().start())
    message = parse_dls(server.send("Reboot", [Item(name="x", value="1")], nonce="BAD"))
    assert (message.nonce, message.action, message.items) == (
        "BAD",
        "Reboot",
        (Item(name="x", value="1"),),
    )
    assert not server.ended


def test_server_cannot_send_before_the_phone_spoke() -> None:
    with pytest.raises(LocalProtocolError, match="no nonce to echo"):
        ServerSession().send(Action.CLEAN_UP)


def test_clean_up_ends_the_server_side() -> None:
    server = ServerSession()
    server.receive(_phone().start())
    server.send(Action.CLEAN_UP)
    assert server.ended
    with pytest.raises(LocalProtocolError, match="ended"):
        server.receive(_phone().start())


def test_a_malformed_phone_document_is_refused_with_its_reason() -> None:
    event = ServerSession().receive(b"<WorkpointMessage><Message/></WorkpointMessage>")
    assert event == DocumentRefused(reason="missing nonce", answer=b"")


def _five_thousand_items() -> list[Item]:
    """5,000 items: scalars and indexed groups of up to 40 indices, ~80 bytes each."""
    items: list[Item] = []
    group = 0
    while len(items) < 5000:
        size = 1 + (group * 7) % 40
        name = f"item-{group:04d}"
        if size == 1:
            items.append(Item(name=name, value=f"value {group} " + "x" * 40))
        else:
            items.extend(
                Item(name=name, value=f"value {group}.{i} " + "\u00e4" * 20, index=i)
                for i in range(min(size, 5000 - len(items)))
            )
        group += 1
    return items


def test_a_5000_item_read_all_items_is_fragmented_and_reassembled_exactly() -> None:
    items = _five_thousand_items()
    assert len(items) == 5000
    phone = PhoneSession(reason=Reason.START_UP, nonce=new_nonce(bytes), items=BASIC)
    server = ServerSession()
    assert isinstance(server.receive(phone.start()), PhoneMessageReceived)
    assert isinstance(phone.receive(server.send(Action.READ_ALL_ITEMS)), ActionRequested)

    body = phone.send(Reply(status=ReplyStatus.ACCEPTED, items=tuple(items)))
    bodies = [body]
    while True:
        event = server.receive(body)
        if isinstance(event, PhoneMessageReceived):
            break
        assert isinstance(event, FragmentReceived)
        assert event.number == len(bodies)
        assert event.message.fragment is Fragment.NEXT
        answer = phone.receive(server.send(Action.GET_NEXT_FRAGMENT))
        assert isinstance(answer, NextFragment)
        body = answer.answer
        bodies.append(body)

    # Every fragment within 50,000 bytes, each repeating the reply's action and status.
    assert len(bodies) > 1
    assert all(len(fragment) <= DEFAULT_MAX_MESSAGE for fragment in bodies)
    assert event.fragments == len(bodies)
    assert event.message.fragment is Fragment.FINAL
    assert (event.message.action, event.message.status) == ("ReadAllItems", ReplyStatus.ACCEPTED)
    # The server reassembles exactly the original items, in order.
    assert list(event.items) == items
    # Indexed groups kept whole: every name lives in exactly one fragment.
    fragment_of: dict[str, int] = {}
    for number, fragment in enumerate(bodies):
        for item in parse_workpoint(fragment).items or ():
            assert fragment_of.setdefault(item.name, number) == number
    assert len(fragment_of) == len(group_by_name(items))

    assert isinstance(phone.receive(server.send(Action.CLEAN_UP)), InteractionEnded)
    assert phone.succeeded
    assert server.ended


def test_a_new_message_after_a_reassembled_one_starts_afresh() -> None:
    phone = _phone()
    server = ServerSession()
    server.receive(phone.start())
    phone.receive(server.send(Action.READ_ITEMS, [Item(name="mac-addr")]))
    event = server.receive(phone.send(Reply(status=ReplyStatus.ACCEPTED, items=BASIC)))
    assert isinstance(event, PhoneMessageReceived)
    assert (event.items, event.fragments) == (BASIC, 1)
    phone.receive(server.send(Action.WRITE_ITEMS, [Item(name="e164", value="1")]))
    event = server.receive(phone.send(Reply(status=ReplyStatus.ACCEPTED, items=())))
    assert isinstance(event, PhoneMessageReceived)
    assert (event.items, event.fragments) == ((), 1)
