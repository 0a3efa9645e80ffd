"""The transcript: ordered frozen records, waiting for one, JSON lines, listeners."""

from __future__ import annotations

import dataclasses
import io
import json
import threading

import pytest

from provd.lab.transcript import Direction, Record, Transcript
from provd.wpi.model import Item, ItemStatus, Reason


def _clock() -> float:
    return 1000.0


def test_records_are_numbered_stamped_and_frozen() -> None:
    transcript = Transcript(clock=_clock)
    first = transcript.add(
        interaction=1, direction=Direction.PHONE_TO_SERVER, body=b"<a/>", reason=Reason.START_UP
    )
    second = transcript.add(
        interaction=1, direction=Direction.SERVER_TO_PHONE, body=b"", http_status=204
    )
    assert (first.seq, second.seq) == (1, 2)
    assert first.time == 1000.0
    assert transcript.records() == [first, second]
    assert len(transcript) == 2
    assert first.from_phone and not second.from_phone
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.note = "changed"  # type: ignore[misc]


def test_records_returns_a_copy() -> None:
    transcript = Transcript()
    transcript.records().append(None)  # type: ignore[arg-type]
    assert transcript.records() == []


def test_wait_for_returns_the_first_match_already_there() -> None:
    transcript = Transcript()
    transcript.add(interaction=1, direction=Direction.PHONE_TO_SERVER, body=b"1")
    wanted = transcript.add(interaction=2, direction=Direction.PHONE_TO_SERVER, body=b"2")
    assert transcript.wait_for(lambda r: r.interaction == 2, timeout=0) is wanted


def test_wait_for_wakes_when_another_thread_adds_the_record() -> None:
    transcript = Transcript()
    adder = threading.Thread(
        target=lambda: transcript.add(
            interaction=7, direction=Direction.SERVER_TO_PHONE, body=b"", http_status=200
        )
    )
    adder.start()
    found = transcript.wait_for(lambda r: r.interaction == 7, timeout=10)
    adder.join()
    assert found.http_status == 200


def test_wait_for_times_out_and_says_what_it_saw() -> None:
    transcript = Transcript()
    transcript.add(
        interaction=1, direction=Direction.PHONE_TO_SERVER, body=b"", reason=Reason.START_UP
    )
    with pytest.raises(TimeoutError, match="#1 phone-to-server start-up"):
        transcript.wait_for(lambda r: r.interaction == 9, timeout=0.01)


def test_json_lines_sink_and_listener_get_every_record() -> None:
    sink = io.StringIO()
    heard: list[Record] = []
    transcript = Transcript(clock=_clock, sink=sink, listener=heard.append)
    transcript.add(
        interaction=1,
        direction=Direction.PHONE_TO_SERVER,
        body="<x>é</x>".encode(),
        reason=Reason.REPLY_TO,
        action="WriteItems",
        items=(Item(name="a", index=2, status=ItemStatus.UNKNOWN_ITEM),),
        reassembled=(Item(name="a"), Item(name="b")),
    )
    transcript.add(interaction=1, direction=Direction.SERVER_TO_PHONE, body=b"\xff\x00")
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [r.seq for r in heard] == [1, 2]
    assert lines[0]["body"] == "<x>é</x>"
    assert lines[0]["reason"] == "reply-to" and lines[0]["action"] == "WriteItems"
    assert lines[0]["items"] == [{"name": "a", "value": "", "index": 2, "status": "unknown item"}]
    assert lines[0]["reassembled"] == 2
    assert lines[0]["time"] == 1000.0
    assert lines[1]["body_base64"] == "/wA=" and "body" not in lines[1]


def test_all_items_prefers_the_reassembled_message() -> None:
    own = (Item(name="b"),)
    whole = (Item(name="a"), Item(name="b"))
    record = Record(
        seq=1,
        time=0,
        interaction=1,
        direction=Direction.PHONE_TO_SERVER,
        body=b"",
        items=own,
        reassembled=whole,
    )
    assert record.all_items == whole
    assert dataclasses.replace(record, reassembled=None).all_items == own
