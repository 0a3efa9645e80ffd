"""The phone's side of one interaction (spec §3.1, §3.3, §3.4, §4.3, §5)."""

from __future__ import annotations

import pytest

from provd.wpi.codec import emit_dls, envelope_size, item_size, parse_workpoint
from provd.wpi.errors import LocalProtocolError
from provd.wpi.events import (
    ActionRequested,
    AutoAnswer,
    DocumentRefused,
    Ending,
    InteractionEnded,
    NextFragment,
    PhoneCleanUp,
    Reply,
    StatusReport,
    UnknownAction,
)
from provd.wpi.model import (
    Action,
    DLSMessage,
    Fragment,
    Item,
    ItemStatus,
    Reason,
    ReplyStatus,
    WorkpointMessage,
)
from provd.wpi.nonce import NonceCheck
from provd.wpi.session import PhoneSession, SessionConfig
from provd.wpi.states import State

NONCE = "b0151b36fe9ceea0f667ff3a208ac994"
BASIC = (
    Item(name="device-type", value="OpenStage 60"),
    Item(name="mac-addr", value="00:01:E3:25:EA:13"),
    Item(name="e164", value="49897223290"),
)
OPENING_REASONS = [r for r in Reason if r not in (Reason.REPLY_TO, Reason.CLEAN_UP)]


def _state(session: PhoneSession) -> State:
    # A call, so mypy does not narrow the state across the session's methods.
    return session.state


def _server(action: str | Action, *items: Item, nonce: str = NONCE) -> bytes:
    name = action.value if isinstance(action, Action) else action
    return emit_dls(DLSMessage(nonce=nonce, action=name, items=items))


def _started(config: SessionConfig | None = None) -> PhoneSession:
    session = PhoneSession(reason=Reason.SOLICITED, nonce=NONCE, items=BASIC, config=config)
    session.start()
    return session


def _acting(action: Action, *items: Item, config: SessionConfig | None = None) -> PhoneSession:
    session = _started(config)
    event = session.receive(_server(action, *items))
    assert isinstance(event, ActionRequested)
    assert event.action is action
    assert _state(session) is State.ACTING
    assert session.action == action.value
    return session


def _reply(
    action: str,
    status: ReplyStatus,
    items: tuple[Item, ...] | None,
    fragment: Fragment = Fragment.FINAL,
) -> WorkpointMessage:
    return WorkpointMessage(
        nonce=NONCE.upper(),
        reason=Reason.REPLY_TO,
        items=items,
        action=action,
        status=status,
        fragment=fragment,
    )


def _end(session: PhoneSession) -> None:
    event = session.receive(_server(Action.CLEAN_UP))
    assert isinstance(event, InteractionEnded)
    assert _state(session) is State.DONE
    assert session.succeeded


# --------------------------------------------------------------------------- opening (§3.1)


@pytest.mark.parametrize("reason", OPENING_REASONS)
def test_every_reason_opens_an_interaction(reason: Reason) -> None:
    session = PhoneSession(reason=reason, nonce=NONCE, items=BASIC)
    assert _state(session) is State.READY
    message = parse_workpoint(session.start())
    # spec §2.1 [B]: the first message carries maxItems="-1" and no fragment.
    assert message == WorkpointMessage(nonce=NONCE.upper(), reason=reason, items=BASIC)
    assert _state(session) is State.AWAITING_SERVER
    _end(session)


def test_reply_to_cannot_open_an_interaction() -> None:
    with pytest.raises(LocalProtocolError, match="reply-to"):
        PhoneSession(reason=Reason.REPLY_TO, nonce=NONCE, items=())


def test_an_interaction_opened_with_clean_up_ends_after_any_response() -> None:
    reason = Item(name="cleanup-reason", value="password retries exceeded")
    session = PhoneSession(reason=Reason.CLEAN_UP, nonce=NONCE, items=(reason,))
    message = parse_workpoint(session.start())
    # [G p.83] clean-up: no attributes on ReasonForContact, maxItems -1, fragment final.
    assert message == WorkpointMessage(
        nonce=NONCE.upper(), reason=Reason.CLEAN_UP, items=(reason,), fragment=Fragment.FINAL
    )
    assert _state(session) is State.CLOSING
    assert session.receive(b"<not even xml") == InteractionEnded(ending=Ending.EMPTY)
    assert _state(session) is State.DONE


# --------------------------------------------------------------------------- actions (§3.3)


def test_read_all_items_is_answered_with_all_items() -> None:
    session = _acting(Action.READ_ALL_ITEMS)
    body = session.send(Reply(status=ReplyStatus.ACCEPTED, items=BASIC))
    assert parse_workpoint(body) == _reply("ReadAllItems", ReplyStatus.ACCEPTED, BASIC)
    assert _state(session) is State.AWAITING_SERVER
    _end(session)


def test_read_items_passes_the_request_and_answers_the_items() -> None:
    session = _started()
    event = session.receive(_server(Action.READ_ITEMS, Item(name="mac-addr"), Item(name="x")))
    assert isinstance(event, ActionRequested)
    assert event.items == (Item(name="mac-addr"), Item(name="x"))
    answer = (BASIC[1], Item(name="x", status=ItemStatus.UNKNOWN_ITEM))
    body = session.send(Reply(status=ReplyStatus.ACCEPTED, items=answer))
    assert parse_workpoint(body) == _reply("ReadItems", ReplyStatus.ACCEPTED, answer)


def test_write_items_accepted_lists_only_the_rejected_items() -> None:
    written = (Item(name="sntp-addr", value="t"), Item(name="device-type", value="OpenStage 75"))
    session = _acting(Action.WRITE_ITEMS, *written)
    rejected = (Item(name="device-type", status=ItemStatus.READ_ONLY),)
    body = session.send(Reply(status=ReplyStatus.ACCEPTED, items=rejected))
    assert parse_workpoint(body) == _reply("WriteItems", ReplyStatus.ACCEPTED, rejected)
    assert b'<Item name="device-type" status="read only"/>' in body


def test_write_items_busy_has_no_item_list() -> None:
    session = _acting(Action.WRITE_ITEMS, Item(name="sntp-addr", value="t"))
    body = session.send(Reply(status=ReplyStatus.BUSY, items=None))
    assert parse_workpoint(body) == _reply("WriteItems", ReplyStatus.BUSY, None)
    assert b"ItemList" not in body


def _one_item(item: Item) -> int:
    """A max-message that lets exactly `item` (or one item of its size) into a fragment."""
    return envelope_size(_reply("ReadAllItems", ReplyStatus.ACCEPTED, ())) + item_size(item)


def test_get_next_fragment_sends_each_fragment_in_turn() -> None:
    items = tuple(Item(name=f"item-{n}", value="v" * 50) for n in range(3))
    session = _acting(Action.READ_ALL_ITEMS, config=SessionConfig(max_message=_one_item(items[0])))
    first = parse_workpoint(session.send(Reply(status=ReplyStatus.ACCEPTED, items=items)))
    assert first == _reply("ReadAllItems", ReplyStatus.ACCEPTED, items[:1], Fragment.NEXT)
    for number in (2, 3):
        event = session.receive(_server(Action.GET_NEXT_FRAGMENT))
        assert isinstance(event, NextFragment)
        assert (event.number, event.total) == (number, 3)
        assert event.note == f"fragment {number} of 3"
        fragment = Fragment.FINAL if number == 3 else Fragment.NEXT
        assert parse_workpoint(event.answer) == _reply(
            "ReadAllItems", ReplyStatus.ACCEPTED, items[number - 1 : number], fragment
        )
        assert _state(session) is State.AWAITING_SERVER
    _end(session)


def test_get_next_fragment_with_nothing_pending_is_answered_failed() -> None:
    session = _started()
    event = session.receive(_server(Action.GET_NEXT_FRAGMENT))
    assert type(event) is AutoAnswer
    assert parse_workpoint(event.answer) == _reply("GetNextFragment", ReplyStatus.FAILED, ())
    assert _state(session) is State.AWAITING_SERVER


def test_another_action_during_fragmentation_abandons_the_rest() -> None:
    items = tuple(Item(name=f"item-{n}", value="v" * 50) for n in range(3))
    config = SessionConfig(max_message=_one_item(items[0]))
    session = _acting(Action.READ_ALL_ITEMS, config=config)
    body = session.send(Reply(status=ReplyStatus.ACCEPTED, items=items))
    assert parse_workpoint(body).fragment is Fragment.NEXT
    event = session.receive(_server(Action.READ_ITEMS, Item(name="mac-addr")))
    assert isinstance(event, ActionRequested)
    session.send(Reply(status=ReplyStatus.ACCEPTED, items=(BASIC[1],)))
    event = session.receive(_server(Action.GET_NEXT_FRAGMENT))
    assert type(event) is AutoAnswer
    assert parse_workpoint(event.answer).status is ReplyStatus.FAILED


def test_small_replies_and_non_read_replies_are_never_fragmented() -> None:
    big = tuple(Item(name=f"item-{n}", value="v" * 50) for n in range(20))
    config = SessionConfig(max_message=_one_item(big[0]))
    session = _acting(Action.WRITE_ITEMS, config=config)
    body = session.send(Reply(status=ReplyStatus.ACCEPTED, items=big))
    assert parse_workpoint(body).fragment is Fragment.FINAL
    session = _acting(Action.READ_ALL_ITEMS, config=config)
    body = session.send(Reply(status=ReplyStatus.FAILED, items=big))
    assert parse_workpoint(body).fragment is Fragment.FINAL


@pytest.mark.parametrize(
    ("items", "send_solicited", "cleanup_reason"),
    [
        ((), False, None),
        ((Item(name="send-solicited", value="true"),), True, None),
        ((Item(name="send-solicited", value="TRUE"),), True, None),
        ((Item(name="send-solicited", value="false"),), False, None),
        (
            (Item(name="cleanup-reason", value="wrong TAN from device"),),
            False,
            "wrong TAN from device",
        ),
    ],
)
def test_clean_up_ends_the_interaction(
    items: tuple[Item, ...], send_solicited: bool, cleanup_reason: str | None
) -> None:
    session = _started()
    event = session.receive(_server(Action.CLEAN_UP, *items))
    assert event == InteractionEnded(
        ending=Ending.CLEAN_UP,
        items=items,
        send_solicited=send_solicited,
        cleanup_reason=cleanup_reason,
    )
    assert session.succeeded
    assert session.action is None


def test_restart_ends_the_interaction_without_an_answer() -> None:
    session = _acting(Action.RESTART)
    session.close()
    assert _state(session) is State.DONE
    assert session.succeeded
    with pytest.raises(LocalProtocolError):
        session.receive(_server(Action.CLEAN_UP))


def test_a_refused_factory_reset_is_answered_failed() -> None:
    session = _acting(
        Action.RESTART,
        Item(name="restart-password", value="000000"),
        Item(name="restart-type", value="FactoryReset"),
    )
    # spec §6.3 [B]: wrong password -> reply-to Restart failed, restart-password invalid data.
    rejected = (Item(name="restart-password", status=ItemStatus.INVALID_DATA),)
    body = session.send(Reply(status=ReplyStatus.FAILED, items=rejected))
    assert parse_workpoint(body) == _reply("Restart", ReplyStatus.FAILED, rejected)


def test_file_deployment_is_answered_with_a_status_report() -> None:
    session = _acting(Action.FILE_DEPLOYMENT, Item(name="file-name", value="ring.wav"))
    report = (*BASIC, Item(name="file-deployment-status", value="ok"))
    body = session.send(StatusReport(items=report))
    # spec §6.1: reason status, no attributes, maxItems -1, no fragment [G p.54].
    assert parse_workpoint(body) == WorkpointMessage(
        nonce=NONCE.upper(), reason=Reason.STATUS, items=report
    )
    _end(session)


def test_software_deployment_is_answered_accepted_then_cleaned_up() -> None:
    session = _acting(Action.SOFTWARE_DEPLOYMENT, Item(name="file-priority", value="normal"))
    body = session.send(Reply(status=ReplyStatus.ACCEPTED, items=()))
    assert parse_workpoint(body) == _reply("SoftwareDeployment", ReplyStatus.ACCEPTED, ())
    _end(session)


def test_software_deployment_while_busy_is_answered_busy() -> None:
    session = _acting(Action.SOFTWARE_DEPLOYMENT, Item(name="file-priority", value="normal"))
    body = session.send(Reply(status=ReplyStatus.BUSY, items=None))
    assert parse_workpoint(body) == _reply("SoftwareDeployment", ReplyStatus.BUSY, None)


def test_unknown_action_is_answered_failed_and_the_interaction_goes_on() -> None:
    session = _started()
    event = session.receive(_server("UploadLogs"))
    assert isinstance(event, UnknownAction)
    assert parse_workpoint(event.answer) == _reply("UploadLogs", ReplyStatus.FAILED, ())
    assert session.action is None
    _end(session)


# --------------------------------------------------------------------------- clean-up (§3.4)


def test_the_phone_can_clean_up_mid_interaction() -> None:
    session = _acting(Action.READ_ITEMS, Item(name="bootstrapping-tan"))
    body = session.send(PhoneCleanUp(reason="password retries exceeded"))
    assert parse_workpoint(body) == WorkpointMessage(
        nonce=NONCE.upper(),
        reason=Reason.CLEAN_UP,
        items=(Item(name="cleanup-reason", value="password retries exceeded"),),
        fragment=Fragment.FINAL,
    )
    assert _state(session) is State.CLOSING
    assert session.receive(_server(Action.CLEAN_UP)) == InteractionEnded(ending=Ending.EMPTY)
    assert _state(session) is State.DONE
    assert not session.succeeded
    assert session.failure == "password retries exceeded"


def test_warnings_of_nonce_check_warn_reach_every_event() -> None:
    session = _started(SessionConfig(nonce_check=NonceCheck.WARN))
    event = session.receive(_server(Action.CLEAN_UP, nonce="AAAA"))
    assert isinstance(event, InteractionEnded)
    assert event.warnings == ("nonce mismatch ignored (nonce-check=warn): got AAAA",)


def test_a_refused_document_fails_the_interaction() -> None:
    session = _started()
    event = session.receive(b"<DLSMessage/>")
    assert isinstance(event, DocumentRefused)
    session.receive(b"")
    assert _state(session) is State.DONE
    assert not session.succeeded
    assert session.failure == "invalid document: no Message element"


# --------------------------------------------------------------------------- illegal use


def test_send_before_start_or_while_awaiting_the_server_is_refused() -> None:
    session = PhoneSession(reason=Reason.START_UP, nonce=NONCE, items=())
    reply = Reply(status=ReplyStatus.ACCEPTED)
    with pytest.raises(LocalProtocolError, match="nothing to answer in state ready"):
        session.send(reply)
    with pytest.raises(LocalProtocolError, match="not allowed in state ready"):
        session.send(PhoneCleanUp(reason="x"))
    session.start()
    with pytest.raises(LocalProtocolError, match="nothing to answer in state awaiting server"):
        session.send(reply)
    with pytest.raises(LocalProtocolError):
        session.send(PhoneCleanUp(reason="x"))
    assert _state(session) is State.AWAITING_SERVER


def test_receive_before_start_and_start_twice_are_refused() -> None:
    session = PhoneSession(reason=Reason.START_UP, nonce=NONCE, items=())
    with pytest.raises(LocalProtocolError, match="no response is due in state ready"):
        session.receive(_server(Action.CLEAN_UP))
    session.start()
    with pytest.raises(LocalProtocolError, match="not allowed in state awaiting server"):
        session.start()


def test_receive_while_acting_and_after_done_is_refused() -> None:
    session = _acting(Action.READ_ALL_ITEMS)
    with pytest.raises(LocalProtocolError, match="no response is due in state acting"):
        session.receive(_server(Action.CLEAN_UP))
    session.send(Reply(status=ReplyStatus.ACCEPTED, items=()))
    _end(session)
    with pytest.raises(LocalProtocolError, match="no response is due in state done"):
        session.receive(_server(Action.CLEAN_UP))
    with pytest.raises(LocalProtocolError):
        session.send(Reply(status=ReplyStatus.ACCEPTED))


def test_a_status_report_answers_file_deployment_only() -> None:
    session = _acting(Action.WRITE_ITEMS)
    with pytest.raises(LocalProtocolError, match="FileDeployment only"):
        session.send(StatusReport(items=()))
    assert _state(session) is State.ACTING


def test_close_is_only_for_an_action_in_progress() -> None:
    session = _started()
    with pytest.raises(LocalProtocolError, match="close"):
        session.close()


@pytest.mark.parametrize("when", ["awaiting", "acting", "closing"])
def test_abort_fails_the_interaction_and_the_session_refuses_further_use(when: str) -> None:
    session = _started()
    if when == "acting":
        session.receive(_server(Action.READ_ALL_ITEMS))
    elif when == "closing":
        session.receive(_server(Action.READ_ALL_ITEMS, nonce="0"))
    session.abort("connection reset")
    assert _state(session) is State.FAILED
    assert session.failure == "connection reset"
    assert not session.succeeded
    with pytest.raises(LocalProtocolError):
        session.receive(_server(Action.CLEAN_UP))
    with pytest.raises(LocalProtocolError):
        session.send(Reply(status=ReplyStatus.ACCEPTED))
    with pytest.raises(LocalProtocolError):
        session.send(PhoneCleanUp(reason="x"))
    with pytest.raises(LocalProtocolError):
        session.start()
    with pytest.raises(LocalProtocolError):
        session.close()
    with pytest.raises(LocalProtocolError):
        session.abort("again")


def test_a_refused_abort_leaves_a_finished_session_as_it_was() -> None:
    session = _started()
    _end(session)
    with pytest.raises(LocalProtocolError):
        session.abort("late transport error")
    assert session.succeeded
    assert session.failure is None
