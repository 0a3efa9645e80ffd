"""One readable line per WPI message, for the demo and the lab command.

phone → server  start-up  14 items (mac-addr 00:01:E3:25:EA:13)
server → phone  ReadAllItems
phone → server  reply-to ReadAllItems accepted  212 items
server → phone  WriteItems  3 items
phone → server  reply-to WriteItems accepted  1 rejected: socketed-headset-mode=unknown item
server → phone  CleanUp
"""

from __future__ import annotations

import contextlib

from provd.lab.transcript import Record
from provd.wpi.codec import DocumentError, parse_workpoint
from provd.wpi.summary import phone_summary, server_summary

PHONE_TO_SERVER = "phone → server"
SERVER_TO_PHONE = "server → phone"


def arrows_for(encoding: str | None) -> tuple[str, str]:
    """The two direction labels, in ASCII when `encoding` cannot carry an arrow."""
    try:
        "→".encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return PHONE_TO_SERVER.replace("→", "->"), SERVER_TO_PHONE.replace("→", "->")
    return PHONE_TO_SERVER, SERVER_TO_PHONE


def phone_line(body: bytes, *, label: str = PHONE_TO_SERVER) -> str:
    """The line for a phone document as sent."""
    try:
        message = parse_workpoint(body)
    except DocumentError as exc:  # the phone's own documents always parse; say so if not
        return f"{label}  unreadable document ({exc.reason})"
    return f"{label}  {phone_summary(message)}"


def server_line(http_status: int, body: bytes, *, label: str = SERVER_TO_PHONE) -> str:
    """The line for a server answer as received."""
    return f"{label}  {server_summary(http_status, body)}"


def record_line(
    record: Record, *, labels: tuple[str, str] = (PHONE_TO_SERVER, SERVER_TO_PHONE)
) -> str:
    """The line for a transcript record, prefixed with its interaction number."""
    if record.from_phone:
        label = labels[0]
        text = record.note  # a document the server refused
        if record.reason is not None:
            with contextlib.suppress(DocumentError):
                text = phone_summary(parse_workpoint(record.body), record.reassembled)
    else:
        label = labels[1]
        text = server_summary(record.http_status or 0, record.body)
    note = f"  [{record.note}]" if record.note and record.note not in text else ""
    return f"#{record.interaction} {label}  {text}{note}"
