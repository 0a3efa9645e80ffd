"""The phone's items as the protocol sees them: catalog + store (spec §3.3, §8).

`CatalogBook` is the real `provd.wpi.book.ItemBook`: a session hands it
`ReadAllItems`, `ReadItems` and `WriteItems`, and it answers from the item store,
the catalog's defaults and the live values of the device description.

A value is, in this order: the live value (identity and runtime items such as
`mac-addr`, `contact-me-uri`, `software-version`; `configuration-changed-flag` from
the store's flag), the stored value, the catalog default. An item with none of them
is one the phone cannot deliver.

No value is ever logged here: log records name items, never their values (secrets and
write-only items included, spec §8.1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

from provd.store.catalog import Catalog
from provd.store.errors import StoreError
from provd.store.items import Change, Row
from provd.store.itemspec import ItemSpec
from provd.store.validate import MessageContext, index_valid, validate_items
from provd.wpi.book import WriteOutcome
from provd.wpi.model import Item, ItemStatus

log = logging.getLogger(__name__)

_BROKEN_MATERIAL = frozenset({ItemStatus.INVALID_DATA, ItemStatus.INVALID_INDEX})

#: journald MESSAGE_IDs, one per kind of event (each explained in systemd/provd.catalog).
MSG_WRITE_ITEMS = "5d0f5f8e0c8a4f6c9a1e2b7d3c4f6a81"
MSG_WRITE_FAILED = "e2a4c6b8d0f24e1a8c3b5d7f9e1a3c52"
MSG_READ_FAILED = "7c1e9a3f5b2d4e6a8f0c2b4d6e8a0c13"

Key = tuple[str, int | None]
CHANGED_FLAG = "configuration-changed-flag"
#: Live values by item name: a mapping, or a callable returning one at each read.
LiveValues = Mapping[str, str] | Callable[[], Mapping[str, str]]
#: Receives the valid special items of one WriteItems (after the plain ones are
#: committed) and returns a status for each one it refuses (spec §7.3).
SpecialHandler = Callable[[Sequence[Item]], Mapping[Key, ItemStatus]]

#: Above this many items, one read of all rows is cheaper than one query per item.
_BULK_READ = 32
_NO_LIVE: Mapping[str, str] = MappingProxyType({})
#: Item names listed in one journal field; a 1,000-item WriteItems is summarised.
_LOGGED_NAMES = 50


class ItemStoreLike(Protocol):
    """What the book needs of `provd.store.items.ItemStore`."""

    def get(self, name: str, index: int | None = None) -> str | None: ...

    def rows(self) -> Sequence[Row]: ...

    def stored_values(self) -> Mapping[tuple[str, int | None], str]: ...

    def commit(self, changes: Sequence[Change], *, local: bool = False) -> None: ...

    def configuration_changed(self) -> bool: ...


class CatalogBook:
    """`ItemBook` over a catalog and an item store.

    `dynamic` gives live values by name (a mapping or a callable returning one);
    `dhcp_locked` names the items set by DHCP, which a server cannot change [G p.16];
    `special` takes over the catalog's `special` items (the secure-mode bootstrap,
    spec §7). Without it special items are stored like the others.
    """

    def __init__(
        self,
        catalog: Catalog,
        store: ItemStoreLike,
        *,
        dynamic: LiveValues = _NO_LIVE,
        dhcp_locked: Iterable[str] = (),
        special: SpecialHandler | None = None,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._dynamic = dynamic
        self._dhcp_locked = frozenset(dhcp_locked)
        self._special = special

    @property
    def catalog(self) -> Catalog:
        """The catalog this book answers from."""
        return self._catalog

    @property
    def dhcp_locked(self) -> frozenset[str]:
        """Names of the items set by DHCP: a server write is answered `read only`."""
        return self._dhcp_locked

    @dhcp_locked.setter
    def dhcp_locked(self, names: Iterable[str]) -> None:
        self._dhcp_locked = frozenset(names)

    def _live(self) -> Mapping[str, str]:
        dynamic = self._dynamic
        live = dynamic() if callable(dynamic) else dynamic
        if CHANGED_FLAG in live:
            return live
        # spec §3.2 [B]: the store keeps the flag with the local-changes queue.
        flag = "true" if self._store.configuration_changed() else "false"
        return {**live, CHANGED_FLAG: flag}

    # ----------------------------------------------------------------------- reading

    def value_of(self, name: str, index: int | None = None) -> str | None:
        """The value the phone reports for `name` (at `index`), or None if it has none."""
        if index is None:
            return self.values_of([name])[name]
        spec = self._catalog.get(name)
        return None if spec is None else self._resolve(spec, index, None)

    def values_of(self, names: Iterable[str]) -> dict[str, str | None]:
        """`value_of` for several scalar items, reading the live values once (they
        come from files and the network interface)."""
        live = self._live()
        values: dict[str, str | None] = {}
        for name in names:
            spec = self._catalog.get(name)
            values[name] = None if spec is None else self._resolve(spec, None, live)
        return values

    def _resolve(
        self, spec: ItemSpec, index: int | None, live: Mapping[str, str] | None
    ) -> str | None:
        """The phone's value: live (scalars), else stored, else the catalog default."""
        if live is not None and index is None and not spec.indexed:
            value = live.get(spec.name)
            if value is not None:
                return value
        stored = self._store.get(spec.name, index)
        return stored if stored is not None else spec.default

    def read_all(self) -> tuple[Item, ...]:
        """Every readable item: certificates, write-only and unsupported items left out
        [G p.30, spec §3.3]; catalog order, indexed items by index.

        Raises StoreError when the store cannot be read: answering from defaults would
        tell the server wrong values, so the caller answers the action `failed`."""
        live = self._live()
        stored = _group(self._store.rows())
        items: list[Item] = []
        for spec in self._catalog:
            if not spec.readable or spec.certificate or not spec.supported:
                continue
            if spec.indexed:
                items.extend(_instances(spec, stored.get(spec.name, {})))
                continue
            value = live.get(spec.name)
            if value is None:
                value = stored.get(spec.name, {}).get(None, spec.default)
            if value is not None:
                items.append(Item(name=spec.name, value=value))
        return tuple(items)

    def read(self, requested: Sequence[Item]) -> tuple[Item, ...]:
        """The requested items with values, or empty with a status: `unknown item`,
        `invalid index`, `not supported`, and `failed` for write-only items [B] and
        items the phone cannot deliver [G p.33]. An indexed item asked without an
        index comes back with all its stored instances. If the store cannot be read,
        every item is answered `failed`."""
        try:
            return self._read(requested)
        except StoreError as exc:
            log.error(
                "ReadItems of %d items failed: %s",
                len(requested),
                exc,
                extra={"MESSAGE_ID": MSG_READ_FAILED, "PROVD_EVENT": "store-read-failed"},
            )
            return tuple(_empty(request, ItemStatus.FAILED) for request in requested)

    def _read(self, requested: Sequence[Item]) -> tuple[Item, ...]:
        live = self._live()
        grouped: dict[str, dict[int | None, str]] | None = None  # all rows, read once
        answer: list[Item] = []
        for request in requested:
            spec = self._catalog.get(request.name)
            status = _read_status(spec, request)
            if status is not None or spec is None:
                answer.append(_empty(request, status or ItemStatus.UNKNOWN_ITEM))
                continue
            if request.index is None and spec.indexed:
                if grouped is None:
                    grouped = _group(self._store.rows())
                found = _instances(spec, grouped.get(spec.name, {}))
                answer.extend(found or [_empty(request, ItemStatus.FAILED)])
                continue
            value = self._resolve(spec, request.index, live)
            if value is None:
                answer.append(_empty(request, ItemStatus.FAILED))
            else:
                answer.append(Item(name=spec.name, value=value, index=request.index))
        return tuple(answer)

    # ----------------------------------------------------------------------- writing

    def write(self, items: Sequence[Item], *, local: bool = False) -> WriteOutcome:
        """Validate every item of a WriteItems, commit the valid ones in one transaction.

        Rejected items come back empty with their status, in the order received
        [G p.78-83]. A value equal to the current one is no change. If storage fails
        nothing is committed and every item is `failed` (spec §3.3).

        `local=True` is a change made through the local interface (spec §3.5): the
        same rules, the commit queues the changes for the next `local-changes`
        report, and the bootstrap items are `unexpected item` (only a server
        starts Secure Mode, spec §7).
        """
        statuses = list(
            validate_items(
                items,
                self._catalog,
                MessageContext.write_items(items),
                dhcp_locked=self._dhcp_locked,
            )
        )
        plain: dict[Key, str] = {}  # a key written twice: the later value wins
        special: list[Item] = []
        for position, (item, status) in enumerate(zip(items, statuses, strict=True)):
            if status is not None:
                continue
            if local and self._is_special(item.name):
                statuses[position] = ItemStatus.UNEXPECTED_ITEM
            elif self._special is not None and self._is_special(item.name):
                special.append(item)
            else:
                plain[item.name, item.index] = item.value
        try:
            changes, changed = self._changes(plain)
            if local:
                # A local set to the value the phone already has (its default) is
                # no change to report (spec §3.5).
                keep = set(changed)
                changes = [c for c in changes if (c.name, c.index) in keep]
            if changes:
                self._store.commit(changes, local=local)
        except StoreError as exc:
            return self._failed(items, exc)
        broken = any(
            status in _BROKEN_MATERIAL and self._is_special(item.name)
            for item, status in zip(items, statuses, strict=True)
        )
        if special and not broken:
            # A piece of bootstrap material refused by validation (a corrupt CA, say)
            # means none of it is kept; an item merely out of place is refused alone.
            refused = self._handle_special(special)
            statuses = [
                refused.get(item.key, status) if status is None else status
                for item, status in zip(items, statuses, strict=True)
            ]
        rejected = tuple(
            _empty(item, status)
            for item, status in zip(items, statuses, strict=True)
            if status is not None
        )
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s: %d items, %d changed, %d rejected",
                "local change" if local else "WriteItems",
                len(items),
                len(changed),
                len(rejected),
                extra={
                    "MESSAGE_ID": MSG_WRITE_ITEMS,
                    "PROVD_EVENT": "items-written",
                    "PROVD_CHANGED": _names(_label(key) for key in changed),
                    "PROVD_REJECTED": _names(f"{_label(i.key)}={i.status}" for i in rejected),
                },
            )
        return WriteOutcome(rejected=rejected, changed=tuple(changed), failed=False)

    def _is_special(self, name: str) -> bool:
        spec = self._catalog.get(name)
        return spec is not None and spec.special

    def _changes(self, plain: Mapping[Key, str]) -> tuple[list[Change], list[Key]]:
        """What to commit (value differs from the stored one) and what changed for
        the phone (value differs from the stored one or, if none, the default)."""
        if len(plain) > _BULK_READ:
            every = self._store.stored_values()
            stored = {key: every.get(key) for key in plain}
        else:
            stored = {key: self._store.get(*key) for key in plain}
        changes: list[Change] = []
        changed: list[Key] = []
        for key, value in plain.items():
            before = stored[key]
            if before == value:
                continue
            changes.append(Change(key[0], key[1], value))
            if before is None:
                spec = self._catalog.get(key[0])
                before = spec.default if spec is not None else None
            if before != value:
                changed.append(key)
        return changes, changed

    def _handle_special(self, items: Sequence[Item]) -> Mapping[Key, ItemStatus]:
        assert self._special is not None
        try:
            return self._special(items)
        except StoreError as exc:
            log.error(
                "secure store failed for %d bootstrap items: %s",
                len(items),
                exc,
                extra={"MESSAGE_ID": MSG_WRITE_FAILED, "PROVD_EVENT": "store-write-failed"},
            )
            return {item.key: ItemStatus.FAILED for item in items}

    def _failed(self, items: Sequence[Item], exc: StoreError) -> WriteOutcome:
        log.error(
            "WriteItems of %d items not committed: %s",
            len(items),
            exc,
            extra={"MESSAGE_ID": MSG_WRITE_FAILED, "PROVD_EVENT": "store-write-failed"},
        )
        rejected = tuple(_empty(item, ItemStatus.FAILED) for item in items)
        return WriteOutcome(rejected=rejected, changed=(), failed=True)


def _read_status(spec: ItemSpec | None, request: Item) -> ItemStatus | None:
    if spec is None:
        return ItemStatus.UNKNOWN_ITEM
    if request.status is not None:
        return request.status  # the codec found a malformed index
    if not spec.supported:
        return ItemStatus.NOT_SUPPORTED
    if not spec.readable:
        return ItemStatus.FAILED  # spec §3.3 [B]: write-only items are never read back
    if request.index is not None and not index_valid(spec, request.index):
        return ItemStatus.INVALID_INDEX
    return None


def _group(rows: Iterable[Row]) -> dict[str, dict[int | None, str]]:
    grouped: dict[str, dict[int | None, str]] = {}
    for row in rows:
        grouped.setdefault(row.name, {})[row.index] = row.value
    return grouped


def _instances(spec: ItemSpec, stored: Mapping[int | None, str]) -> list[Item]:
    """The stored instances of an indexed item that the catalog still allows, by index."""
    keys = sorted(stored, key=lambda index: -1 if index is None else index)
    return [
        Item(name=spec.name, value=stored[index], index=index)
        for index in keys
        if index_valid(spec, index)
    ]


def _empty(item: Item, status: ItemStatus) -> Item:
    """The answer for a refused item: no value, its index kept [G p.26, p.81]."""
    return Item(name=item.name, index=item.index, status=status)


def _names(labels: Iterable[str]) -> str:
    """Item labels for a journal field, at most `_LOGGED_NAMES` of them."""
    listed = list(labels)
    if len(listed) <= _LOGGED_NAMES:
        return " ".join(listed)
    shown = " ".join(listed[:_LOGGED_NAMES])
    return f"{shown} (+{len(listed) - _LOGGED_NAMES} more)"


def _label(key: Key) -> str:
    name, index = key
    return name if index is None else f"{name}[{index}]"
