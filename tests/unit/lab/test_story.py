"""One readable line per message."""

from __future__ import annotations

from provd.lab.story import arrows_for, phone_line, record_line, server_line
from provd.lab.transcript import Direction, Record
from provd.wpi.codec import emit_dls, emit_workpoint
from provd.wpi.model import (
    DLSMessage,
    Fragment,
    Item,
    ItemStatus,
    Reason,
    ReplyStatus,
    WorkpointMessage,
)
from provd.wpi.summary import phone_summary, server_summary

NONCE = "9A6439F4E323CDB19283E40459828B56"
MAC = Item(name="mac-addr", value="00:01:E3:25:EA:13")


def _phone(**fields: object) -> WorkpointMessage:
    return WorkpointMessage(nonce=NONCE, **fields)  # type: ignore[arg-type]


def test_first_message_names_its_reason_count_and_mac() -> None:
    message = _phone(
        reason=Reason.START_UP,
        items=(Item(name="device-type", value="OpenStage 60"), MAC),
    )
    assert phone_summary(message) == "start-up  2 items (mac-addr 00:01:E3:25:EA:13)"
    assert phone_line(emit_workpoint(message)) == (
        "phone → server  start-up  2 items (mac-addr 00:01:E3:25:EA:13)"
    )


def test_write_reply_lists_the_rejected_items() -> None:
    rejected = _phone(
        reason=Reason.REPLY_TO,
        action="WriteItems",
        status=ReplyStatus.ACCEPTED,
        fragment=Fragment.FINAL,
        items=(Item(name="socketed-headset-mode", status=ItemStatus.UNKNOWN_ITEM),),
    )
    assert phone_summary(rejected) == (
        "reply-to WriteItems accepted  1 rejected: socketed-headset-mode=unknown item"
    )
    clean = _phone(
        reason=Reason.REPLY_TO, action="WriteItems", status=ReplyStatus.ACCEPTED, items=()
    )
    assert phone_summary(clean) == "reply-to WriteItems accepted  all items taken"


def test_many_rejections_are_cut_short() -> None:
    items = tuple(Item(name=f"x{n}", index=n, status=ItemStatus.INVALID_INDEX) for n in range(5))
    message = _phone(
        reason=Reason.REPLY_TO, action="WriteItems", status=ReplyStatus.ACCEPTED, items=items
    )
    assert phone_summary(message).endswith(
        "5 rejected: x0[0]=invalid index, x1[1]=invalid index, x2[2]=invalid index and 2 more"
    )


def test_read_reply_counts_items_and_shows_fragments_and_busy() -> None:
    read = _phone(
        reason=Reason.REPLY_TO,
        action="ReadAllItems",
        status=ReplyStatus.ACCEPTED,
        fragment=Fragment.NEXT,
        items=(MAC,),
    )
    assert phone_summary(read) == "reply-to ReadAllItems accepted (fragment, more to come)  1 item"
    assert phone_summary(read, (MAC, MAC, MAC)).endswith("  3 items")
    busy = _phone(reason=Reason.REPLY_TO, action="WriteItems", status=ReplyStatus.BUSY, items=None)
    assert phone_summary(busy) == "reply-to WriteItems busy"


def test_phone_clean_up_shows_its_reason() -> None:
    message = _phone(
        reason=Reason.CLEAN_UP, items=(Item(name="cleanup-reason", value="invalid nonce"),)
    )
    assert phone_summary(message) == "clean-up  (invalid nonce)"


def test_server_answers() -> None:
    def dls(action: str, *items: Item) -> bytes:
        return emit_dls(DLSMessage(nonce=NONCE, action=action, items=items))

    assert server_summary(200, dls("ReadAllItems")) == "ReadAllItems"
    assert server_summary(200, dls("WriteItems", MAC, MAC)) == "WriteItems  2 items"
    assert server_summary(200, dls("SelfDestruct")) == "SelfDestruct (unknown action)"
    assert server_summary(200, dls("CleanUp", Item(name="send-solicited", value="true"))) == (
        "CleanUp  (send-solicited=true)"
    )
    assert server_summary(204, b"") == "204 No Content (taken as CleanUp)"
    assert server_summary(200, b"") == "empty 200 (taken as CleanUp)"
    assert server_summary(500, b"oops") == "HTTP 500"
    assert server_summary(200, b"<garbage").startswith("malformed document (not well-formed")
    assert server_line(200, dls("CleanUp")) == "server → phone  CleanUp"


def test_ascii_terminals_get_ascii_arrows() -> None:
    assert arrows_for("ascii") == ("phone -> server", "server -> phone")
    assert arrows_for("utf-8") == ("phone → server", "server → phone")
    assert arrows_for(None) == ("phone -> server", "server -> phone")


def test_record_lines_carry_the_interaction_and_notes() -> None:
    body = emit_workpoint(_phone(reason=Reason.START_UP, items=(MAC,)))
    record = Record(
        seq=1,
        time=0,
        interaction=3,
        direction=Direction.PHONE_TO_SERVER,
        body=body,
        reason=Reason.START_UP,
        note="no cookie: matched by nonce",
    )
    assert record_line(record) == (
        "#3 phone → server  start-up  1 item (mac-addr 00:01:E3:25:EA:13)"
        "  [no cookie: matched by nonce]"
    )
    refused = Record(
        seq=2,
        time=0,
        interaction=0,
        direction=Direction.PHONE_TO_SERVER,
        body=b"junk",
        note="refused: not well-formed XML",
    )
    assert record_line(refused) == "#0 phone → server  refused: not well-formed XML"
    answer = Record(
        seq=3,
        time=0,
        interaction=0,
        direction=Direction.SERVER_TO_PHONE,
        body=b"",
        http_status=400,
        note="HTTP 400",
    )
    assert record_line(answer, labels=("P", "S")) == "#0 S  HTTP 400"


def test_a_clean_up_summary_shows_only_its_own_items_on_one_short_line() -> None:
    body = emit_dls(
        DLSMessage(
            nonce="AB",
            action="CleanUp",
            items=(
                Item(name="cleanup-reason", value="wrong TAN\nfrom device" + "x" * 500),
                Item(name="admin-pwd", value="hunter2"),
            ),
        )
    )
    line = server_summary(200, body)
    assert "hunter2" not in line and "\n" not in line
    assert line.startswith("CleanUp  (cleanup-reason=wrong TAN from device")
    assert len(line) < 120
