"""The WPI vocabulary: reasons, actions, statuses, items and the two documents.

Everything here is a plain value: frozen, slotted, keyword-only dataclasses and
string enums whose values are the exact protocol tokens [G p.26, p.28-31].
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: The namespace of both roots [G p.33]; parsing ignores it (spec §2.3).
DLS_NAMESPACE = "http://www.siemens.com/DLS"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"


class Reason(StrEnum):
    """`ReasonForContact` of a phone message [G p.28, p.83]."""

    START_UP = "start-up"
    LOCAL_CHANGES = "local-changes"
    INVENTORY_CHANGES = "inventory-changes"
    STATUS = "status"
    SOLICITED = "solicited"
    REPLY_TO = "reply-to"
    CLEAN_UP = "clean-up"


class Action(StrEnum):
    """`Action` of a server message [G p.30-31]."""

    READ_ALL_ITEMS = "ReadAllItems"
    READ_ITEMS = "ReadItems"
    WRITE_ITEMS = "WriteItems"
    RESTART = "Restart"
    FILE_DEPLOYMENT = "FileDeployment"
    SOFTWARE_DEPLOYMENT = "SoftwareDeployment"
    CLEAN_UP = "CleanUp"
    GET_NEXT_FRAGMENT = "GetNextFragment"

    @classmethod
    def lookup(cls, name: str) -> Action | None:
        """The action called `name` exactly, or None for an action provd does not know."""
        try:
            return cls(name)
        except ValueError:
            return None


class ReplyStatus(StrEnum):
    """`ReasonForContact@status` of a `reply-to` [G p.29]."""

    ACCEPTED = "accepted"
    FAILED = "failed"
    BUSY = "busy"


class ItemStatus(StrEnum):
    """`Item@status`, only in phone messages; exact strings, some with a space [G p.26]."""

    FAILED = "failed"
    UNKNOWN_ITEM = "unknown item"
    READ_ONLY = "read only"
    INVALID_INDEX = "invalid index"
    UNEXPECTED_ITEM = "unexpected item"
    NOT_SUPPORTED = "not supported"
    INVALID_DATA = "invalid data"
    UNDEFINED_STATUS = "undefined status"


class Fragment(StrEnum):
    """`Message@fragment` on phone replies [G p.29, p.70]."""

    NEXT = "next"
    FINAL = "final"


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One `Item` element.

    `status` is only ever emitted in phone messages; an item with a status is
    emitted with empty content [G p.26, p.78]. On items parsed from a server
    document the codec sets `status` itself when the item is malformed (an
    `index` that is not a number): such an item must be answered with that status.
    """

    name: str
    value: str = ""
    index: int | None = None
    status: ItemStatus | None = None

    @property
    def key(self) -> tuple[str, int | None]:
        """The item's identity in a store: name and index."""
        return (self.name, self.index)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkpointMessage:
    """A phone document (`WorkpointMessage/Message`) [G p.27-29].

    `items` is None when the message has no `ItemList` at all (the busy reply
    [G p.46]); an empty tuple emits `<ItemList/>` (an accepted WriteItems [G p.48]).
    `action` and `status` are only set on `reply-to`. `fragment` is None on the
    first message of an interaction (spec §2.1 [B]).
    """

    nonce: str
    reason: Reason
    items: tuple[Item, ...] | None = ()
    action: str | None = None
    status: ReplyStatus | None = None
    max_items: int = -1
    fragment: Fragment | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DLSMessage:
    """A server document (`DLSMessage/Message`) [G p.30].

    `action` is the text of `Action` as received, so an action provd does not
    know can still be named in the answer (spec §3.3 [B]); `known_action` maps
    it onto :class:`Action`.
    """

    nonce: str
    action: str
    items: tuple[Item, ...] = ()

    @property
    def known_action(self) -> Action | None:
        return Action.lookup(self.action)

    def value(self, name: str) -> str | None:
        """The value of the first item called `name`, or None."""
        for item in self.items:
            if item.name == name:
                return item.value
        return None
