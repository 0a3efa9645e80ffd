"""Golden tests: every XML example of the guide notes, as files in tests/data/golden/.

Server examples must parse into the right `DLSMessage` and drive a `PhoneSession` to
the right event. Phone examples are rebuilt with the core, through the flow that
produces them, and compared in structure with the guide's document (elements and
their order, attributes and values, text stripped, nonces aside), then checked
against provd's own fixed output shape (spec §2.3). `docs/golden-examples.md` maps
each example to its test; a test below keeps that table complete.
"""

from __future__ import annotations

import re

import pytest

from provd.wpi.codec import emit_dls, envelope_size, item_size, parse_dls, parse_workpoint
from provd.wpi.events import (
    ActionRequested,
    AutoAnswer,
    Ending,
    FragmentReceived,
    InteractionEnded,
    NextFragment,
    PhoneCleanUp,
    PhoneMessageReceived,
    Reply,
    StatusReport,
    UnknownAction,
)
from provd.wpi.model import Action, DLSMessage, Item, Reason, ReplyStatus, WorkpointMessage
from provd.wpi.nonce import NonceCheck, new_nonce
from provd.wpi.respond import answer_item_action
from provd.wpi.server import ServerSession
from provd.wpi.session import PhoneSession, SessionConfig

from .golden_expectations import SERVER_EXAMPLES, it
from .goldens import (
    REPO_ROOT,
    assert_fixed_shape,
    golden,
    golden_names,
    guide_items,
    guide_nonce,
    message_attributes,
    structure,
    without_message_attributes,
)
from .itembook import MemoryBook

_SERVER_FILES = sorted(SERVER_EXAMPLES)


# --------------------------------------------------------------------------- server side


def test_every_server_golden_has_an_expectation() -> None:
    files = [name for name in golden_names() if "-phone-" not in name]
    assert sorted(files) == _SERVER_FILES


@pytest.mark.parametrize("name", _SERVER_FILES)
def test_server_example_parses(name: str) -> None:
    nonce, action, items = SERVER_EXAMPLES[name]
    message = parse_dls(golden(name))
    assert message.nonce == nonce
    assert message.action == action
    assert [(i.name, i.index, i.value, i.status) for i in message.items] == [
        (i.name, i.index, i.value, i.status) for i in items
    ]


@pytest.mark.parametrize("name", _SERVER_FILES)
def test_server_example_drives_session(name: str) -> None:
    nonce, action, items = SERVER_EXAMPLES[name]
    session = PhoneSession(reason=Reason.SOLICITED, nonce=nonce, items=())
    session.start()
    event = session.receive(golden(name))
    if action == "CleanUp":
        assert isinstance(event, InteractionEnded)
        assert event.ending is Ending.CLEAN_UP
        assert event.send_solicited is (name == "p076-server-cleanup-send-solicited.xml")
        expected_reason = "wrong TAN from device" if "wrong-tan" in name else None
        assert event.cleanup_reason == expected_reason
        assert session.succeeded
    elif action == "GetNextFragment":
        # Nothing is pending in a fresh session: answered failed (see the p.70 test for
        # the fragmented flow).
        assert type(event) is AutoAnswer
        assert b'action="GetNextFragment" status="failed"' in event.answer
    else:
        assert isinstance(event, ActionRequested)
        assert event.action is Action(action)
        assert event.items == items
        assert event.warnings == ()


# --------------------------------------------------------------------------- phone side


def _compare(
    provd_body: bytes, guide_file: str, *, provd_adds: dict[str, str] | None = None
) -> None:
    """provd's document equals the guide's in structure; `provd_adds` names `Message`
    attributes provd emits by binding (spec §2.1 [B]) where the guide's example has none."""
    assert_fixed_shape(provd_body)
    ours = structure(provd_body)
    theirs = structure(golden(guide_file))
    if provd_adds:
        attributes = message_attributes(provd_body)
        for key, value in provd_adds.items():
            assert attributes[key] == value
            assert key not in message_attributes(golden(guide_file))
        ours = without_message_attributes(ours, set(provd_adds))
    assert ours == theirs


def _session(
    server_file: str, reason: Reason = Reason.SOLICITED
) -> tuple[PhoneSession, ActionRequested]:
    """A session that sent its first message and received `server_file`."""
    session = PhoneSession(reason=reason, nonce=SERVER_EXAMPLES[server_file][0], items=())
    session.start()
    event = session.receive(golden(server_file))
    assert isinstance(event, ActionRequested)
    return session, event


def _book_with(guide_file: str) -> MemoryBook:
    # Items the guide shows with a status are ones the phone does not have.
    items = [item for item in guide_items(guide_file) if item.status is None]
    return MemoryBook(values={item.key: item.value for item in items})


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("p033-phone-start-up.xml", Reason.START_UP),
        ("p038-phone-local-changes.xml", Reason.LOCAL_CHANGES),
        ("p040-phone-local-changes-v2r2.xml", Reason.LOCAL_CHANGES),
        ("p043-phone-solicited.xml", Reason.SOLICITED),
        ("p077-phone-solicited.xml", Reason.SOLICITED),
        ("p082-phone-solicited.xml", Reason.SOLICITED),
        ("skeleton-a-phone-first-message.xml", Reason.START_UP),
    ],
)
def test_first_message_matches_guide(name: str, reason: Reason) -> None:
    session = PhoneSession(reason=reason, nonce=guide_nonce(name), items=guide_items(name))
    body = session.start()
    # [G p.33] shows no maxItems; provd's first message always carries maxItems="-1"
    # and never a fragment (spec §2.1 [B]).
    adds = {"maxItems": "-1"} if name == "p033-phone-start-up.xml" else None
    _compare(body, name, provd_adds=adds)
    assert "fragment" not in message_attributes(body)


def test_p034_readallitems_reply_matches_guide() -> None:
    session, event = _session("p034-server-readallitems-mydomain-namespace.xml", Reason.START_UP)
    assert event.action is Action.READ_ALL_ITEMS
    reply = answer_item_action(event, _book_with("p034-phone-readallitems-reply.xml"), busy=False)
    body = session.send(reply)
    # [G p.34] shows neither maxItems nor fragment; every provd reply has both (§2.1 [B]).
    _compare(
        body,
        "p034-phone-readallitems-reply.xml",
        provd_adds={"maxItems": "-1", "fragment": "final"},
    )


def test_p045_readitems_reply_matches_guide() -> None:
    session, event = _session("p044-server-readitems.xml")
    reply = answer_item_action(event, _book_with("p045-phone-readitems-reply.xml"), busy=False)
    _compare(session.send(reply), "p045-phone-readitems-reply.xml")
    assert isinstance(session.receive(golden("p045-server-cleanup.xml")), InteractionEnded)


@pytest.mark.parametrize(
    ("server_file", "phone_file"),
    [
        ("p048-server-writeitems.xml", "p048-phone-writeitems-accepted.xml"),
        ("p064-server-writeitems-secure-mode-nopin.xml", "p064-phone-writeitems-accepted.xml"),
        ("p067-server-writeitems-secure-mode-pin.xml", "p067-phone-writeitems-accepted.xml"),
        ("skeleton-b-server-writeitems.xml", "skeleton-b-phone-writeitems-accepted.xml"),
    ],
)
def test_writeitems_accepted_matches_guide(server_file: str, phone_file: str) -> None:
    session, event = _session(server_file)
    book = MemoryBook()
    reply = answer_item_action(event, book, busy=False)
    assert reply == Reply(status=ReplyStatus.ACCEPTED, items=())
    _compare(session.send(reply), phone_file)
    assert book.commits == [SERVER_EXAMPLES[server_file][2]]


def test_p054_status_report_matches_guide() -> None:
    session, event = _session("p053-server-filedeployment-ftp.xml")
    assert event.action is Action.FILE_DEPLOYMENT
    body = session.send(StatusReport(items=guide_items("p054-phone-status.xml")))
    _compare(body, "p054-phone-status.xml")
    assert "fragment" not in message_attributes(body)


def test_p060_sequence_matches_guide_with_nonce_check_warn() -> None:
    # [G p.60] the server's WriteItems carries BB0D..., the phone answers with 43C3...,
    # and the server goes on with 43C3...: only nonce-check=warn follows the guide here.
    session = PhoneSession(
        reason=Reason.SOLICITED,
        nonce=guide_nonce("p060-phone-writeitems-accepted.xml"),
        items=(),
        config=SessionConfig(nonce_check=NonceCheck.WARN),
    )
    session.start()
    event = session.receive(golden("p060-server-writeitems-wbm-certificate.xml"))
    assert isinstance(event, ActionRequested)
    assert len(event.warnings) == 1
    assert "nonce" in event.warnings[0]
    body = session.send(answer_item_action(event, MemoryBook(), busy=False))
    _compare(body, "p060-phone-writeitems-accepted.xml")
    assert b'nonce="43C308AE8D03F14392F565075A9922FB"' in body
    event = session.receive(golden("p060-server-readitems-wbm-certificate-info.xml"))
    assert isinstance(event, ActionRequested)
    assert event.warnings == ()


def test_p068_bootstrapping_tan_reply_matches_guide() -> None:
    session, event = _session("p068-server-readitems-bootstrapping-tan.xml")
    book = MemoryBook(values={("bootstrapping-tan", None): "321"})
    body = session.send(answer_item_action(event, book, busy=False))
    _compare(body, "p068-phone-readitems-reply-bootstrapping-tan.xml")


def test_p070_first_fragment_and_getnextfragment_match_guide() -> None:
    nonce = guide_nonce("p070-phone-readitems-reply-fragment-next.xml")
    shown = guide_items("p070-phone-readitems-reply-fragment-next.xml")
    rest = it("ldap-server-address", "x" * 400, 1)
    session = PhoneSession(
        reason=Reason.SOLICITED,
        nonce=nonce,
        items=(),
        config=SessionConfig(
            max_message=envelope_size(
                WorkpointMessage(
                    nonce=nonce,
                    reason=Reason.REPLY_TO,
                    action="ReadItems",
                    status=ReplyStatus.ACCEPTED,
                )
            )
            + sum(item_size(item) for item in shown)
        ),
    )
    session.start()
    request = emit_dls(
        DLSMessage(
            nonce=nonce, action="ReadItems", items=tuple(Item(name=i.name) for i in (*shown, rest))
        )
    )
    event = session.receive(request)
    assert isinstance(event, ActionRequested)
    first = session.send(Reply(status=ReplyStatus.ACCEPTED, items=(*shown, rest)))
    _compare(first, "p070-phone-readitems-reply-fragment-next.xml")
    following = session.receive(golden("p070-server-getnextfragment.xml"))
    assert isinstance(following, NextFragment)
    assert (following.number, following.total) == (2, 2)
    assert_fixed_shape(following.answer)
    assert message_attributes(following.answer)["fragment"] == "final"
    assert b'<Item name="ldap-server-address" index="1">' in following.answer


@pytest.mark.parametrize(
    "phone_file", ["p076-phone-writeitems-busy.xml", "skeleton-a-phone-busy.xml"]
)
def test_busy_reply_matches_guide(phone_file: str) -> None:
    session, event = _session("p048-server-writeitems.xml")
    book = MemoryBook()
    reply = answer_item_action(event, book, busy=True)
    body = session.send(reply)
    _compare(body, phone_file)
    assert b"ItemList" not in body
    assert book.written == []


@pytest.mark.parametrize(
    ("server_file", "phone_file", "book"),
    [
        (
            "p078-server-writeitems-unknown-item.xml",
            "p078-phone-writeitems-unknown-item.xml",
            MemoryBook(),
        ),
        (
            "p081-server-writeitems-canonical-lookup.xml",
            "p081-phone-writeitems-failed.xml",
            MemoryBook(storage_fails=True),
        ),
        (
            "p082-server-writeitems-read-only.xml",
            "p083-phone-writeitems-read-only.xml",
            MemoryBook(),
        ),
    ],
    ids=["p078-unknown-item", "p081-failed", "p083-read-only"],
)
def test_writeitems_rejected_items_match_guide(
    server_file: str, phone_file: str, book: MemoryBook
) -> None:
    session, event = _session(server_file)
    _compare(session.send(answer_item_action(event, book, busy=False)), phone_file)
    assert book.commits == []


def test_p083_clean_up_after_pin_retries_matches_guide() -> None:
    session, _event = _session("p068-server-readitems-bootstrapping-tan.xml")
    body = session.send(PhoneCleanUp(reason="password retries exceeded"))
    _compare(body, "p083-phone-clean-up.xml")
    ended = session.receive(golden("p083-server-cleanup.xml"))
    assert isinstance(ended, InteractionEnded)
    assert session.failure == "password retries exceeded"


def test_clean_up_opened_by_phone_matches_guide_skeleton() -> None:
    name = "skeleton-a-phone-clean-up.xml"
    session = PhoneSession(reason=Reason.CLEAN_UP, nonce=guide_nonce(name), items=guide_items(name))
    _compare(session.start(), name)


@pytest.mark.parametrize(
    ("requested", "phone_file"),
    [
        (("device-type", "mac-addr"), "skeleton-a-phone-reply-readitems.xml"),
        (
            ("mac-addr", "ldap-server-address", "socketed-headset-mode"),
            "spec-2-1-phone-readitems-reply.xml",
        ),
    ],
)
def test_readitems_reply_matches_guide_skeleton(
    requested: tuple[str, ...], phone_file: str
) -> None:
    nonce = guide_nonce(phone_file)
    session = PhoneSession(reason=Reason.SOLICITED, nonce=nonce, items=())
    server = ServerSession()
    server.receive(session.start())
    wanted = [
        Item(name=name, index=1 if name == "ldap-server-address" else None) for name in requested
    ]
    event = session.receive(server.send(Action.READ_ITEMS, wanted))
    assert isinstance(event, ActionRequested)
    body = session.send(answer_item_action(event, _book_with(phone_file), busy=False))
    _compare(body, phone_file)


# ---------------------------------------------------------------- phone documents, server side


@pytest.mark.parametrize("name", golden_names("-phone-"))
def test_phone_example_parses_on_server_side(name: str) -> None:
    event = ServerSession().receive(golden(name))
    assert isinstance(event, PhoneMessageReceived | FragmentReceived)
    expected = guide_items(name)
    if isinstance(event, FragmentReceived):
        assert event.message.items == expected
    else:
        assert event.items == expected
        assert event.message.nonce == guide_nonce(name)


_URI_TAIL = ":8085/contact_dls.html/ContactDLS"
#: spec §3.2: the basic items in provd's order, with the longest values they take
#: (contact-me-uri at its limit of 255 characters [G p.35]).
BASIC_ITEMS = (
    it("device-type", "OpenScape Desk Phone CP210"),
    it("related-device-type", "OpenScape Desk Phone CP210"),
    it("software-type", "Siemens SIP"),
    it("related-software-type", "Siemens SIP"),
    it("software-version", "V3 R5.12.0"),
    it("related-software-version", "V3 R5.12.0"),
    it("contact-me-uri", "http://" + "h" * (255 - len("http://") - len(_URI_TAIL)) + _URI_TAIL),
    it("mac-addr", "00:01:E3:25:EA:13"),
    it("configuration-changed-flag", "false"),
    it("part-number", "S30817-S7403-A108-006"),
    it("e164", "49897223290"),
    it("basic-e164", "49897223290"),
    it("mobility-enabled", "false"),
    it("sip-mobility-state", "0"),
)


def test_start_up_puts_root_nonce_reason_and_mac_addr_within_the_first_1500_bytes() -> None:
    assert len(BASIC_ITEMS[6].value) == 255
    session = PhoneSession(
        reason=Reason.START_UP, nonce=new_nonce(lambda n: b"\xab" * n), items=BASIC_ITEMS
    )
    body = session.start()
    assert_fixed_shape(body)
    mac = body.index(b'<Item name="mac-addr">00:01:E3:25:EA:13</Item>\n')
    assert mac + len(b'<Item name="mac-addr">00:01:E3:25:EA:13</Item>') <= 1500
    assert body.index(b"</ReasonForContact>") < mac
    assert [item.name for item in parse_workpoint(body).items or ()] == [
        i.name for i in BASIC_ITEMS
    ]


def test_unknown_action_reply_has_the_fixed_shape() -> None:
    session = PhoneSession(reason=Reason.SOLICITED, nonce="AB", items=())
    session.start()
    event = session.receive(emit_dls(DLSMessage(nonce="AB", action="Reboot")))
    assert isinstance(event, UnknownAction)
    assert_fixed_shape(event.answer)


# --------------------------------------------------------------------------- the table


def _table_rows() -> list[list[str]]:
    """Rows of the table "guide page | example | golden file | test"."""
    text = (REPO_ROOT / "docs" / "golden-examples.md").read_text(encoding="utf-8")
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.split("## The table", 1)[1].split("\n## ", 1)[0].splitlines()
        if line.startswith("|") and ".xml" in line
    ]
    assert all(len(row) == 4 for row in rows)
    return rows


def test_golden_table_covers_every_golden_file() -> None:
    listed = {name for row in _table_rows() for name in re.findall(r"[\w.-]+\.xml", row[2])}
    assert listed == set(golden_names())


def test_golden_table_names_existing_tests() -> None:
    for row in _table_rows():
        for test_name in re.findall(r"test_\w+", row[3]):
            assert callable(globals().get(test_name)), test_name
