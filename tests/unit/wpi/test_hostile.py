"""Hostile server documents (issue 2, Done when; spec §2.3, §2.4, §3.3, §3.4).

Each is refused with an error that names the reason, and the `PhoneSession` answers
with the document the spec prescribes: a `clean-up` carrying a `cleanup-reason`
(spec §3.4), or `reply-to` `failed` for an unknown action (spec §3.3 [B]). Nothing
escapes `receive`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provd.wpi.codec import DEFAULT_MAX_BODY, DocumentError, parse_dls, parse_workpoint
from provd.wpi.events import (
    ActionRequested,
    DocumentRefused,
    Ending,
    InteractionEnded,
    UnknownAction,
)
from provd.wpi.model import Action, Fragment, Item, ItemStatus, Reason, ReplyStatus
from provd.wpi.nonce import NonceCheck
from provd.wpi.session import PhoneSession, SessionConfig
from provd.wpi.states import State

NONCE = "9A6439F4E323CDB19283E40459828B56"
NS = 'xmlns="http://www.siemens.com/DLS"'


def _state(session: PhoneSession) -> State:
    # A call, so mypy does not narrow the state across the session's methods.
    return session.state


def _doc(inner: str, *, nonce: str = NONCE, head: str = "") -> bytes:
    return (
        f'{head}<DLSMessage {NS}><Message nonce="{nonce}">{inner}</Message></DLSMessage>'.encode()
    )


def _write(items: str) -> bytes:
    return _doc(f"<Action>WriteItems</Action><ItemList>{items}</ItemList>")


def _session(config: SessionConfig | None = None) -> PhoneSession:
    session = PhoneSession(reason=Reason.SOLICITED, nonce=NONCE, items=(), config=config)
    session.start()
    return session


def _assert_refused(
    body: bytes, reason: str, cleanup_reason: str = "invalid document"
) -> DocumentRefused:
    """`body` is refused by the codec and by a session, which answers with clean-up."""
    if cleanup_reason == "invalid document":
        with pytest.raises(DocumentError) as caught:
            parse_dls(body)
        assert reason in caught.value.reason
    session = _session()
    event = session.receive(body)
    assert isinstance(event, DocumentRefused)
    assert reason in event.reason
    answer = parse_workpoint(event.answer)
    assert answer.reason is Reason.CLEAN_UP
    assert (answer.action, answer.status) == (None, None)
    assert answer.nonce == NONCE
    assert answer.fragment is Fragment.FINAL
    assert answer.items == (Item(name="cleanup-reason", value=cleanup_reason),)
    assert _state(session) is State.CLOSING
    # spec §3.4: the response to the phone's clean-up is ignored, whatever it is.
    assert session.receive(b"\x00 anything") == InteractionEnded(ending=Ending.EMPTY)
    assert _state(session) is State.DONE
    assert not session.succeeded
    assert session.failure is not None and reason in session.failure
    return event


def _billion_laughs() -> bytes:
    entities = '<!ENTITY a0 "ha">' + "".join(
        f'<!ENTITY a{n} "{f"&a{n - 1};" * 10}">' for n in range(1, 10)
    )
    return _write('<Item name="x">&a9;</Item>').replace(
        b"<DLSMessage", f"<!DOCTYPE DLSMessage [{entities}]><DLSMessage".encode(), 1
    )


def _nested(depth: int) -> bytes:
    return _doc("<Action>WriteItems</Action>" + "<a>" * depth + "</a>" * depth)


HOSTILE: dict[str, tuple[bytes, str]] = {
    "billion-laughs": (_billion_laughs(), "DTD or entity declaration not allowed"),
    "internal-dtd": (
        b"<!DOCTYPE DLSMessage []>" + _doc("<Action>CleanUp</Action>"),
        "DTD or entity declaration not allowed",
    ),
    "2-mib-body": (
        _write('<Item name="x">' + "x" * (2 * 1024 * 1024) + "</Item>"),
        "document too large",
    ),
    "nested-10000-deep": (_nested(10_000), "nesting deeper than 6 levels"),
    "nested-just-too-deep": (_nested(5), "nesting deeper than 6 levels"),
    "two-messages": (
        (
            f'<DLSMessage {NS}><Message nonce="{NONCE}"><Action>CleanUp</Action></Message>'
            f'<Message nonce="{NONCE}"><Action>WriteItems</Action></Message></DLSMessage>'
        ).encode(),
        "more than one Message element",
    ),
    "two-actions": (
        _doc("<Action>ReadItems</Action><Action>WriteItems</Action>"),
        "more than one Action element",
    ),
    "two-item-lists": (
        _doc("<Action>WriteItems</Action><ItemList/><ItemList/>"),
        "more than one ItemList element",
    ),
    "missing-nonce": (
        (f"<DLSMessage {NS}><Message><Action>CleanUp</Action></Message></DLSMessage>".encode()),
        "missing nonce",
    ),
    "empty-nonce": (_doc("<Action>CleanUp</Action>", nonce="  "), "missing nonce"),
    "no-action": (_doc("<ItemList/>"), "no Action element"),
    "empty-action": (_doc("<Action> </Action>"), "no Action element"),
    "no-message": (f"<DLSMessage {NS}/>".encode(), "no Message element"),
    "wrong-root": (
        _doc("<Action>CleanUp</Action>").replace(b"DLSMessage", b"Envelope"),
        "root element is Envelope, not DLSMessage",
    ),
    "invalid-utf8": (
        _write('<Item name="x">caf</Item>').replace(b"caf", b"caf\xe9", 1),
        "invalid UTF-8 at byte",
    ),
    "utf16-with-bom": (
        _doc("<Action>CleanUp</Action>").decode().encode("utf-16"),
        "not UTF-8",
    ),
    "binary-garbage": (b"\x89PNG\r\n\x1a\n\xff\xd8\xff\xe0", "invalid UTF-8 at byte 0"),
    "nul-bytes": (
        _doc("<Action>CleanUp</Action>").replace(b"CleanUp", b"Clean\x00Up"),
        "not UTF-8",
    ),
    "text-garbage": (b"HTTP/1.1 200 OK {{ not xml", "not well-formed XML"),
    "html": (b"<html><body>502 Bad Gateway</body></html>", "root element is html"),
    "truncated": (_doc("<Action>CleanUp</Action>")[:-20], "not well-formed XML"),
    "undefined-entity": (_write('<Item name="x">&secret;</Item>'), "not well-formed XML"),
    "item-without-name": (_write("<Item>1</Item>"), "Item without a name"),
    "item-with-blank-name": (_write('<Item name=" ">1</Item>'), "Item without a name"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_document_is_refused_with_a_clean_up(case: str) -> None:
    body, reason = HOSTILE[case]
    _assert_refused(body, reason)


def test_the_2_mib_body_is_over_the_default_limit() -> None:
    assert len(HOSTILE["2-mib-body"][0]) > DEFAULT_MAX_BODY


def _secret_file(tmp_path: Path) -> tuple[Path, str]:
    secret = "provd-test-secret-4f1c9a"
    path = tmp_path / "passwd"
    path.write_text(f"root:x:0:0:{secret}:/root:/bin/sh\n", encoding="utf-8")
    return path, secret


@pytest.mark.parametrize(
    "declaration",
    [
        '<!DOCTYPE DLSMessage [<!ENTITY xxe SYSTEM "{uri}">]>',
        '<!DOCTYPE DLSMessage [<!ENTITY % xxe SYSTEM "{uri}"> %xxe;]>',
        '<!DOCTYPE DLSMessage SYSTEM "{uri}">',
    ],
    ids=["general-entity", "parameter-entity", "external-dtd"],
)
def test_external_entity_is_refused_and_the_file_never_read(
    tmp_path: Path, declaration: str
) -> None:
    path, secret = _secret_file(tmp_path)
    body = declaration.format(uri=path.as_uri()).encode() + _write('<Item name="x">&xxe;</Item>')
    event = _assert_refused(body, "DTD or entity declaration not allowed")
    assert secret not in repr(event)
    assert secret.encode() not in event.answer


def _utf16_without_bom(body: bytes, codec: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-16"?>' + body.decode()).encode(codec)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_document_without_bom_is_refused(tmp_path: Path, codec: str) -> None:
    path, _secret = _secret_file(tmp_path)
    inner = f'<!DOCTYPE DLSMessage [<!ENTITY xxe SYSTEM "{path.as_uri()}">]>'.encode()
    body = _utf16_without_bom(inner + _write('<Item name="x">&xxe;</Item>'), codec)
    # No XML 1.0 document holds a NUL byte; a UTF-16 one without BOM always does.
    _assert_refused(body, "not UTF-8")


def _utf7(text: str) -> bytes:
    """`text` in UTF-7 with every markup character base64-shifted: pure ASCII."""
    for char, shifted in (("<", "+ADw-"), (">", "+AD4-"), ("!", "+ACE-"), ("&", "+ACY-")):
        text = text.replace(char, shifted)
    return text.encode("ascii")


@pytest.mark.parametrize(
    "head",
    [
        b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-7"?>',
        b'<?xml version="1.0"' + b" " * 300 + b'encoding="UTF-7"?>',
    ],
    ids=["after-utf8-bom", "long-declaration"],
)
def test_a_dtd_hidden_in_utf7_is_refused(head: bytes) -> None:
    dtd = '<!DOCTYPE DLSMessage [<!ENTITY a "AAAA">]>'
    body = head + _utf7(dtd + _write('<Item name="x">&a;</Item>').decode())
    with pytest.raises(DocumentError):
        parse_dls(body)
    assert isinstance(_session().receive(body), DocumentRefused)


def test_xinclude_is_refused_and_never_processed(tmp_path: Path) -> None:
    # spec §2.3: XInclude is among what no server needs and provd refuses.
    path, secret = _secret_file(tmp_path)
    xinclude = 'xmlns:xi="http://www.w3.org/2001/XInclude"'
    include = f'<xi:include {xinclude} href="{path.as_uri()}" parse="text"/>'
    body = _write(f'<Item name="x">{include}</Item>{include}')
    event = _assert_refused(body, "XInclude not allowed")
    assert secret not in repr(event)
    assert secret.encode() not in event.answer


def test_wrong_nonce_with_strict_check_ends_with_clean_up_invalid_nonce() -> None:
    body = _doc("<Action>ReadAllItems</Action>", nonce="00000000000000000000000000000000")
    event = _assert_refused(body, "invalid nonce", cleanup_reason="invalid nonce")
    assert event.reason == "invalid nonce"


def test_wrong_nonce_with_warn_check_goes_on_with_a_warning() -> None:
    session = _session(SessionConfig(nonce_check=NonceCheck.WARN))
    event = session.receive(_doc("<Action>ReadAllItems</Action>", nonce="DEADBEEF"))
    assert isinstance(event, ActionRequested)
    assert event.action is Action.READ_ALL_ITEMS
    assert event.warnings == ("nonce mismatch ignored (nonce-check=warn): got DEADBEEF",)
    assert _state(session) is State.ACTING


def test_nonce_is_compared_case_insensitively() -> None:
    event = _session().receive(_doc("<Action>ReadAllItems</Action>", nonce=NONCE.lower()))
    assert isinstance(event, ActionRequested)
    assert event.warnings == ()


def test_unknown_action_is_answered_failed_with_the_name_received() -> None:
    session = _session()
    event = session.receive(
        _doc("<Action>FormatFlash</Action><ItemList><Item name='x'/></ItemList>")
    )
    assert isinstance(event, UnknownAction)
    assert event.action == "FormatFlash"
    answer = parse_workpoint(event.answer)
    assert answer.reason is Reason.REPLY_TO
    assert (answer.action, answer.status) == ("FormatFlash", ReplyStatus.FAILED)
    assert answer.fragment is Fragment.FINAL
    assert answer.items == ()
    # The interaction goes on: the server's next message is due.
    assert _state(session) is State.AWAITING_SERVER
    assert isinstance(session.receive(_doc("<Action>CleanUp</Action>")), InteractionEnded)
    assert session.succeeded


def test_an_action_in_the_wrong_case_is_unknown() -> None:
    event = _session().receive(_doc("<Action>cleanup</Action>"))
    assert isinstance(event, UnknownAction)


@pytest.mark.parametrize("item_list", ["<ItemList/>", "<ItemList>\n</ItemList>", ""])
def test_writeitems_without_items_is_an_ordinary_empty_write(item_list: str) -> None:
    session = _session()
    event = session.receive(_doc(f"<Action>WriteItems</Action>{item_list}"))
    assert isinstance(event, ActionRequested)
    assert event.items == ()


def test_non_numeric_index_marks_the_item_invalid_index() -> None:
    event = _session().receive(_write('<Item name="ldap-server-address" index="first">x</Item>'))
    assert isinstance(event, ActionRequested)
    assert event.items == (
        Item(name="ldap-server-address", value="x", status=ItemStatus.INVALID_INDEX),
    )


def test_an_index_of_5000_digits_is_invalid_index_and_does_not_escape_receive() -> None:
    # int() refuses strings over 4300 digits with ValueError: the codec must not get there.
    event = _session().receive(_write(f'<Item name="x" index="{"9" * 5000}">1</Item>'))
    assert isinstance(event, ActionRequested)
    assert event.items == (Item(name="x", value="1", status=ItemStatus.INVALID_INDEX),)


def test_empty_response_ends_the_interaction_like_clean_up() -> None:
    for body in (b"", b"  \r\n "):
        session = _session()
        assert session.receive(body) == InteractionEnded(ending=Ending.EMPTY)
        assert session.succeeded
