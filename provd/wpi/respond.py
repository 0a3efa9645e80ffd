"""Answers to the item actions, from an `ItemBook` (spec §3.3, §4.3).

Pure: the book is passed in, and so is whether the phone is busy.
"""

from __future__ import annotations

from provd.wpi.book import ItemBook
from provd.wpi.errors import LocalProtocolError
from provd.wpi.events import ActionRequested, Reply
from provd.wpi.model import Action, ReplyStatus


def answer_item_action(event: ActionRequested, book: ItemBook, *, busy: bool) -> Reply:
    """The reply to ReadAllItems, ReadItems or WriteItems.

    Reads are answered while busy; a WriteItems while busy is answered `busy`
    with no ItemList and nothing changes [G p.30, p.46].
    """
    if event.action is Action.READ_ALL_ITEMS:
        return Reply(status=ReplyStatus.ACCEPTED, items=tuple(book.read_all()))
    if event.action is Action.READ_ITEMS:
        return Reply(status=ReplyStatus.ACCEPTED, items=tuple(book.read(event.items)))
    if event.action is Action.WRITE_ITEMS:
        if busy:
            return Reply(status=ReplyStatus.BUSY, items=None)
        # spec §3.3: rejected items come back empty with their status inside an
        # accepted reply [G p.78-83]; when storage failed, nothing was committed
        # and the book marks every item `failed` (as on [G p.81]).
        outcome = book.write(event.items)
        return Reply(status=ReplyStatus.ACCEPTED, items=outcome.rejected)
    raise LocalProtocolError(f"{event.action.value} is not an item action")
