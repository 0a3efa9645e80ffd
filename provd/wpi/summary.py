"""One readable line per WPI document, for the demo, the lab and the journal.

phone → server  start-up  14 items (mac-addr 00:01:E3:25:EA:13)
server → phone  ReadAllItems
phone → server  reply-to WriteItems accepted  1 rejected: socketed-headset-mode=unknown item

Of values it shows only `mac-addr` (the phone's identity) and the items of a
`CleanUp` (`cleanup-reason`, `send-solicited`), so a summary is safe to log.
"""

from __future__ import annotations

from collections.abc import Sequence

from provd.wpi.codec import DocumentError, parse_dls, parse_workpoint
from provd.wpi.model import Action, Item, Reason, WorkpointMessage

_MAX_LISTED = 3


def _count(n: int, what: str = "item") -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _with_status(items: Sequence[Item], verdict: str) -> str:
    listed = ", ".join(
        f"{i.name}{'' if i.index is None else f'[{i.index}]'}={i.status.value}"
        for i in items[:_MAX_LISTED]
        if i.status is not None
    )
    more = f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return f"{len(items)} {verdict}: {listed}{more}"


def _value_of(items: Sequence[Item], name: str) -> str | None:
    for item in items:
        if item.name == name and item.status is None:
            return item.value
    return None


def phone_summary(message: WorkpointMessage, items: Sequence[Item] | None = None) -> str:
    """What a phone document says, in a few words (without the direction label).

    `items` overrides the message's own (the reassembled items of a fragmented reply).
    """
    shown = tuple(items if items is not None else (message.items or ()))
    parts = [message.reason.value]
    if message.reason is Reason.REPLY_TO:
        parts[0] += f" {message.action or '?'} {message.status.value if message.status else '?'}"
        if message.fragment is not None and message.fragment.value == "next":
            parts[0] += " (fragment, more to come)"
    if message.reason is Reason.CLEAN_UP:
        reason = _value_of(shown, "cleanup-reason")
        return parts[0] + (f"  ({reason})" if reason else "")
    if message.items is None:
        return parts[0]  # a busy reply carries no ItemList [G p.46]
    rejected = [i for i in shown if i.status is not None]
    plain = len(shown) - len(rejected)
    if message.action == Action.WRITE_ITEMS.value and message.reason is Reason.REPLY_TO:
        parts.append(_with_status(rejected, "rejected") if rejected else "all items taken")
        return "  ".join(parts)
    if not shown and message.reason is Reason.REPLY_TO:
        return parts[0]  # a failed reply, say: nothing to count
    detail = _count(plain)
    mac = _value_of(shown, "mac-addr")
    if message.reason is not Reason.REPLY_TO and mac:
        detail += f" (mac-addr {mac})"
    parts.append(detail)
    if rejected:
        # [G p.33] an item the phone cannot deliver is sent empty with a status.
        parts.append(_with_status(rejected, "not delivered"))
    return "  ".join(parts)


def server_summary(http_status: int, body: bytes) -> str:
    """What a server answer says, in a few words (without the direction label)."""
    if http_status == 204:
        return "204 No Content (taken as CleanUp)"
    if http_status != 200:
        return f"HTTP {http_status}"
    if not body.strip():
        return "empty 200 (taken as CleanUp)"
    try:
        message = parse_dls(body)
    except DocumentError as exc:
        return f"malformed document ({exc.reason})"
    parts = [message.action]
    items = message.items
    if message.known_action is Action.CLEAN_UP:
        # Only the two items a CleanUp is for, each cut short: a hostile server
        # decides what else it carries, and this line goes to the journal.
        extras = [
            f"{i.name}={' '.join(i.value.split())[:80]}"
            for i in items
            if i.name in ("cleanup-reason", "send-solicited")
        ]
        return message.action + (f"  ({', '.join(extras)})" if extras else "")
    if message.known_action is None:
        parts[0] += " (unknown action)"
    if items:
        parts.append(_count(len(items)))
    return "  ".join(parts)


def summarize(body: bytes, http_status: int = 200) -> str:
    """A summary of a phone or a server document, whichever `body` is."""
    if b"orkpointmessage" in body[:600].lower():
        try:
            return phone_summary(parse_workpoint(body))
        except DocumentError as exc:
            return f"unreadable document ({exc.reason})"
    return server_summary(http_status, body)
