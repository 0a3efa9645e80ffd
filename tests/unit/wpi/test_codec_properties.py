"""Property tests of the codec (hypothesis): emit -> parse gives back what was emitted.

Names and values are drawn from every character XML 1.0 can carry, the XML-special
ones (`<>&"'`) and `\\t`, `\\n`, `\\r` weighted in. The codec strips whitespace around
text and names [G p.33], so generated names and values carry none there.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from provd.wpi.codec import (
    DocumentError,
    emit_dls,
    emit_workpoint,
    is_xml_text,
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

_XML_CHAR = st.one_of(
    st.sampled_from("<>&\"'\t\n\r ;#x"),
    st.characters(min_codepoint=0x20, max_codepoint=0x7F),
    st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)).filter(
        lambda char: char not in "\ufffe\uffff"
    ),
)
_NOT_XML_CHAR = st.one_of(
    st.sampled_from([chr(code) for code in range(0x20) if chr(code) not in "\t\n\r"]),
    st.integers(0xD800, 0xDFFF).map(chr),
    st.sampled_from("\ufffe\uffff"),
)


def _unpadded(text: str) -> bool:
    return text == text.strip()


NAMES = st.text(_XML_CHAR, min_size=1, max_size=30).filter(lambda s: bool(s) and _unpadded(s))
VALUES = st.text(_XML_CHAR, max_size=60).filter(_unpadded)
INDICES = st.one_of(st.none(), st.integers(min_value=0, max_value=2**63))
NONCES = st.text("0123456789ABCDEFabcdef", min_size=1, max_size=40)

server_items = st.builds(Item, name=NAMES, value=VALUES, index=INDICES)
phone_items = st.one_of(
    server_items,
    st.builds(Item, name=NAMES, index=INDICES, status=st.sampled_from(ItemStatus)),
)


@given(
    nonce=NONCES,
    reason=st.sampled_from(Reason),
    items=st.one_of(st.none(), st.lists(phone_items, max_size=8).map(tuple)),
    action=st.one_of(st.none(), NAMES),
    status=st.one_of(st.none(), st.sampled_from(ReplyStatus)),
    max_items=st.integers(-1, 10_000),
    fragment=st.one_of(st.none(), st.sampled_from(Fragment)),
)
def test_workpoint_message_round_trips(
    nonce: str,
    reason: Reason,
    items: tuple[Item, ...] | None,
    action: str | None,
    status: ReplyStatus | None,
    max_items: int,
    fragment: Fragment | None,
) -> None:
    message = WorkpointMessage(
        nonce=nonce,
        reason=reason,
        items=items,
        action=action,
        status=status,
        max_items=max_items,
        fragment=fragment,
    )
    parsed = parse_workpoint(emit_workpoint(message))
    assert parsed == WorkpointMessage(
        nonce=nonce.upper(),  # spec §2.3: the phone's nonce is upper-case hex
        reason=reason,
        items=items,
        action=action,
        status=status,
        max_items=max_items,
        fragment=fragment,
    )


@given(
    nonce=NAMES,
    action=st.text(
        st.characters(
            min_codepoint=0x21, blacklist_categories=("Cs", "Cn", "Zs", "Zl", "Zp", "Cc")
        ),
        min_size=1,
        max_size=30,
    ),
    items=st.lists(server_items, max_size=8).map(tuple),
)
def test_dls_message_round_trips(nonce: str, action: str, items: tuple[Item, ...]) -> None:
    message = DLSMessage(nonce=nonce, action=action, items=items)
    assert parse_dls(emit_dls(message)) == message


@given(
    prefix=VALUES,
    bad=_NOT_XML_CHAR,
    suffix=VALUES,
    as_name=st.booleans(),
    phone=st.booleans(),
)
def test_characters_xml_cannot_carry_make_emit_raise(
    prefix: str, bad: str, suffix: str, as_name: bool, phone: bool
) -> None:
    text = prefix + bad + suffix
    assert not is_xml_text(text)
    item = Item(name=text, value="v") if as_name else Item(name="n", value=text)
    try:
        if phone:
            emit_workpoint(WorkpointMessage(nonce="AB", reason=Reason.STATUS, items=(item,)))
        else:
            emit_dls(DLSMessage(nonce="AB", action="WriteItems", items=(item,)))
    except ValueError:
        return
    raise AssertionError("emit accepted a character XML 1.0 cannot carry")


@settings(max_examples=500)
@given(code=st.integers(min_value=0, max_value=0x10FFFF))
def test_is_xml_text_agrees_with_libxml2(code: int) -> None:
    """is_xml_text(c) is exactly what an XML 1.0 parser accepts as a character."""
    try:
        etree.fromstring(f"<a>&#{code};</a>".encode())
    except etree.XMLSyntaxError:
        accepted = False
    else:
        accepted = True
    assert is_xml_text(chr(code)) is accepted


@given(items=st.lists(server_items, max_size=8).map(tuple), nonce=NONCES)
def test_a_phone_document_is_never_taken_for_a_server_document(
    items: tuple[Item, ...], nonce: str
) -> None:
    body = emit_workpoint(WorkpointMessage(nonce=nonce, reason=Reason.STATUS, items=items))
    try:
        parse_dls(body)
    except DocumentError as error:
        assert "root element is WorkpointMessage" in error.reason
    else:
        raise AssertionError("a WorkpointMessage parsed as a DLSMessage")
