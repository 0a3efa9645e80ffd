"""The lab server's transcript: every document that crossed the wire, in order.

Tests read it (`Transcript.records()`, `Transcript.wait_for(...)`); the lab
command prints it and can write it as JSON lines. Records are frozen: what
was recorded is what happened.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TextIO

from provd.wpi.model import Fragment, Item, Reason, ReplyStatus


class Direction(StrEnum):
    """Who sent the document."""

    PHONE_TO_SERVER = "phone-to-server"
    SERVER_TO_PHONE = "server-to-phone"


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One document (or empty answer) of one interaction.

    `interaction` numbers interactions from 1 in the order the server saw them
    (0: a message that belongs to none). Phone records carry `reason` and, on
    `reply-to`, `action` and `status`; server records carry `http_status` and
    the `action` sent (None for a raw document or an empty answer). `items`
    are the document's own items; on the final part of a fragmented phone
    message `reassembled` holds the items of all its fragments (spec §5).
    `cookie` says, for a phone record, whether the request presented the
    interaction's cookie, and for a server record whether it set one.
    """

    seq: int
    time: float
    interaction: int
    direction: Direction
    body: bytes
    http_status: int | None = None
    reason: Reason | None = None
    action: str | None = None
    status: ReplyStatus | None = None
    fragment: Fragment | None = None
    items: tuple[Item, ...] = ()
    reassembled: tuple[Item, ...] | None = None
    cookie: bool = False
    channel: str = "default"
    note: str = ""

    @property
    def from_phone(self) -> bool:
        return self.direction is Direction.PHONE_TO_SERVER

    @property
    def all_items(self) -> tuple[Item, ...]:
        """The items of the whole message: reassembled when it was fragmented."""
        return self.reassembled if self.reassembled is not None else self.items

    @property
    def text(self) -> str:
        """The body as text (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; the body is text when it is UTF-8, else base64."""
        try:
            body: dict[str, str] = {"body": self.body.decode("utf-8")}
        except UnicodeDecodeError:
            body = {"body_base64": base64.b64encode(self.body).decode("ascii")}
        data: dict[str, Any] = {
            "seq": self.seq,
            "time": self.time,
            "interaction": self.interaction,
            "direction": self.direction.value,
            "http_status": self.http_status,
            "reason": self.reason.value if self.reason else None,
            "action": self.action,
            "status": self.status.value if self.status else None,
            "fragment": self.fragment.value if self.fragment else None,
            "items": [_item_json(i) for i in self.items],
            "cookie": self.cookie,
            "channel": self.channel,
            "note": self.note,
        }
        if self.reassembled is not None:
            data["reassembled"] = len(self.reassembled)
        data.update(body)
        return data


def _item_json(item: Item) -> dict[str, Any]:
    data: dict[str, Any] = {"name": item.name, "value": item.value}
    if item.index is not None:
        data["index"] = item.index
    if item.status is not None:
        data["status"] = item.status.value
    return data


class Transcript:
    """Records in order, safe to append from the server's threads.

    `sink`, when given, receives each record as one JSON line as it is added;
    `listener` is called with each record (the lab command prints them).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        sink: TextIO | None = None,
        listener: Callable[[Record], None] | None = None,
    ) -> None:
        self._clock = clock
        self._sink = sink
        self._listener = listener
        self._records: list[Record] = []
        self._changed = threading.Condition()

    def add(self, **fields: Any) -> Record:
        """Append a record made of `fields` (all of `Record`'s but `seq` and `time`)."""
        with self._changed:
            record = Record(seq=len(self._records) + 1, time=self._clock(), **fields)
            self._records.append(record)
            if self._sink is not None:
                self._sink.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
                self._sink.flush()
            self._changed.notify_all()
            if self._listener is not None:
                # Under the lock, so that listeners see records in order.
                self._listener(record)
        return record

    def records(self) -> list[Record]:
        """A copy of the records so far."""
        with self._changed:
            return list(self._records)

    def __len__(self) -> int:
        with self._changed:
            return len(self._records)

    def wait_for(self, predicate: Callable[[Record], bool], timeout: float = 5.0) -> Record:
        """The first record that satisfies `predicate`, waiting up to `timeout` seconds
        for it to arrive; TimeoutError (listing what did arrive) if none does."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._changed:
            while True:
                for record in self._records[checked:]:
                    if predicate(record):
                        return record
                checked = len(self._records)
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "; ".join(_summary(r) for r in self._records) or "nothing"
                    raise TimeoutError(f"no matching record within {timeout} s (saw: {seen})")
                self._changed.wait(left)


def _summary(record: Record) -> str:
    what = record.reason.value if record.reason else (record.action or record.note or "-")
    return f"#{record.interaction} {record.direction.value} {what}"
