"""What the protocol core needs from the phone's items: the `ItemBook` port.

The core never touches storage. A session hands `ReadAllItems`, `ReadItems`
and `WriteItems` to an `ItemBook` the caller supplies; `provd.store` provides
the real one (catalog + flash store), tests and the lab pass simple ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from provd.wpi.model import Item


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteOutcome:
    """The result of one `WriteItems`.

    `rejected` holds one empty item with a status per rejected item, in the
    order received [G p.78-83]; `changed` names the (name, index) pairs whose
    stored value changed. `failed` is True when storage failed and nothing at
    all was committed: every item is then in `rejected` with status `failed`
    (spec §3.3).
    """

    rejected: tuple[Item, ...] = ()
    changed: tuple[tuple[str, int | None], ...] = ()
    failed: bool = False


class ItemBook(Protocol):
    """The phone's items as the protocol sees them (spec §3.3, §8)."""

    def read_all(self) -> Sequence[Item]:
        """Every readable item, certificates and write-only secrets excluded."""
        ...

    def read(self, requested: Sequence[Item]) -> Sequence[Item]:
        """The requested items, with values, or empty with a status
        (`unknown item`; `failed` for write-only ones)."""
        ...

    def write(self, items: Sequence[Item]) -> WriteOutcome:
        """Validate every item, commit the valid ones in one durable transaction."""
        ...
