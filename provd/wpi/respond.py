"""Answers to the item actions, from an `ItemBook` (spec §3.3, §4.3).

Pure: the book is passed in, and so is whether the phone is busy.
"""

from __future__ import annotations

from provd.wpi.book import ItemBook, WriteOutcome
from provd.wpi.errors import LocalProtocolError
from provd.wpi.events import ActionRequested, Reply
from provd.wpi.model import Action, ItemStatus, ReplyStatus

#: spec §7.3 step 1: the items of a bootstrap; invalid material among them fails the
#: whole WriteItems.
BOOTSTRAP_ITEMS = frozenset(
    {
        "goto-secure-mode",
        "dls-client-certificate",
        "dls-server-ca",
        "dls-secure-port",
        "secure-mode-data",
        "max-pin-retries",
    }
)


def answer_write(
    event: ActionRequested, book: ItemBook, *, busy: bool
) -> tuple[Reply, WriteOutcome | None]:
    """The reply to a WriteItems, and what the book did (None when nothing was tried).

    While busy: `busy`, no ItemList, nothing changes [G p.30, p.46]. Otherwise the
    rejected items come back empty with their status inside an accepted reply
    [G p.78-83] (when storage failed, the book marks every item `failed`, as on
    [G p.81]); a bootstrap whose material is invalid is answered `failed` (§7.3).
    """
    if busy:
        return Reply(status=ReplyStatus.BUSY, items=None), None
    outcome = book.write(event.items)
    bootstrap = any(item.name == "goto-secure-mode" for item in event.items)
    broken = any(
        item.status is ItemStatus.INVALID_DATA and item.name in BOOTSTRAP_ITEMS
        for item in outcome.rejected
    )
    status = ReplyStatus.FAILED if bootstrap and broken else ReplyStatus.ACCEPTED
    return Reply(status=status, items=outcome.rejected), outcome


def answer_item_action(event: ActionRequested, book: ItemBook, *, busy: bool) -> Reply:
    """The reply to ReadAllItems, ReadItems or WriteItems (reads are answered while busy)."""
    if event.action is Action.READ_ALL_ITEMS:
        return Reply(status=ReplyStatus.ACCEPTED, items=tuple(book.read_all()))
    if event.action is Action.READ_ITEMS:
        return Reply(status=ReplyStatus.ACCEPTED, items=tuple(book.read(event.items)))
    if event.action is Action.WRITE_ITEMS:
        return answer_write(event, book, busy=busy)[0]
    raise LocalProtocolError(f"{event.action.value} is not an item action")
