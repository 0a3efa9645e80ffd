"""Fuzz target for the parsers (hypothesis): arbitrary bytes and mutated golden documents.

`parse_dls` and `parse_workpoint` may refuse a document only with `DocumentError`;
`PhoneSession.receive` and `ServerSession.receive` return an event and never raise.
The default run is modest; set PROVD_FUZZ_EXAMPLES (e.g. 20000) for a long run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provd.wpi.codec import DocumentError, parse_dls, parse_workpoint
from provd.wpi.events import DocumentRefused, FragmentReceived, PhoneMessageReceived
from provd.wpi.model import Reason
from provd.wpi.server import ServerSession
from provd.wpi.session import PhoneSession

from .goldens import golden, golden_names

EXAMPLES = int(os.environ.get("PROVD_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SERVER_DOCUMENTS = [golden(name) for name in golden_names() if "-phone-" not in name]
PHONE_DOCUMENTS = [golden(name) for name in golden_names("-phone-")]
NASTY = [b"<", b"&", b"<!DOCTYPE", b"<!ENTITY x 'y'>", b"]]>", b"<![CDATA[", b"\x00", b"\xff"]
NASTY += [
    b"&#0;",
    b"&#x110000;",
    b"<!--",
    b"<?xml",
    b"\xef\xbb\xbf",
    b"</",
    b'"',
    b"'",
    b"=",
    b"9" * 5,
]


@dataclass(frozen=True)
class Mutation:
    kind: str  # flip | truncate | insert | delete
    position: float  # 0..1, relative to the current length
    payload: bytes = b""
    value: int = 0


_MUTATIONS = st.one_of(
    st.builds(Mutation, kind=st.just("flip"), position=st.floats(0, 1), value=st.integers(1, 255)),
    st.builds(Mutation, kind=st.just("truncate"), position=st.floats(0, 1)),
    st.builds(
        Mutation,
        kind=st.just("insert"),
        position=st.floats(0, 1),
        payload=st.one_of(st.sampled_from(NASTY), st.binary(min_size=1, max_size=8)),
    ),
    st.builds(Mutation, kind=st.just("delete"), position=st.floats(0, 1), value=st.integers(1, 40)),
)


def _mutate(document: bytes, mutations: list[Mutation]) -> bytes:
    data = bytearray(document)
    for mutation in mutations:
        at = min(int(mutation.position * len(data)), len(data))
        if mutation.kind == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] ^= mutation.value
        elif mutation.kind == "truncate":
            del data[at:]
        elif mutation.kind == "insert":
            data[at:at] = mutation.payload
        elif mutation.kind == "delete":
            del data[at : at + mutation.value]
    return bytes(data)


def _check_phone_side(body: bytes) -> None:
    try:
        parse_dls(body)
    except DocumentError as error:
        assert error.reason
    session = PhoneSession(reason=Reason.SOLICITED, nonce="AB", items=())
    session.start()
    session.receive(body)  # must return, whatever the body


def _check_server_side(body: bytes) -> None:
    try:
        parse_workpoint(body)
    except DocumentError as error:
        assert error.reason
    event = ServerSession().receive(body)
    assert isinstance(event, PhoneMessageReceived | FragmentReceived | DocumentRefused)


@FUZZ
@given(body=st.binary(max_size=2048))
def test_arbitrary_bytes_never_escape_as_anything_but_a_refusal(body: bytes) -> None:
    _check_phone_side(body)
    _check_server_side(body)


@FUZZ
@given(
    document=st.sampled_from(SERVER_DOCUMENTS),
    mutations=st.lists(_MUTATIONS, min_size=1, max_size=6),
)
def test_mutated_server_documents_never_escape_as_anything_but_a_refusal(
    document: bytes, mutations: list[Mutation]
) -> None:
    _check_phone_side(_mutate(document, mutations))


@FUZZ
@given(
    document=st.sampled_from(PHONE_DOCUMENTS),
    mutations=st.lists(_MUTATIONS, min_size=1, max_size=6),
)
def test_mutated_phone_documents_never_escape_as_anything_but_a_refusal(
    document: bytes, mutations: list[Mutation]
) -> None:
    _check_server_side(_mutate(document, mutations))
