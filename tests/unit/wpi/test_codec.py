"""The codec's contract by example (spec §2.3): one fixed output shape, lenient input."""

from __future__ import annotations

import pytest

from provd.wpi.codec import (
    DocumentError,
    Limits,
    emit_dls,
    emit_item,
    emit_workpoint,
    envelope_size,
    is_xml_text,
    item_size,
    parse_dls,
    parse_workpoint,
)
from provd.wpi.model import (
    DLSMessage,
    Fragment,
    Item,
    ItemStatus,
    Reason,
    ReplyStatus,
    WorkpointMessage,
)

_NS = (
    'xmlns="http://www.siemens.com/DLS" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.siemens.com/DLS"'
)


def _dls(inner: str, *, root: str = "DLSMessage", nonce: str = "AB") -> bytes:
    return f'<{root}><Message nonce="{nonce}">{inner}</Message></{root}>'.encode()


def _write(items: str) -> bytes:
    return _dls(f"<Action>WriteItems</Action><ItemList>{items}</ItemList>")


# --------------------------------------------------------------------------- emitting


def test_emit_workpoint_produces_the_one_fixed_shape_byte_for_byte() -> None:
    message = WorkpointMessage(
        nonce="9a6439f4e323cdb19283e40459828b56",
        reason=Reason.REPLY_TO,
        items=(
            Item(name="mac-addr", value="00:01:E3:25:EA:13"),
            Item(name="ldap-server-address", value="ldap.example.com", index=1),
            Item(name="socketed-headset-mode", status=ItemStatus.UNKNOWN_ITEM),
        ),
        action="ReadItems",
        status=ReplyStatus.ACCEPTED,
        fragment=Fragment.FINAL,
    )
    assert emit_workpoint(message).decode() == (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"<WorkpointMessage {_NS}>\n"
        '<Message nonce="9A6439F4E323CDB19283E40459828B56" maxItems="-1" fragment="final">\n'
        '<ReasonForContact action="ReadItems" status="accepted">reply-to</ReasonForContact>\n'
        "<ItemList>\n"
        '<Item name="mac-addr">00:01:E3:25:EA:13</Item>\n'
        '<Item name="ldap-server-address" index="1">ldap.example.com</Item>\n'
        '<Item name="socketed-headset-mode" status="unknown item"/>\n'
        "</ItemList>\n"
        "</Message>\n"
        "</WorkpointMessage>\n"
    )


def test_first_message_has_max_items_and_no_fragment() -> None:
    body = emit_workpoint(WorkpointMessage(nonce="AB", reason=Reason.START_UP))
    assert (
        b'<Message nonce="AB" maxItems="-1">\n<ReasonForContact>start-up</ReasonForContact>' in body
    )


def test_items_none_emits_no_item_list_and_empty_tuple_emits_empty_item_list() -> None:
    busy = WorkpointMessage(
        nonce="AB", reason=Reason.REPLY_TO, items=None, action="WriteItems", status=ReplyStatus.BUSY
    )
    accepted = WorkpointMessage(
        nonce="AB",
        reason=Reason.REPLY_TO,
        items=(),
        action="WriteItems",
        status=ReplyStatus.ACCEPTED,
    )
    assert b"ItemList" not in emit_workpoint(busy)
    assert b"\n<ItemList/>\n" in emit_workpoint(accepted)


def test_item_with_status_is_emitted_empty_even_if_it_has_a_value() -> None:
    item = Item(name="user-pwd", value="secret", status=ItemStatus.FAILED)
    assert emit_item(item) == '<Item name="user-pwd" status="failed"/>'


def test_values_are_escaped_and_carriage_returns_survive() -> None:
    item = Item(name="x", value="<a> & \"b\" 'c'\r\nd")
    assert emit_item(item) == '<Item name="x">&lt;a&gt; &amp; "b" \'c\'&#13;\nd</Item>'
    message = WorkpointMessage(nonce="AB", reason=Reason.STATUS, items=(item,))
    parsed = parse_workpoint(emit_workpoint(message))
    assert parsed.items == (item,)


def test_attribute_whitespace_is_kept_through_character_references() -> None:
    item = Item(name="a\tb\nc\rd", value="v")
    message = DLSMessage(nonce="AB", action="WriteItems", items=(item,))
    assert parse_dls(emit_dls(message)).items == (item,)


@pytest.mark.parametrize("bad", ["\x00", "\x08", "\x0b", "\x1f", "\ud800", "\ufffe", "\uffff"])
def test_emit_refuses_characters_xml_cannot_carry(bad: str) -> None:
    assert not is_xml_text(f"a{bad}b")
    for item in (Item(name="x", value=f"a{bad}b"), Item(name=f"a{bad}b", value="v")):
        with pytest.raises(ValueError, match="XML cannot carry"):
            emit_workpoint(WorkpointMessage(nonce="AB", reason=Reason.STATUS, items=(item,)))
        with pytest.raises(ValueError, match="XML cannot carry"):
            emit_dls(DLSMessage(nonce="AB", action="WriteItems", items=(item,)))


@pytest.mark.parametrize(
    "good", ["", "\t\n\r", " <>&\"'", "\u00e4\u00df\u20ac", "\U0001f600", "\ud7ff\ue000\ufffd"]
)
def test_is_xml_text_accepts_what_xml_carries(good: str) -> None:
    assert is_xml_text(good)


def test_emit_dls_refuses_action_or_nonce_xml_cannot_carry() -> None:
    with pytest.raises(ValueError):
        emit_dls(DLSMessage(nonce="AB", action="Write\x01Items"))
    with pytest.raises(ValueError):
        emit_dls(DLSMessage(nonce="A\x02B", action="WriteItems"))


def test_emit_workpoint_escapes_the_nonce_and_refuses_one_xml_cannot_carry() -> None:
    body = emit_workpoint(WorkpointMessage(nonce='a"b<', reason=Reason.START_UP))
    assert parse_workpoint(body).nonce == 'A"B<'
    with pytest.raises(ValueError):
        emit_workpoint(WorkpointMessage(nonce="a\x00b", reason=Reason.START_UP))
    with pytest.raises(ValueError):
        emit_workpoint(WorkpointMessage(nonce="AB", reason=Reason.REPLY_TO, action="Read\x1bItems"))


def test_envelope_and_item_sizes_add_up_to_the_document_size() -> None:
    items = (
        Item(name="a", value="\u00e4" * 10),
        Item(name="b", value="x", index=3),
        Item(name="c", status=ItemStatus.FAILED),
    )
    message = WorkpointMessage(
        nonce="AB",
        reason=Reason.REPLY_TO,
        items=items,
        action="ReadAllItems",
        status=ReplyStatus.ACCEPTED,
        fragment=Fragment.FINAL,
    )
    assert len(emit_workpoint(message)) == envelope_size(message) + sum(map(item_size, items))


# --------------------------------------------------------------------------- parsing


def test_parse_dls_takes_what_real_servers_send() -> None:
    body = (
        b"<!-- a comment --><DlsMessage xmlns='urn:other'>\n"
        b"<Message nonce='  ab12  '>\n"
        b"  <ReasonForContact/><?pi ignored?><Unknown><Deeper/></Unknown>\n"
        b"  <Action>\n    WriteItems\n  </Action>\n"
        b"  <ItemList><Noise/><Item name=' x ' index=' 3 '>\n  v  \n</Item></ItemList>\n"
        b"</Message></DlsMessage>"
    )
    message = parse_dls(body)
    assert message == DLSMessage(
        nonce="ab12", action="WriteItems", items=(Item(name="x", value="v", index=3),)
    )


def test_parse_dls_keeps_the_unknown_action_text_for_the_answer() -> None:
    message = parse_dls(_dls("<Action>FlyToTheMoon</Action>"))
    assert message.action == "FlyToTheMoon"
    assert message.known_action is None


def test_parse_dls_ignores_a_status_attribute_from_the_server() -> None:
    message = parse_dls(_write('<Item name="x" status="failed">1</Item>'))
    assert message.items == (Item(name="x", value="1"),)


@pytest.mark.parametrize("raw", ["x", "1.5", "", "-1", "1e3"])
def test_an_index_that_is_not_a_number_marks_the_item_invalid_index(raw: str) -> None:
    message = parse_dls(_write(f'<Item name="x" index="{raw}">1</Item>'))
    assert message.items == (Item(name="x", value="1", status=ItemStatus.INVALID_INDEX),)


@pytest.mark.parametrize("raw", ["1_0", "\u0663", "+1", "0x1"])
def test_an_index_with_python_only_number_syntax_is_invalid_index(raw: str) -> None:
    message = parse_dls(_write(f'<Item name="x" index="{raw}">1</Item>'))
    assert message.items[0].status is ItemStatus.INVALID_INDEX


def test_parse_strips_only_xml_whitespace_around_values() -> None:
    message = parse_dls(_write('<Item name="x">\n \u00a0label\u3000 </Item>'))
    assert message.items[0].value == "\u00a0label\u3000"


def test_an_index_too_long_for_int_is_invalid_index() -> None:
    # int() raises ValueError past 4300 digits; the codec must answer invalid index.
    huge = "9" * 5000
    message = parse_dls(_write(f'<Item name="x" index="{huge}">1</Item>'))
    assert message.items[0].status is ItemStatus.INVALID_INDEX


def test_parse_workpoint_reads_the_phone_document() -> None:
    body = (
        f'<WorkpointMessage {_NS}><Message nonce="AB" maxItems="-1" fragment="next">'
        '<ReasonForContact status="accepted" action="ReadItems">reply-to</ReasonForContact>'
        '<ItemList><Item name="a">1</Item><Item status="read only" name="b"/></ItemList>'
        "</Message></WorkpointMessage>"
    ).encode()
    assert parse_workpoint(body) == WorkpointMessage(
        nonce="AB",
        reason=Reason.REPLY_TO,
        items=(Item(name="a", value="1"), Item(name="b", status=ItemStatus.READ_ONLY)),
        action="ReadItems",
        status=ReplyStatus.ACCEPTED,
        fragment=Fragment.NEXT,
    )


def test_parse_workpoint_tells_a_missing_item_list_from_an_empty_one() -> None:
    head = '<WorkpointMessage><Message nonce="AB"><ReasonForContact>status</ReasonForContact>'
    assert parse_workpoint(f"{head}</Message></WorkpointMessage>".encode()).items is None
    assert parse_workpoint(f"{head}<ItemList/></Message></WorkpointMessage>".encode()).items == ()


@pytest.mark.parametrize(
    ("inner", "reason"),
    [
        ("<ReasonForContact>hello</ReasonForContact>", "unknown reason"),
        ("", "no ReasonForContact"),
        ('<ReasonForContact status="great">reply-to</ReasonForContact>', "bad attribute value"),
        (
            "<ReasonForContact>status</ReasonForContact>"
            '<ItemList><Item name="a" status="meh"/></ItemList>',
            "unknown item status",
        ),
    ],
)
def test_parse_workpoint_refuses_what_the_grammar_does_not_allow(inner: str, reason: str) -> None:
    body = f'<WorkpointMessage><Message nonce="AB">{inner}</Message></WorkpointMessage>'.encode()
    with pytest.raises(DocumentError, match=reason):
        parse_workpoint(body)


def test_parse_workpoint_refuses_a_bad_max_items() -> None:
    body = (
        b'<WorkpointMessage><Message nonce="AB" maxItems="many">'
        b"<ReasonForContact>status</ReasonForContact></Message></WorkpointMessage>"
    )
    with pytest.raises(DocumentError, match="bad attribute value"):
        parse_workpoint(body)


def test_the_wrong_root_is_refused_on_both_sides() -> None:
    with pytest.raises(DocumentError, match="root element is WorkpointMessage, not DLSMessage"):
        parse_dls(_dls("<Action>CleanUp</Action>", root="WorkpointMessage"))
    with pytest.raises(DocumentError, match="root element is DLSMessage, not WorkpointMessage"):
        parse_workpoint(_dls("<ReasonForContact>status</ReasonForContact>"))


def test_limits_are_a_parameter() -> None:
    body = _dls("<Action>CleanUp</Action>")
    with pytest.raises(DocumentError, match=r"document too large \(\d+ bytes, limit 20\)"):
        parse_dls(body, Limits(max_body=20))
    with pytest.raises(DocumentError, match="nesting deeper than 2 levels"):
        parse_dls(body, Limits(max_depth=2))
    assert parse_dls(body, Limits(max_body=len(body), max_depth=3)).action == "CleanUp"


@pytest.mark.parametrize(
    "declaration",
    [
        '<?xml version="1.0"?>',
        '<?xml version="1.0" encoding="utf-8"?>',
        "<?xml version='1.0' encoding='UTF8'?>",
    ],
)
def test_utf8_declarations_are_accepted(declaration: str) -> None:
    assert parse_dls(declaration.encode() + _dls("<Action>CleanUp</Action>")).action == "CleanUp"


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "UTF-16", "us-ascii"])
def test_a_declared_encoding_other_than_utf8_is_refused(encoding: str) -> None:
    body = f'<?xml version="1.0" encoding="{encoding}"?>'.encode() + _dls(
        "<Action>CleanUp</Action>"
    )
    with pytest.raises(DocumentError, match="not UTF-8"):
        parse_dls(body)


@pytest.mark.parametrize(
    "head",
    [
        b'\xef\xbb\xbf<?xml version="1.0" encoding="ISO-8859-1"?>',
        b'<?xml version="1.0"' + b" " * 300 + b'encoding="ISO-8859-1"?>',
    ],
    ids=["after-utf8-bom", "long-declaration"],
)
def test_a_utf8_body_is_never_read_in_another_encoding(head: bytes) -> None:
    body = head + _write('<Item name="x">caf\u00e9</Item>')
    try:
        message = parse_dls(body)
    except DocumentError as error:
        assert "not UTF-8" in error.reason  # refusing is as good as reading UTF-8
    else:
        assert message.items[0].value == "caf\u00e9"
